"""Compile limits: a compile that runs past `Limits.max_seconds` stops with a GrammarLimitError that says so
(a zero-second limit makes the first check fail, so these tests do not depend on the machine's speed)."""

from __future__ import annotations

import pytest

from decc.grammars import GrammarLimitError, Limits, Vocabulary, cfg_builtin, json_schema, regex
from decc.grammars.json_schema import compile_json_schema
from decc.grammars.limits import check_time, deadline

VOCAB = Vocabulary.from_token_bytes([b"a", b"b", b"{", b"}", b'"', b":", b",", b"1", b" ", None], eos_id=9)
NOW = Limits(max_seconds=0.0)


@pytest.mark.parametrize(
    "compile_it",
    [
        lambda: regex("[ab]{2,40}", VOCAB, NOW),
        lambda: json_schema({"type": "object", "properties": {"a": {"type": "string"}}}, VOCAB, limits=NOW),
        lambda: compile_json_schema({"type": "array", "items": {"type": "integer"}}, limits=NOW),
        lambda: cfg_builtin("arith", VOCAB, limits=NOW),
    ],
    ids=["regex", "json_schema", "compile_json_schema", "cfg"],
)
def test_time_limit_stops_a_compile(compile_it) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GrammarLimitError, match=r"took longer than the compile time limit \(0 s\)") as e:
        compile_it()
    assert "max_seconds" in e.value.render()


def test_default_limit_lets_compiles_finish_and_outer_deadline_wins() -> None:
    assert regex("[ab]{2,40}", VOCAB).matcher().advance(0)
    check_time("nothing")  # no compile running: no deadline
    with deadline(0.0):
        with deadline(None), deadline(3600.0):  # nested compiles keep the outer deadline
            with pytest.raises(GrammarLimitError):
                check_time("an inner step")
