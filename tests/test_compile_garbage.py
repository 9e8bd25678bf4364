"""Compiling a JSON schema leaves no reference cycles of decc's own behind.

A cycle (a closure that calls itself, a compiler whose oracle holds its bound methods) keeps everything
it reaches alive until the cyclic collector finds it; compiles run with the collector paused, so that
happened in some later decoding step, whose mask then paid for walking tens of thousands of objects.
"""

from __future__ import annotations

import gc
import json

from decc.grammars import Vocabulary
from decc.grammars.json.json_schema import branches_disjoint, json_schema

SCHEMAS = [
    {  # structure rules, a $ref, an open object (its extra keys: a trie), a oneOf (the disjointness oracle)
        "$defs": {"p": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "string"}}}},
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/p"},
            "b": {"type": "array", "items": {"oneOf": [{"type": "integer"}, {"type": "string"}]}},
            "c": {"type": "string", "maxLength": 5},
        },
        "required": ["a"],
    },
    {
        "oneOf": [{"const": "x"}, {"type": "object", "properties": {"k": {"enum": [1, 2]}}}],
        "not": {"const": 3},
    },
]


def _decc_garbage() -> list[str]:
    """The types (decc's, and functions defined in decc) of what the collector finds unreachable now."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    names = []
    for o in found:
        module = getattr(o, "__module__", None) or type(o).__module__ or ""
        if module.startswith("decc"):
            names.append(getattr(o, "__qualname__", type(o).__qualname__))
    return names


def test_compiling_schemas_leaves_no_cycles() -> None:
    vocab = Vocabulary.from_token_bytes([None, *(bytes([b]) for b in range(32, 127))], eos_id=0)
    for s in SCHEMAS:  # a first compile: imports and per-process tables, whatever they leave
        json_schema(json.dumps(s), vocab, engine="grammar")
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for k, s in enumerate(SCHEMAS):
            variant = {**s, "title": f"t{k}"}  # not a cached compile
            json_schema(json.dumps(variant), vocab, engine="grammar").matcher().mask()
            json_schema(json.dumps(variant), vocab, engine="automaton")
            branches_disjoint({"type": "integer"}, {"type": "object", "properties": {"q": {"const": k}}})
        assert _decc_garbage() == []
    finally:
        if enabled:
            gc.enable()
