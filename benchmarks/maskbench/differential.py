"""decc's token masks against llguidance's, step by step along a valid instance (issue 20, item 4).

Both engines get the same tokenizer, the compact separators and no free whitespace (llguidance:
`whitespace_flexible=False`). At every step (each token of the instance's canonical tokenization, then the
end, where EOS is decided) the two full masks must be equal, except where a documented semantic difference
explains the disagreement. Each such difference is a named filter that checks its explanation:

* `separator-space`: decc's whitespace policy (`compact-or-default`) also takes `json.dumps`' default
  separators, so right after a structural `,` or `:` decc alone allows tokens that start with one space;
  the filter checks that llguidance accepts the rest of the token's bytes (the compact spelling).
* `number-exponent`: decc writes numbers under non-zero bounds with an exponent only on a short mantissa
  (grammars/json_exponents.py); inside a number llguidance alone allowing a token with `e`/`E` is that.
* `format`: the two engines' regexes for `format` differ at the edges; any disagreement inside (or at the
  start of) a string value whose schema has `format` is put down to it.
* `forced-prefix`: where the grammar forces the next bytes, llguidance allows only the canonical token(s)
  of them (its fast-forward "ff tokens"; guidance-ai/llguidance#263), decc every token that fits: decc
  alone allowing a token whose bytes are a prefix of llguidance's `compute_ff_bytes()` is that.
* `any-depth`: decc's `true` (a value no keyword constrains) nests at most `ANY_DEPTH` containers deep;
  llguidance alone allowing a token that opens containers past that depth inside such a value is that.
* `negative-zero`: decc writes an `integer` as `json.dumps` writes ints, so never `-0`; llguidance alone
  allowing `0` right after the `-` of an integer is that (decc's language is the smaller one here).
* `del-in-string`: RFC 8259 lets U+007F stand unescaped in a string; llguidance's string lexeme does not.
  decc alone allowing a token with byte 0x7F, inside a string or key, is that (llguidance is too strict).
* `pattern-escape`: decc matches `pattern`/`patternProperties` against the decoded string, so an escape
  (`\u0041` for `A`) may spell an allowed character; llguidance does not allow escapes there. decc alone
  allowing a token with a backslash inside a key or string whose schema has a pattern is that.

Every other disagreement is reported (`Disagreement`), with the prefix and a few tokens of each side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decc.grammars.json_schema import ANY_DEPTH

from .data import SchemaWalk

SEPS = (",", ":")
LLG_DEFAULTS = {"whitespace_flexible": False, "item_separator": SEPS[0], "key_separator": SEPS[1]}


@dataclass(frozen=True)
class Span:
    """Bytes [start, end) of one value or key of the serialized instance: kind "key", "string", "number",
    "literal" (true, false, null), "object" or "array"."""

    start: int
    end: int
    kind: str
    path: tuple[str | int, ...]


@dataclass
class Layout:
    """An instance serialized compactly, with where its scalars and structural separators lie."""

    text: bytes
    spans: list[Span] = field(default_factory=list)
    separators: set[int] = field(default_factory=set)  # byte offsets of structural ',' and ':'

    def span_at(self, offset: int, kinds: tuple[str, ...], end: bool = False) -> Span | None:
        """The innermost span of one of `kinds` that a prefix of `offset` bytes ends in: at its start or
        inside it (or at its end, with `end`)."""
        inside = [s for s in self.spans if s.kind in kinds and s.start <= offset < s.end + end]
        return min(inside, key=lambda s: s.end - s.start, default=None)


def layout(value: Any) -> Layout:
    """`json.dumps(value, separators=SEPS, ensure_ascii=False)` as bytes, with its spans."""
    out = Layout(b"")
    parts: list[bytes] = []
    size = 0

    def put(b: bytes) -> int:
        nonlocal size
        parts.append(b)
        size += len(b)
        return size

    def scalar(v: Any, kind: str, path: tuple[str | int, ...]) -> None:
        start = size
        put(json.dumps(v, ensure_ascii=False).encode())
        out.spans.append(Span(start, size, kind, path))

    def walk(v: Any, path: tuple[str | int, ...]) -> None:
        start = size
        if isinstance(v, dict):
            put(b"{")
            for i, (k, x) in enumerate(v.items()):
                if i:
                    out.separators.add(put(b",") - 1)
                scalar(k, "key", (*path, k))
                out.separators.add(put(b":") - 1)
                walk(x, (*path, k))
            put(b"}")
            out.spans.append(Span(start, size, "object", path))
        elif isinstance(v, list):
            put(b"[")
            for i, x in enumerate(v):
                if i:
                    out.separators.add(put(b",") - 1)
                walk(x, (*path, i))
            put(b"]")
            out.spans.append(Span(start, size, "array", path))
        elif isinstance(v, str):
            scalar(v, "string", path)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            scalar(v, "number", path)
        else:
            scalar(v, "literal", path)

    walk(value, ())
    out.text = b"".join(parts)
    if out.text != json.dumps(value, separators=SEPS, ensure_ascii=False).encode():
        raise AssertionError("layout() does not write what json.dumps writes")
    return out


@dataclass(frozen=True)
class Disagreement:
    step: int
    prefix: str
    decc_only: tuple[str, ...]  # a few decoded tokens each
    llg_only: tuple[str, ...]
    n_decc_only: int
    n_llg_only: int

    def __str__(self) -> str:
        return (
            f"step {self.step}, after {self.prefix!r}: decc alone allows {self.n_decc_only} tokens "
            f"{list(self.decc_only)}, llguidance alone {self.n_llg_only} {list(self.llg_only)}"
        )


@dataclass
class Walk:
    """One instance compared: the steps, the disagreements each filter explained, the rest."""

    steps: int = 0
    explained: dict[str, int] = field(default_factory=dict)
    unexplained: list[Disagreement] = field(default_factory=list)
    stopped: str = ""  # why the walk ended early ("" when every token and EOS were compared)


class Differential:
    """decc and llguidance bound to one tokenizer; `compare(schema, instance)` walks one instance."""

    def __init__(self, tok: Any, size: int, eos: int) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.torch
        import torch

        from decc import grammars

        self.llg, self.torch, self.grammars = llguidance, torch, grammars
        self.tok, self.size, self.eos = tok, size, eos
        self.vocab = grammars.Vocabulary.from_tokenizer(tok, size=size, eos_ids=frozenset({eos}))
        self.llg_tok = llguidance.hf.from_tokenizer(tok, n_vocab=size, eos_token=eos)
        self.fill_llg = llguidance.torch.fill_next_token_bitmask
        self.token_bytes = [b or b"" for b in self.vocab.token_bytes] + [b""] * (
            size - len(self.vocab.token_bytes)
        )

    def bind(self, schema: Any) -> tuple[Any, Any]:
        """(decc constraint, llguidance grammar); raises `Refused` when either engine declines the schema."""
        from decc.errors import DeccError

        try:
            constraint = self.grammars.json_schema(schema, self.vocab)
        except DeccError as e:
            raise Refused(f"decc: {str(e).splitlines()[0]}") from None
        try:
            grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, defaults=LLG_DEFAULTS)
        except Exception as e:
            raise Refused(f"llguidance: {e}") from None
        probe = self.llg.LLMatcher(self.llg_tok, grammar, log_level=0)
        if probe.is_error():
            raise Refused(f"llguidance: {probe.get_error().splitlines()[0]}")
        return constraint, grammar

    def compare(self, schema: Any, bound: tuple[Any, Any], instance: Any) -> Walk:
        constraint, grammar = bound
        lay = layout(instance)
        walker = SchemaWalk(schema)
        tokens = self.tok.encode(lay.text.decode(), add_special_tokens=False)
        d, g = constraint.matcher(), self.llg.LLMatcher(self.llg_tok, grammar, log_level=0)
        words = (self.size + 31) // 32
        row_d = self.torch.zeros(words, dtype=self.torch.int32)
        row_g = self.torch.zeros((1, words), dtype=self.torch.int32)
        result = Walk()
        offset = 0
        for step, t in enumerate([*tokens, None]):
            d.fill_bitmask(row_d)
            self.fill_llg(g, row_g, 0)
            md, mg = _bits(row_d, self.size), _bits(row_g[0], self.size)
            result.steps += 1
            if not np.array_equal(md, mg):
                self._judge(step, offset, lay, walker, g, md, mg, result)
            if t is None:
                break
            if not (md[t] and mg[t]):
                result.stopped = f"token {step} {self.token_bytes[t]!r} not allowed by both: walk ends"
                break
            ok_d, ok_g = d.advance(t), g.consume_token(t)
            if not (ok_d and ok_g):
                result.stopped = f"token {step}: advance decc {ok_d}, llguidance {ok_g}"
                break
            offset += len(self.token_bytes[t])
        return result

    def _judge(
        self, step: int, offset: int, lay: Layout, walker: SchemaWalk, g: Any, md: Any, mg: Any, out: Walk
    ) -> None:
        decc_only = [int(i) for i in np.flatnonzero(md & ~mg)]
        llg_only = [int(i) for i in np.flatnonzero(mg & ~md)]
        forced = bytes(g.compute_ff_bytes())
        at = _Context(offset, lay, walker, forced)
        rest_d = _sift(decc_only, self.token_bytes, at, DECC_ONLY, out, g, self.tok)
        rest_g = _sift(llg_only, self.token_bytes, at, LLG_ONLY, out, g, self.tok)
        if rest_d or rest_g:
            out.unexplained.append(
                Disagreement(
                    step,
                    lay.text[:offset].decode(errors="replace")[-80:],
                    tuple(self._show(rest_d)),
                    tuple(self._show(rest_g)),
                    len(rest_d),
                    len(rest_g),
                )
            )

    def _show(self, ids: list[int]) -> Iterator[str]:
        for t in ids[:6]:
            yield "<EOS>" if t == self.eos else repr(self.token_bytes[t].decode(errors="replace"))


class Refused(Exception):
    """One of the engines declines the schema: nothing to compare."""


def _bits(row: Any, size: int) -> np.ndarray:
    return np.unpackbits(row.numpy().view(np.uint8), bitorder="little")[:size].astype(bool)


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


# -- the filters: each checks its explanation, on the token's bytes at one step ----------------------------


@dataclass(frozen=True)
class _Context:
    offset: int  # bytes of the instance fed so far
    lay: Layout
    walker: SchemaWalk
    forced: bytes  # what llguidance says the grammar forces next

    def value(self, kinds: tuple[str, ...], end: bool = False) -> tuple[Span | None, list[dict]]:
        """The innermost value (or key) the prefix ends in and its subschemas; inside an array or object,
        between members, those of any member that could come next too."""
        span = self.lay.span_at(self.offset, kinds, end)
        if span is None:
            return None, []
        cands = self.walker.at(span.path[:-1] if span.kind == "key" else span.path)
        if span.kind in ("array", "object") and span.start < self.offset:
            members = [s for s in self.lay.spans if s.path[:-1] == span.path and s.kind != "key" and s.path]
            if span.kind == "array":
                subs = [x for i in range(len(members) + 1) for x in SchemaWalk.items(cands, i)]
            else:
                subs = [x for c in cands for x in _member_schemas(c)]
            cands = cands + self.walker.candidates(subs)
        return span, cands

    def has(self, kinds: tuple[str, ...], keywords: tuple[str, ...], end: bool = False) -> bool:
        return any(k in c for k in keywords for c in self.value(kinds, end)[1])

    def inside_text(self) -> bool:
        span = self.lay.span_at(self.offset, ("key", "string"))
        return span is not None and span.start < self.offset


VALUES = ("key", "string", "number", "literal", "object", "array")


def _member_schemas(s: dict) -> list[Any]:
    props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
    pattern = s.get("patternProperties") if isinstance(s.get("patternProperties"), dict) else {}
    return [*props.values(), *pattern.values(), s.get("additionalProperties", True)]


def _format(b: bytes, at: _Context) -> bool:
    span, cands = at.value(VALUES)
    return (
        span is not None and any("format" in c for c in cands) and (at.offset > span.start or b[:1] == b'"')
    )


def _forced_prefix(b: bytes, at: _Context) -> bool:
    return bool(b) and at.forced.startswith(b)


def _del_in_string(b: bytes, at: _Context) -> bool:
    return b"\x7f" in b and at.inside_text()


def _pattern_escape(b: bytes, at: _Context) -> bool:
    if b"\\" not in b:
        return False
    span, cands = at.value(VALUES)
    if span is None or (at.offset == span.start and b[:1] != b'"'):
        return False
    keywords = ("patternProperties", "propertyNames", "pattern", "format")
    return any(k in c for k in keywords for c in cands)


CANONICAL_U = re.compile(rb"(0(0([01][0-9a-fA-F]?)?)?)?")


UNICODE_ESCAPE = re.compile(rb"(\\+)u([0-9a-fA-F]{0,3})$")


def _escape_spelling(b: bytes, at: _Context) -> bool:
    if not at.inside_text():
        return False
    text = at.lay.text[: at.offset]
    started = UNICODE_ESCAPE.search(text)
    if started is not None and len(started.group(1)) % 2 == 1:  # inside a \u escape
        hex_digits = started.group(2) + b[: 4 - len(started.group(2))]
        return CANONICAL_U.fullmatch(hex_digits) is None
    if (len(text) - len(text.rstrip(b"\\"))) % 2 == 0:
        return False
    return b[:1] == b"/" or (b[:1] == b"u" and CANONICAL_U.fullmatch(b[1:5]) is None)


NUMBER_BYTES = re.compile(rb"[-+0-9.eE]+")
NUMBER_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "enum",
    "const",
)


def _number_spelling(b: bytes, at: _Context) -> bool:
    return NUMBER_BYTES.fullmatch(b) is not None and at.has(("number",), NUMBER_KEYWORDS, end=True)


DECC_FILTERS: dict[str, Any] = {
    "format": _format,
    "forced-prefix": _forced_prefix,
    "del-in-string": _del_in_string,
    "escape-spelling": _escape_spelling,
    "pattern-escape": _pattern_escape,
    "number-spelling": _number_spelling,
}
ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "deprecated", "readOnly"})


def _any_depth(b: bytes, at: _Context) -> bool:
    """Past decc's nesting bound for schema-free values (`true`, `{}`, undeclared properties)."""
    free = [
        s
        for s in at.lay.spans
        if s.kind in ("object", "array")
        and s.start < at.offset < s.end
        and all(set(c) <= ANNOTATIONS for c in at.walker.at(s.path))
    ]
    if not free:
        return False
    top = min(free, key=lambda s: len(s.path))
    depth = sum(
        1
        for s in at.lay.spans
        if s.kind in ("object", "array")
        and s.path[: len(top.path)] == top.path
        and s.start < at.offset < s.end
    )
    body = b.lstrip(b",: ")
    opening = len(body) - len(body.lstrip(b"[{"))
    return opening > 0 and depth + opening > ANY_DEPTH


def _negative_zero(b: bytes, at: _Context) -> bool:
    """decc writes integers as `json.dumps` writes ints, never `-0` (which JSON Schema calls 0)."""
    span, cands = at.value(("number",), end=True)
    if span is None or at.lay.text[span.start : at.offset] != b"-" or not b.startswith(b"0"):
        return False
    return any(
        "integer" in (c["type"] if isinstance(c.get("type"), list) else [c.get("type")]) for c in cands
    )


DECC_ONLY = DECC_FILTERS
LLG_ONLY: dict[str, Any] = {"format": _format, "any-depth": _any_depth, "negative-zero": _negative_zero}


def _explain(b: bytes, at: _Context, filters: dict[str, Any], g: Any, tok: Any) -> str | None:
    """The name of the filter that explains one token's disagreement, or None."""
    for name, explains in filters.items():
        if explains(b, at):
            return name
    if filters is DECC_ONLY and at.offset - 1 in at.lay.separators and b.startswith(b" "):
        rest = b[1:]  # decc's default separators: the same token without its space is explained or taken
        if not rest or _explain(rest, at, filters, g, tok) is not None or _llg_takes(rest, g, tok):
            return "separator-space"
    return None


def _llg_takes(b: bytes, g: Any, tok: Any) -> bool:
    try:
        ids = tok.encode(b.decode(), add_special_tokens=False)
    except UnicodeDecodeError:
        return False
    return g.validate_tokens(ids) == len(ids)


def _sift(
    tokens: list[int],
    token_bytes: list[bytes],
    at: _Context,
    filters: dict[str, Any],
    out: Walk,
    g: Any,
    tok: Any,
) -> list[int]:
    """The tokens no filter explains; counts, per filter, the steps it explained something at."""
    rest, names = [], set()
    for t in tokens:
        name = _explain(token_bytes[t], at, filters, g, tok)
        if name is None:
            rest.append(t)
        else:
            names.add(name)
    for name in names:
        out.explained[name] = out.explained.get(name, 0) + 1
    return rest


# -- command line: the comparison over a MaskBench sample ----------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m maskbench.differential DIR --sample N --seed S` (from benchmarks/): every valid, in-order
    instance of a seeded sample, compared step by step; one line per schema with a disagreement or a crash,
    then the totals, per filter too."""
    import argparse
    import signal
    from collections import Counter
    from pathlib import Path

    import decc
    from decc.runtime.model import model_facts

    from .data import load_rows, sample_files

    ap = argparse.ArgumentParser(description="decc's token masks against llguidance's on MaskBench")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sample", type=int, default=100, help="files drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per schema (decc's compile)")
    args = ap.parse_args(argv)
    size, eos = model_facts("default")
    diff = Differential(decc.load_tokenizer(), size, min(eos))
    rows, problems = load_rows(sample_files(args.folder, args.sample, args.seed), SEPS)

    def alarm(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"more than {args.timeout:g} s")

    signal.signal(signal.SIGALRM, alarm)
    totals: Counter = Counter()
    filters: Counter = Counter()
    for row in rows:
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            bound = diff.bind(row.schema)
            walks = [
                diff.compare(row.schema, bound, json.loads(i.text))
                for i in row.instances
                if i.valid and not i.out_of_order
            ]
        except Refused:
            totals["refused by either"] += 1
            continue
        except (
            Exception
        ) as e:  # a crash of either engine (decc's internal errors included), or the time limit
            totals["crash or timeout"] += 1
            print(f"{row.file}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        totals["compared"] += 1
        totals["steps"] += sum(w.steps for w in walks)
        for w in walks:
            filters.update(w.explained)
        bad = [d for w in walks for d in w.unexplained]
        if bad:
            totals["with unexplained disagreements"] += 1
            print(f"{row.file}: {len(bad)} steps disagree; first: {bad[0]}")
    print(f"{len(rows)} schemas: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print("steps each filter explained: " + ", ".join(f"{k} {v}" for k, v in sorted(filters.items())))
    for p in problems:
        print(f"- {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
