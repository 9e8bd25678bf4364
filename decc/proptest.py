"""`decc test`: property-test every constraint of a program against independent oracles, on its tokenizer.

For each constrained generation step:
1. soundness: random walks through the token-level masks (exactly what decoding uses: `fill_bitmask`, then
   `advance`) produce texts that an independent oracle accepts (`re.fullmatch`, the `regex` module for
   Unicode properties, `jsonschema`, Lark);
2. completeness: texts from independent generators (hypothesis' own `from_regex`, `hypothesis-jsonschema`)
   and the step's declared `examples` are accepted token by token, under the canonical and under random
   tokenizations; a generated text the oracle rejects is set aside (the generator ignored a keyword), not
   held against decc;
3. rejection: declared `counterexamples` are refused.
Failures are shrunk by hypothesis and shown as a minimal counterexample with the tokens that led to it.
A check this program's constraint cannot run (no generator for a feature) is reported as skipped, with why.
The oracles and generators are in `decc.proptest_oracles`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException, Unsatisfiable

from decc.compiler import ir
from decc.compiler.plan import PlanGen, plan_gens
from decc.compiler.printer import constraint_text
from decc.grammars.tokens.vocab import encode_in_context
from decc.proptest_oracles import Oracle, SetAside, Unjudgeable, Unsupported, independent, oracle_for
from decc.testing import completer, tokenizations

__all__ = ["Check", "StepReport", "Tokens", "check_constraint", "check_program", "oracle_for", "render"]

HOME_AFTER = 48  # tokens of random walk, then the walk heads home along the matcher's shortest completion
MAX_WALK = 512  # a walk still open after this many tokens is set aside: not evidence either way


@dataclass
class Check:
    """One check's tally. Once a failure is found hypothesis shrinks it: those reruns are not counted."""

    name: str
    passed: int = 0
    failed: int = 0
    skips: dict[str, list[Any]] = field(default_factory=dict)  # why -> [count, first example]
    failures: list[str] = field(default_factory=list)
    not_run: str | None = None  # why the whole check was skipped
    settled: bool = False

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def skipped(self) -> int:
        return sum(n for n, _ in self.skips.values())

    @property
    def ok(self) -> bool:
        return not self.failures

    def count_pass(self) -> None:
        if not self.settled:
            self.passed += 1

    def skip(self, why: str, example: str | None = None) -> None:
        if not self.settled:
            entry = self.skips.setdefault(why, [0, example])
            entry[0] += 1

    def fail(self, message: str) -> None:
        self.failed += 1
        self.failures.append(message)


@dataclass
class StepReport:
    name: str
    constraint: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- the checks -------------------------------------------------------------------------------------------


class Tokens:
    """The tokenizer side: bytes of ids, the canonical tokenization, EOS."""

    def __init__(self, vocab: Any, tokenizer: Any) -> None:
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.eos = sorted(vocab.eos_ids)
        self._index: dict[bytes, tuple[int, ...]] | None = None
        self.longest = 0

    def index(self) -> dict[bytes, tuple[int, ...]]:
        """Text tokens by their bytes (several ids may share bytes); built once."""
        if self._index is None:
            found: dict[bytes, list[int]] = {}
            for i, b in enumerate(self.vocab.token_bytes):
                if b and i not in self.vocab.special_ids:
                    found.setdefault(b, []).append(i)
            self._index = {b: tuple(ids) for b, ids in found.items()}
            self.longest = max(map(len, self._index), default=0)
        return self._index

    def bytes_of(self, ids: Iterable[int]) -> bytes:
        return b"".join(self.vocab.token_bytes[i] or b"" for i in ids)

    def text(self, ids: list[int]) -> str:
        return self.bytes_of(ids).decode("utf-8", errors="replace")

    def spell(self, ids: list[int]) -> str:
        """Token ids with the text of each: `[39428 '{"', 311 'id']`."""
        pieces = (f"{t} {(self.vocab.token_bytes[t] or b'').decode('utf-8', 'replace')!r}" for t in ids)
        return "[" + ", ".join(pieces) + "]"

    def canonical(self, text: str) -> list[int]:
        """The tokens a model writes for `text` mid-context (no SentencePiece prefix space)."""
        return encode_in_context(self.tokenizer, text)


def accepts(constraint: Any, ids: list[int], toks: Tokens | None = None) -> str | None:
    """None when the matcher takes every token and accepts at the end; else where it refused, after what."""
    m = constraint.matcher()
    for i, t in enumerate(ids):
        try:
            taken = m.advance(t)
        except Exception as e:  # a crash in decc's matcher is a failure, not a skip
            return f"advance crashed on token {i} (id {t}): {type(e).__name__}: {e}"
        if not taken:
            if toks is None:
                return f"token {i} (id {t}) refused"
            return (
                f"token {i} ({toks.spell([t])[1:-1]}) refused after {toks.text(ids[:i])!r} "
                f"(tokens {toks.spell(ids[:i])})"
            )
    return None if m.is_accepting() else "incomplete: EOS not allowed at the end"


def _allowed(m: Any, words: int) -> np.ndarray:
    row = torch.zeros(words, dtype=torch.int32)
    m.fill_bitmask(row)
    return np.flatnonzero(np.unpackbits(row.numpy().view(np.uint8), bitorder="little"))


def _settings(draws: int) -> settings:
    return settings(
        max_examples=draws,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )


def soundness(constraint: Any, oracle: Oracle, toks: Tokens, draws: int, seed_value: int) -> Check:
    check = Check("soundness")
    words = (toks.vocab.size + 31) // 32
    eos = np.asarray(toks.eos)
    try:
        complete = completer(constraint)
    except TypeError:  # a matcher decc.testing does not know: walks that do not end are set aside
        complete = None
    last: list[str] = []

    def home(m: Any, ids: list[int], texts: np.ndarray, guide: bytes | None) -> tuple[int, bytes | None]:
        """The longest allowed token that spells a prefix of the shortest completion, and what then remains
        of it; -1 when none does (the walk then goes on at random)."""
        if guide is None and complete is not None:
            guide = complete(toks.bytes_of(ids), m)
        if not guide:
            return -1, None
        index = toks.index()
        for size in range(min(len(guide), toks.longest), 0, -1):
            spelled = index.get(guide[:size], ())
            if spelled:
                hit = np.intersect1d(np.asarray(spelled), texts)
                if len(hit):
                    return int(hit[0]), guide[size:]
        return -1, None

    def broken(message: str) -> None:
        check.settled = True
        last[:] = [message]
        raise AssertionError(message)

    @st.composite
    def walk(draw: Any) -> list[int]:
        m = constraint.matcher()
        ids: list[int] = []
        guide: bytes | None = None
        while True:
            allowed = _allowed(m, words)
            is_eos = np.isin(allowed, eos)
            texts = allowed[~is_eos]
            can_end = bool(is_eos.any())
            if can_end and (not len(texts) or len(ids) >= HOME_AFTER or draw(st.integers(0, 3)) == 0):
                return ids
            if not len(texts):
                broken(f"dead end: nothing allowed after {toks.text(ids)!r} (tokens {toks.spell(ids)})")
            if len(ids) >= MAX_WALK:
                check.skip(f"walks still open after {MAX_WALK} tokens (not evidence either way)")
                assume(False)
            t = -1
            if len(ids) >= HOME_AFTER:
                t, guide = home(m, ids, texts, guide)
            if t < 0:
                t = int(texts[draw(st.integers(0, len(texts) - 1))])
            if not m.advance(t):
                broken(
                    f"the mask allowed token ({toks.spell([t])[1:-1]}) after {toks.text(ids)!r} "
                    f"(tokens {toks.spell(ids)}) but advance refused it"
                )
            ids.append(t)

    @seed(seed_value)
    @_settings(draws)
    @given(walk())
    def prop(ids: list[int]) -> None:
        text = toks.text(ids)
        try:
            reason = oracle(text)
        except Exception as e:  # the oracle, not decc: set aside
            check.skip(f"texts the oracle could not judge ({_why(e)})", _short(text))
            return
        if reason is not None:
            check.settled = True
            last[:] = [f"{text!r}: {reason}; walked {toks.spell(ids)}"]
            raise AssertionError(reason)
        check.count_pass()

    _run(prop, check, last, crash_fails=True)
    return check


def completeness(
    constraint: Any,
    c: ir.Constraint,
    oracle: Oracle,
    examples: list[str],
    toks: Tokens,
    draws: int,
    seed_value: int,
) -> Check:
    check = Check("completeness")
    for text in examples:
        reason = accepts(constraint, toks.canonical(text), toks)
        if reason:
            check.fail(f"declared example {text!r}: {reason}")
        else:
            check.passed += 1
    last: list[str] = []
    try:
        generator, source = independent(c)
    except Unsupported as e:
        check.not_run = str(e)
        return check
    except Exception as e:  # a generator that refuses this constraint up front
        check.not_run = f"no generator for it: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return check

    @seed(seed_value)
    @_settings(draws)
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        try:
            text = data.draw(generator, label="instance")
        except SetAside as e:
            check.skip(f"instances decc writes otherwise by design: {e}")
            assume(False)
        except HypothesisException:
            raise
        except Exception as e:
            raise Unsupported(f"{source} cannot generate instances ({type(e).__name__}: {e})") from None
        try:
            reason = oracle(text)
        except Exception as e:  # the oracle, not decc: set aside
            check.skip(f"instances the oracle could not judge ({_why(e)})", _short(text))
            assume(False)
        if reason is not None:
            check.skip(f"instances from {source} that the oracle rejects", f"{_short(text)}: {reason}")
            assume(False)
        try:
            split = data.draw(tokenizations(text, toks.vocab), label="tokenization")
        except ValueError:  # a character no token spells (or lone surrogates): no model can write it
            check.skip("instances with characters this tokenizer cannot spell", _short(text))
            assume(False)
        for name, ids in (("canonical", toks.canonical(text)), ("random", split)):
            reason = accepts(constraint, ids, toks)
            if reason:
                check.settled = True
                last[:] = [f"{text!r} ({name} tokenization): {reason}"]
                raise AssertionError(reason)
        check.count_pass()

    _run(prop, check, last)
    return check


def _why(e: Exception) -> str:
    return str(e) if isinstance(e, Unjudgeable) else type(e).__name__


def _short(text: str, limit: int = 60) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def rejection(constraint: Any, oracle: Oracle, counterexamples: Iterable[str], toks: Tokens) -> Check:
    check = Check("rejection")
    for text in counterexamples:
        try:
            valid = oracle(text) is None
        except Unjudgeable as e:
            check.skip(f"declared counterexamples the oracle could not judge ({e})", _short(text))
            continue
        if valid:
            check.fail(f"declared counterexample {text!r} is valid by the oracle")
        elif accepts(constraint, ids := toks.canonical(text)) is None:
            check.fail(f"declared counterexample {text!r} was accepted (tokens {toks.spell(ids)})")
        else:
            check.passed += 1
    return check


def _run(prop: Callable[[], None], check: Check, last: list[str], crash_fails: bool = False) -> None:
    """Run a hypothesis property: a failure is the (shrunk) counterexample; a property that cannot run on
    this constraint is a skipped check with the reason, never a crash. Where only decc's own code runs
    (`crash_fails`: the soundness walk), an unexpected exception is a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generators' own warnings (e.g. patterns they cannot read)
        try:
            prop()
        except AssertionError as e:
            check.fail(last[0] if last else str(e))
        except Unsupported as e:
            check.not_run = str(e)
        except Unsatisfiable:
            check.not_run = "every draw was set aside (see why below)"
        except Exception as e:
            if crash_fails:
                check.fail(last[0] if last else f"crashed: {type(e).__name__}: {e}")
            else:
                check.not_run = f"could not run: {type(e).__name__}: {e}"
        check.settled = True


def check_constraint(
    c: ir.Constraint,
    constraint: Any,
    toks: Tokens,
    *,
    examples: Iterable[str] = (),
    counterexamples: Iterable[str] = (),
    draws: int = 100,
    seed_value: int = 0,
) -> list[Check]:
    """Every check of one constraint: `c` as the program declares it (for the oracle and the independent
    generators) and `constraint`, its token-level form (what decoding runs)."""
    declared = Check("examples")
    try:
        oracle = oracle_for(c)
    except Exception as e:  # noqa: BLE001 (an oracle that cannot read this constraint: nothing to judge by)
        why = f"no oracle for this constraint: {type(e).__name__}: {e}"
        return [Check(name, not_run=why) for name in ("examples", "soundness", "completeness", "rejection")]
    examples = list(examples)
    for text in examples:
        try:
            reason = oracle(text)
        except Unjudgeable as e:
            declared.skip(f"declared examples the oracle could not judge ({e})", _short(text))
            continue
        if reason:
            declared.fail(f"declared example {text!r} violates the constraint: {reason}")
        else:
            declared.passed += 1
    return [
        declared,
        soundness(constraint, oracle, toks, draws, seed_value),
        completeness(constraint, c, oracle, examples, toks, draws, seed_value),
        rejection(constraint, oracle, counterexamples, toks),
    ]


def check_program(program: Any, *, draws: int = 100, seed_value: int = 0) -> list[StepReport]:
    plan = program.plan()
    from decc.runtime.model import load_tokenizer

    toks = Tokens(plan.vocab, load_tokenizer(program.model))
    reports = []
    # the plan's gen steps and the IR's (for the constraint's oracle and declared examples), in one order
    for step, op in zip(plan_gens(plan.steps), program.ir.generates(), strict=True):
        reports.extend(_step_report(step, op, toks, draws, seed_value))
    return reports


def _step_report(
    step: PlanGen, op: ir.Generate, toks: Tokens, draws: int, seed_value: int
) -> list[StepReport]:
    if step.constraint is None:
        return []
    assert op.constraint is not None
    checks = check_constraint(
        op.constraint,
        step.constraint,
        toks,
        examples=op.examples,
        counterexamples=op.counterexamples,
        draws=draws,
        seed_value=seed_value,
    )
    return [StepReport(op.name, f"where={constraint_text(op.constraint)}", checks)]


# -- the report -------------------------------------------------------------------------------------------


def render(reports: list[StepReport], path: str, draws: int, seed_value: int) -> str:
    lines = [f"decc test {path}  ({draws} draws per check, seed {seed_value})"]
    if not reports:
        lines.append("  no constrained generation steps: nothing to test")
    failed: list[str] = []
    not_run = set_aside = 0
    for r in reports:
        lines.append(f"  gen {r.name}  {r.constraint}")
        for c in r.checks:
            if c.total == 0 and c.ok and c.not_run is None and c.name in ("examples", "rejection"):
                continue
            skipped = f", {c.skipped} skipped" if c.skipped else ""
            status = "FAILED" if not c.ok else "ok"
            lines.append(f"    {c.name:<13} {c.passed}/{c.total} passed{skipped}  {status}")
            if c.not_run is not None:
                not_run += 1
                lines.append(f"      not run: {c.not_run}")
            for why, (n, example) in c.skips.items():
                set_aside += n
                lines.append(f"      skipped {n}: {why}" + (f", e.g. {example}" if example else ""))
            for f in c.failures:
                lines.append(f"      counterexample: {f}")
            if not c.ok:
                failed.append(f"gen {r.name} {c.name}")
    notes = []
    if not_run:
        notes.append(f"{not_run} check{'s' if not_run > 1 else ''} not run")
    if set_aside:
        notes.append(f"{set_aside} draws skipped")
    if notes:  # on a line of its own: the last line is the verdict alone (PASS, or FAIL and what failed)
        lines.append(f"  note: {', '.join(notes)} (see above)")
    if failed:
        lines.append(f"FAIL: {len(failed)} check{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}")
    else:
        lines.append("PASS")
    return "\n".join(lines)
