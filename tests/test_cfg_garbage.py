"""Mask steps of the grammar engine leave no cyclic garbage.

What only the cyclic garbage collector can free makes its collections frequent and slow, and they land in
the steps that allocate most: a step's tail. Reference counting must free everything a step makes.
"""

from __future__ import annotations

import gc
import inspect
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from decc.grammars import Limits, Vocabulary, cfg
from decc.grammars.contextfree.cfg_matcher import CFGConstraint
from decc.grammars.regexes.nfa import build_nfa
from decc.grammars.regexes.regex_parser import parse_regex

# Nested calls (contexts of contexts in the mask-cache signature) and a multi-byte character class (the
# NFA builder's shared UTF-8 suffixes), built lazily while masks are filled.
GRAMMAR = """
start: item
item: "[" (item ("," item)*)? "]" | NAME
NAME: /[a-cé-ü]+/
"""


@contextmanager
def no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        yield
    finally:
        if enabled:
            gc.enable()


def test_mask_steps_leave_no_cyclic_garbage() -> None:
    alphabet = "[],abcé"
    pieces = [(a + b).encode() for a, b in itertools.product(alphabet, repeat=2)]
    pieces += [c.encode() for c in alphabet]
    vocab = Vocabulary.from_token_bytes([None, *pieces], eos_id=0)
    row = torch.zeros(vocab.n_words, dtype=torch.int32)

    def walk(constraint: CFGConstraint) -> None:
        m = constraint.matcher()  # the grammar's rules are built as the masks need them
        for c in "[[a,[b,é]],[[c]],ab]":
            m.fill_bitmask(row)
            assert m.advance(vocab.token_bytes.index(c.encode()))

    walk(cfg(GRAMMAR.replace("item", "first"), vocab))  # one-time lazy imports (numpy.ma's make cycles)
    constraint = cfg(GRAMMAR, vocab, limits=Limits())  # (loading a cached one may make some too)
    with no_collector():
        walk(constraint)
        found = gc.collect()
    assert found == 0


def test_building_an_nfa_leaves_no_cyclic_garbage() -> None:
    with no_collector():
        nfa = build_nfa(parse_regex("[a-zé-ü\u0400-\u04ff\U0001f600-\U0001f64f]+x"), Limits())
        del nfa
        found = gc.collect()
    assert found == 0


def test_no_collection_runs_while_a_mask_is_computed() -> None:
    """A first visit's trie walk and the simulation of uncertain tokens make many containers that die when
    the mask is done: a collection in their midst would walk them all and keep them in older generations.
    (A low threshold makes the old behaviour collect inside every mask computation.)"""
    alphabet = "[],abcé"
    pieces = [(a + b).encode() for a, b in itertools.product(alphabet, repeat=2)]
    vocab = Vocabulary.from_token_bytes([None, *pieces, *(c.encode() for c in alphabet)], eos_id=0)
    constraint = cfg(GRAMMAR.replace("item", "nested"), vocab, limits=Limits())
    row = torch.zeros(vocab.n_words, dtype=torch.int32)
    during: list[str] = []

    def check(phase: str, info: dict) -> None:
        frame = inspect.currentframe()
        while phase == "start" and frame is not None:
            if frame.f_code.co_name == "_compute_mask":
                during.append(frame.f_code.co_filename)
            frame = frame.f_back

    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    gc.enable()
    gc.set_threshold(20)
    gc.callbacks.append(check)
    try:
        m = constraint.matcher()
        for c in "[[a,[b,é]],[[c]],ab]":
            m.fill_bitmask(row)
            assert m.advance(vocab.token_bytes.index(c.encode()))
    finally:
        gc.callbacks.remove(check)
        gc.set_threshold(*threshold)
        if not enabled:
            gc.disable()
    assert during == []
