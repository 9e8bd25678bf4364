"""Self-loop shortcut for the token walk.

In a state whose loop bytes L (those with `T[s, b] == s`) are many, as in a JSON string body (every
printable ASCII byte but `"` and `\\`), each token made only of L-bytes stays in s: 47.9k of SmolLM2's
49.1k tokens in a string body. Those tokens are found once per distinct (L, ticks) for the whole
vocabulary, cached on it, and kept implicit: the walk, the CSR and its sort hold only the tokens with some
other byte. A state's edges are its CSR edges plus its loop's tokens, each going back to the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..automata.dfa import ByteDFA
from .vocab import Vocabulary

MIN_LOOP_BYTES = 32  # fewer loop bytes cover few tokens: walking them is cheaper than a class


@dataclass(frozen=True, eq=False)
class Loop:
    ids: np.ndarray  # int32, sorted: the text tokens made only of loop bytes
    ticks: np.ndarray  # int32 per id: characters each adds in a counted segment (zeros otherwise)
    bits: np.ndarray  # uint32 [n_words]: `ids` as a bitmask row
    member: np.ndarray  # bool per text token in `Vocabulary.packed` order: drops them from the walk
    # int16 per text token in `packed` order: the first byte position from which all of the token's bytes
    # are loop bytes. A walk that reaches the loop's state there ends in that state (no need to walk on).
    tail: np.ndarray

    @property
    def size(self) -> int:
        return len(self.ids)


def loop_classes(dfa: ByteDFA, vocab: Vocabulary) -> tuple[np.ndarray, tuple[Loop, ...]]:
    """(loop class per state, -1 for none; the classes' loops) for the states with many loop bytes."""
    n = dfa.n_states
    loop_of = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return loop_of, ()
    selfloop = dfa.transitions == np.arange(n, dtype=dfa.transitions.dtype)[:, None]
    big = np.flatnonzero(selfloop.sum(axis=1) >= MIN_LOOP_BYTES)
    if not len(big):
        return loop_of, ()
    ticks = dfa.tick[big] & selfloop[big] if dfa.tick is not None else np.zeros((len(big), 256), dtype=bool)
    keys = np.concatenate([np.packbits(selfloop[big], axis=1), np.packbits(ticks, axis=1)], axis=1)
    index: dict[bytes, int] = {}
    loops: list[Loop] = []
    for i, s in enumerate(big.tolist()):
        key = keys[i].tobytes()
        c = index.get(key)
        if c is None:
            c = index[key] = len(loops)
            loop = vocab.loop_cache.get(key)
            if loop is None:
                loop = vocab.loop_cache[key] = build_loop(vocab, selfloop[s], ticks[i])
            loops.append(loop)
        loop_of[s] = c
    return loop_of, tuple(loops)


def build_loop(vocab: Vocabulary, in_loop: np.ndarray, tick: np.ndarray) -> Loop:
    from .token_automaton import pack_bits

    ids, lengths, _, _ = vocab.packed
    flat, starts = vocab.flat_bytes
    if len(flat) and (lengths > 0).all():
        member = np.add.reduceat(in_loop[flat].astype(np.int64), starts) == lengths
        counted = np.add.reduceat(tick[flat].astype(np.int64), starts)[member]
    else:  # no text tokens (or empty ones, which reduceat cannot skip)
        member = np.zeros(len(ids), dtype=bool)
        counted = np.zeros(0, dtype=np.int64)
    order = np.argsort(ids[member], kind="stable")
    chosen = ids[member][order].astype(np.int32)
    bits = pack_bits(np.zeros(len(chosen), dtype=np.int64), chosen, 1, vocab.n_words)[0]
    out = Loop(
        chosen, counted[order].astype(np.int32), bits, member, loop_tails(in_loop, flat, starts, lengths)
    )
    for a in (out.ids, out.ticks, out.bits, out.member, out.tail):
        a.setflags(write=False)
    return out


def loop_tails(in_loop: np.ndarray, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`Loop.tail`: per token, the position after its last byte outside the loop (0 if every byte is a
    loop byte), from the tokens' bytes concatenated (`Vocabulary.flat_bytes`), no padding walked."""
    tail = np.zeros(len(starts), dtype=np.int16)
    some = lengths > 0  # reduceat cannot skip empty tokens
    if len(flat) and some.any():
        pos = np.arange(len(flat), dtype=np.int64) - np.repeat(starts, lengths)
        after_bad = np.where(in_loop[flat], 0, pos + 1)
        tail[some] = np.maximum.reduceat(after_bad, starts[some])
    return tail
