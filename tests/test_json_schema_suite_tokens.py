"""The official JSON Schema Test Suite (draft 2020-12) against `json_schema(schema, vocab)`, token by token.

The token-level counterpart of `test_json_schema_suite.py`, with the embedded model's tokenizer. Every
schema either binds to the vocabulary or is refused cleanly (UnsupportedSchema / InvalidSchema /
GrammarLimitError: counted as unsupported, never a wrong answer; `json_schema` also refuses the schemas
that accept no value at all, such as `false`, which the byte-level test counts as compiled). For a bound
schema, each instance is written both compactly (`separators=(",", ":")`) and as `json.dumps` writes it
by default, and each text is fed to a fresh matcher in its canonical tokenization
(`tok.encode(text, add_special_tokens=False)`):

- a valid instance: every token is set in the bitmask row and accepted by `advance`, then EOS is set in
  the row and accepted;
- an invalid instance: some token is refused, or EOS is not allowed at the end.

At every step the bitmask row must agree with `allowed_token_ids()` and with `advance` (bit set <=> the
token is taken; `advance` leaves the matcher unchanged on refusal), and `is_accepting()` with the EOS
bits. As in the byte-level test, instances are reordered into schema order (decc writes object keys in
schema order; instances that cannot be are skipped), integral floats are written as ints, and
`format.json` is skipped (in 2020-12 `format` is an annotation, while decc asserts it).

No sampling: every schema and instance is checked. Nearly all of the time (about a minute on 2 busy
cores) is `json_schema` compiling and binding the ~140 schemas to the 49k-token vocabulary; walking the
~6k tokens takes about a second.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _suite import SUITE, serializations, suite_files

from decc.grammars import GrammarLimitError, InvalidSchema, UnsupportedSchema, json_schema

REFUSALS = (UnsupportedSchema, InvalidSchema, GrammarLimitError)

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not SUITE.is_dir(), reason="JSON Schema Test Suite not found"),
]


@functools.cache
def _groups(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def _constraint(path: Path, index: int, vocab: Any) -> Any:
    """The constraint decc binds one schema of the suite to, or the refusal it raised (an exception).

    Not cached here: this test is the only user, each schema is bound once, and `json_schema` keeps its own
    cache of recent bindings."""
    try:
        return json_schema(_groups(path)[index]["schema"], vocab)
    except REFUSALS as e:
        return e


def _bit(row: Any, token_id: int) -> bool:
    return bool((int(row[token_id >> 5]) >> (token_id & 31)) & 1)


def _row_disagrees(row: Any, matcher: Any, size: int) -> bool:
    """The bitmask row and `allowed_token_ids()` name different token sets."""
    bits = np.unpackbits(row.numpy().view(np.uint8), bitorder="little")[:size]
    return not np.array_equal(np.flatnonzero(bits), np.sort(matcher.allowed_token_ids()))


def _walk(constraint: Any, tokens: list[int], eos: list[int], torch: Any) -> tuple[bool, str]:
    """Feed `tokens`, then EOS, to a fresh matcher: (accepted, why not). A disagreement between the bitmask,
    `allowed_token_ids`, `advance` and `is_accepting` is reported as a reason starting with "BUG"."""
    size = constraint.vocab.size
    matcher = constraint.matcher()
    row = torch.zeros((size + 31) // 32, dtype=torch.int32)
    for pos, t in enumerate(tokens):
        matcher.fill_bitmask(row)
        if _row_disagrees(row, matcher, size):
            return False, f"BUG at token {pos}: bitmask row != allowed_token_ids()"
        allowed = _bit(row, t)
        taken = matcher.advance(t)
        if allowed != taken:
            return False, f"BUG at token {pos} ({t}): mask bit {allowed} but advance() -> {taken}"
        if not taken:
            return False, f"token {pos} ({t}) refused"
    matcher.fill_bitmask(row)
    if _row_disagrees(row, matcher, size):
        return False, "BUG at end: bitmask row != allowed_token_ids()"
    eos_bits = {_bit(row, e) for e in eos}
    accepting = matcher.is_accepting()
    if eos_bits != {accepting}:
        return False, f"BUG at end: EOS bits {eos_bits} but is_accepting() -> {accepting}"
    taken = matcher.advance(eos[0])
    if taken != accepting:
        return False, f"BUG at end: is_accepting() -> {accepting} but advance(EOS) -> {taken}"
    return taken, "" if taken else "EOS not allowed at the end"


def test_json_schema_suite_token_level(decc_tokenizer: Any, decc_vocab: Any) -> None:
    import torch

    tok, vocab = decc_tokenizer, decc_vocab
    eos = sorted(vocab.eos_ids)
    assert eos, "the vocabulary has no EOS id"
    names = ("compact", "default")
    rows = []
    wrong: list[str] = []
    totals = [0] * 8
    for path in suite_files():
        # compiled, unsupported, valid ok/total, invalid rejected/total, skipped, tokens (EOS included)
        counts = [0] * 8
        for index, group in enumerate(_groups(path)):
            schema = group["schema"]
            try:
                constraint = _constraint(path, index, vocab)
            except Exception as e:  # anything but a clean refusal is a wrong answer
                wrong.append(f"{path.name}[{index}] {group['description']}: {type(e).__name__}: {e}")
                continue
            if isinstance(constraint, Exception):
                counts[1] += 1
                continue
            counts[0] += 1
            for test in group["tests"]:
                texts = serializations(test["data"], schema)
                if texts is None:
                    counts[6] += 1
                    continue
                good = True
                for name, text in zip(names, texts, strict=True):
                    tokens = tok.encode(text, add_special_tokens=False)
                    counts[7] += len(tokens) + 1
                    accepted, why = _walk(constraint, tokens, eos, torch)
                    if accepted != test["valid"] or why.startswith("BUG"):
                        good = False
                        expected = "valid" if test["valid"] else "invalid"
                        wrong.append(
                            f"{path.name}[{index}] {group['description']} / {test['description']} "
                            f"({expected}, {name}): {text} tokens={tokens}: "
                            f"{why or 'accepted'}"
                        )
                if test["valid"]:
                    counts[3] += 1
                    counts[2] += good
                else:
                    counts[5] += 1
                    counts[4] += good
        rows.append((path.name, counts))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    lines = [
        f"{'file':32} {'compiled':>8} {'unsupp':>7} {'valid ok':>10} {'invalid rej':>12} "
        f"{'skipped':>8} {'tokens':>7}"
    ]
    for name, c in [*rows, ("TOTAL", totals)]:
        lines.append(f"{name:32} {c[0]:8} {c[1]:7} {c[2]:>4}/{c[3]:<5} {c[4]:>6}/{c[5]:<5} {c[6]:8} {c[7]:7}")
    table = "\n".join(lines)
    print("\n" + table)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:40]) + "\n\n" + table
    assert totals[0] > 130, f"only {totals[0]} schemas compiled: is the suite complete?\n{table}"
