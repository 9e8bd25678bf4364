"""`decc test`: property-test every constraint of a program against independent oracles, on its tokenizer.

For each constrained generation step:
1. soundness: random walks through the token-level masks (exactly what decoding uses: `fill_bitmask`, then
   `advance`) produce texts that an independent oracle accepts (`re.fullmatch`, `jsonschema`);
2. completeness: texts from independent generators (hypothesis' own `from_regex`, `hypothesis-jsonschema`)
   and the step's declared `examples` are accepted token by token, under the canonical and under random
   tokenizations;
3. rejection: declared `counterexamples` are refused.
Failures are shrunk by hypothesis and shown as a minimal counterexample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from decc.compiler import ir
from decc.compiler.plan import PlanGen, plan_gens
from decc.compiler.printer import constraint_text
from decc.testing import SchemaOrderError, _walk_info, to_schema_order, tokenizations
from decc.testing import _shortest_completion as _completion

Oracle = Callable[[str], str | None]  # None when valid, else the reason


@dataclass
class Check:
    name: str
    passed: int = 0
    total: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class StepReport:
    name: str
    constraint: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def oracle_for(c: ir.Constraint) -> Oracle:
    """An independent judge of validity: Python's `re`, the `jsonschema` package, Lark, or plain Python."""
    if isinstance(c, ir.Choice):
        options = set(c.options)
        return lambda s: None if s in options else "is not one of the choices"
    if isinstance(c, ir.Length):
        lo, hi = c.lo, c.hi

        def length(s: str) -> str | None:
            if len(s) < lo or (hi is not None and len(s) > hi):
                return f"has {len(s)} characters, outside [{lo}, {'' if hi is None else hi}]"
            return None

        return length
    if isinstance(c, ir.All):
        judges = [oracle_for(p) for p in c.parts]
        return lambda s: next((r for r in (j(s) for j in judges) if r), None)
    if isinstance(c, ir.Regex):
        compiled = re.compile(c.pattern, re.ASCII)
        return lambda s: None if compiled.fullmatch(s) else "does not match the regex (re.fullmatch)"
    if isinstance(c, ir.Grammar):
        from lark import Lark
        from lark.exceptions import LarkError

        parser = Lark(c.text, start=c.start, parser="earley", lexer="dynamic_complete")

        def parses(s: str) -> str | None:
            try:
                parser.parse(s)
            except LarkError as e:
                return f"Lark's Earley parser rejects it: {str(e).splitlines()[0]}"
            return None

        return parses
    import jsonschema

    schema = json.loads(c.schema)
    # The schema's own draft's format checker: a bare `FormatChecker()` mixes every draft's checkers and, for
    # one, judges "time" by draft 3's rules (no fractions, no offsets).
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def judge(s: str) -> str | None:
        try:
            value = json.loads(s)
        except json.JSONDecodeError as e:
            return f"not JSON: {e.msg}"
        error = next(iter(validator.iter_errors(value)), None)
        return None if error is None else f"jsonschema: {error.message}"

    return judge


def independent(c: ir.Constraint) -> st.SearchStrategy[str] | None:
    """Valid texts from a generator that shares nothing with decc's token-level machinery.

    For grammars there is no outside generator: sentences come from `decc.testing`'s walk of the grammar's
    RTN, which shares the grammar's normalization with the matcher but none of its token classification,
    mask cache or Earley charts (the soundness check judges the normalization against Lark itself).
    """
    if isinstance(c, ir.Grammar):
        from decc.testing import from_constraint

        return from_constraint(c, max_bytes=96) if c.compiled is not None else None
    if isinstance(c, ir.Regex):
        return st.from_regex(re.compile(c.pattern, re.ASCII), fullmatch=True)
    if isinstance(c, ir.Choice):
        return st.sampled_from(c.options)
    if isinstance(c, ir.Length):
        return st.text(min_size=c.lo, max_size=c.hi if c.hi is not None else c.lo + 40)
    if isinstance(c, ir.All):  # draws of the most selective part that the other parts accept too
        order = (ir.Choice, ir.Regex, ir.Range, ir.JsonSchema, ir.Length)
        first = min(c.parts, key=lambda p: next(i for i, t in enumerate(order) if isinstance(p, t)))
        base, judge = independent(first), oracle_for(c)
        return None if base is None else base.filter(lambda s: judge(s) is None)
    import hypothesis_jsonschema

    schema = json.loads(c.schema)

    def serialize(pair: tuple[Any, bool]) -> str:
        value, compact = pair
        try:
            value = to_schema_order(value, schema)
        except SchemaOrderError:
            assume(False)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":") if compact else None)

    return st.tuples(hypothesis_jsonschema.from_schema(schema), st.booleans()).map(serialize)


class _Tokens:
    """The tokenizer side: bytes of ids, the canonical tokenization, EOS."""

    def __init__(self, vocab: Any, tokenizer: Any) -> None:
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.eos = sorted(vocab.eos_ids)

    def text(self, ids: list[int]) -> str:
        return b"".join(self.vocab.token_bytes[i] or b"" for i in ids).decode("utf-8", errors="replace")

    def canonical(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))


def accepts(constraint: Any, ids: list[int]) -> str | None:
    """None when the matcher takes every token and accepts at the end; else where it refused."""
    m = constraint.matcher()
    for i, t in enumerate(ids):
        if not m.advance(t):
            return f"token {i} (id {t}) refused"
    return None if m.is_accepting() else "incomplete: EOS not allowed at the end"


def _allowed(m: Any, words: int) -> list[int]:
    row = torch.zeros(words, dtype=torch.int32)
    m.fill_bitmask(row)
    bits = (row.view(-1, 1) >> torch.arange(32, dtype=torch.int32)) & 1
    return torch.nonzero(bits.view(-1)).view(-1).tolist()


def soundness(step: PlanGen, oracle: Oracle, toks: _Tokens, draws: int, seed_value: int) -> Check:
    check = Check("soundness")
    constraint = step.constraint
    words = (toks.vocab.size + 31) // 32
    eos = set(toks.eos)
    dfa = getattr(constraint, "dfa", None)
    dist = np.asarray(_walk_info(dfa).dist) if dfa is not None else None
    rtn = getattr(constraint, "rtn", None) if dfa is None else None  # a grammar: steer home by its RTN
    last: list[str] = []

    def toward(texts: list[int], completion: bytes) -> int:
        """The longest allowed token that starts `completion`, or -1."""
        best, size = -1, 0
        for t in texts:
            b = toks.vocab.token_bytes[t] or b""
            if len(b) > size and completion.startswith(b):
                best, size = t, len(b)
        return best

    @st.composite
    def walk(draw: Any) -> list[int]:
        m = constraint.matcher()
        ids: list[int] = []
        while True:
            allowed = _allowed(m, words)
            texts = [t for t in allowed if t not in eos]
            can_end = any(t in eos for t in allowed)
            if can_end and (not texts or len(ids) >= 48 or draw(st.integers(0, 3)) == 0):
                return ids
            if not texts:
                raise AssertionError(f"dead end: nothing allowed after {ids}")
            if len(ids) >= 160 and dist is None:  # a walk that does not end: not evidence either way
                check.skipped += 1
                assume(False)
            if len(ids) >= 48 and dist is not None:
                # head home: the allowed token whose next state is closest to acceptance
                a = constraint.automaton
                out_ids, out_next = a.edges(m.state)
                t = int(out_ids[int(np.argmin(dist[out_next]))])
            elif len(ids) >= 48 and rtn is not None and (t := toward(texts, _completion(rtn, m.chart))) >= 0:
                pass  # head home: the longest allowed token that starts the chart's shortest completion
            else:
                t = texts[draw(st.integers(0, len(texts) - 1))]
            if not m.advance(t):
                raise AssertionError(f"the mask allowed token {t} but advance refused it")
            ids.append(t)

    @seed(seed_value)
    @settings(max_examples=draws, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(walk())
    def prop(ids: list[int]) -> None:
        check.total += 1
        text = toks.text(ids)
        reason = oracle(text)
        if reason is not None:
            last[:] = [f"{text!r} (tokens {ids}): {reason}"]
            raise AssertionError(reason)
        check.passed += 1

    _run(prop, check, last)
    return check


def completeness(step: PlanGen, examples: list[str], toks: _Tokens, draws: int, seed_value: int) -> Check:
    check = Check("completeness")
    constraint = step.constraint
    assert step.op.constraint is not None
    for text in examples:
        check.total += 1
        reason = accepts(constraint, toks.canonical(text))
        if reason:
            check.failures.append(f"declared example {text!r}: {reason}")
        else:
            check.passed += 1
    last: list[str] = []
    generator = independent(step.op.constraint)
    if generator is None:
        return check

    @seed(seed_value)
    @settings(max_examples=draws, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        text = data.draw(generator, label="instance")
        try:
            split = data.draw(tokenizations(text, toks.vocab), label="tokenization")
        except ValueError:  # e.g. lone surrogates: no UTF-8 text, so no model can write it
            check.skipped += 1
            return
        check.total += 1
        for name, ids in (("canonical", toks.canonical(text)), ("random", split)):
            reason = accepts(constraint, ids)
            if reason:
                last[:] = [f"{text!r} ({name} tokenization {ids}): {reason}"]
                raise AssertionError(reason)
        check.passed += 1

    _run(prop, check, last)
    return check


def rejection(step: PlanGen, oracle: Oracle, toks: _Tokens) -> Check:
    check = Check("rejection")
    for text in step.op.counterexamples:
        check.total += 1
        if oracle(text) is None:
            check.failures.append(f"declared counterexample {text!r} is valid by the oracle")
        elif accepts(step.constraint, toks.canonical(text)) is None:
            check.failures.append(f"declared counterexample {text!r} was accepted")
        else:
            check.passed += 1
    return check


def _run(prop: Callable[[], None], check: Check, last: list[str]) -> None:
    try:
        prop()
    except AssertionError as e:
        check.failures.append(last[0] if last else str(e))
    except Exception as e:  # a generator that cannot handle this constraint: say so, do not pass silently
        check.failures.append(f"could not run: {type(e).__name__}: {e}")


def check_program(program: Any, *, draws: int = 100, seed_value: int = 0) -> list[StepReport]:
    plan = program.plan()
    from decc.runtime.model import load_tokenizer

    toks = _Tokens(plan.vocab, load_tokenizer(program.model))
    reports = []
    for step in plan_gens(plan.steps):
        if step.constraint is None:
            continue
        op = step.op
        assert op.constraint is not None
        oracle = oracle_for(op.constraint)
        checks = []
        examples = Check("examples")
        for text in op.examples:
            examples.total += 1
            reason = oracle(text)
            if reason:
                examples.failures.append(f"declared example {text!r} violates the constraint: {reason}")
            else:
                examples.passed += 1
        checks.append(examples)
        checks.append(soundness(step, oracle, toks, draws, seed_value))
        checks.append(completeness(step, list(op.examples), toks, draws, seed_value))
        checks.append(rejection(step, oracle, toks))
        reports.append(StepReport(op.name, f"where={constraint_text(op.constraint)}", checks))
    return reports


def render(reports: list[StepReport], path: str, draws: int, seed_value: int) -> str:
    lines = [f"decc test {path}  ({draws} draws per check, seed {seed_value})"]
    if not reports:
        lines.append("  no constrained generation steps: nothing to test")
    for r in reports:
        lines.append(f"  gen {r.name}  {r.constraint}")
        for c in r.checks:
            if c.total == 0 and c.ok and c.name in ("examples", "rejection"):
                continue
            skipped = f", {c.skipped} skipped" if c.skipped else ""
            status = "ok" if c.ok else "FAILED"
            lines.append(f"    {c.name:<13} {c.passed}/{c.total} passed{skipped}  {status}")
            for f in c.failures:
                lines.append(f"      counterexample: {f}")
    ok = all(r.ok for r in reports)
    lines.append("PASS" if ok else "FAIL")
    return "\n".join(lines)
