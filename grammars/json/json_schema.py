"""JSON Schema -> regex AST -> NFA -> byte DFA (-> token automaton); recursive schemas -> grammar (RTN).

Draft 2020-12 plus the common draft-07 spellings (`definitions`, array-valued `items`, `additionalItems`).
The output is exactly the JSON texts that validate, written the way `json.dumps` writes them (default
`", "`/`": "` or compact `","`/`":"` separators), with two deliberate restrictions that keep the language
regular and the DFA small:

* object properties come in schema order (declared properties first, then any others);
* numbers under non-zero bounds take an exponent only on a mantissa of at most 4 integer digits or 4 zeros
  after the point (`1e3`, `2.5E3`, `0.00001e5`; not `100000e-2`: json_exponents); bounds of 0 keep every
  exponent; decimal bounds (`minimum: 0.01`) are exact; `multipleOf` numbers are written without an
  exponent, `integer`s also without a fraction (`1000`, not `1e3` or `1000.0`, which jsonschema also calls
  integers: with no bounds whole-number spellings are not a regular language);
* the boolean schema `true` (and a schema with no type-restricting keywords) means any JSON value: at any
  depth on the grammar engine, nested at most `ANY_DEPTH` = 3 containers deep in a single automaton.

The compiler writes every schema as a grammar whose rules are its structure (objects, arrays, large object
members, any JSON value, recursive `$ref` targets; hash-consed, so repeated definitions share a rule);
json_engine.py then inlines a small non-recursive one into one regex (-> DFA -> token automaton) or keeps
the grammar for the lazy engine (cfg_matcher.py), its plain and counted strings as `Lexeme` rules.

Keywords with no regular meaning (`uniqueItems`, `not`, `if`, ...) raise `UnsupportedSchema` with the keyword
and its JSON pointer; `lenient=True` ignores them with a warning instead. A recursive `$ref` turns the schema
into a grammar whose rules are the recursive targets, run by the CFG engine (cfg_matcher). Formats
(`date-time`, `email`, ...) are asserted, not just annotations; a format no draft defines is one (any
string, with a warning). Long string length bounds are counted, not
unrolled (counters.py); inside a grammar each such quoted string becomes a `Lexeme` rule, whose counter the
RTN unrolls but whose token masks come from its own token automaton (rtn.py, cfg_matcher.py).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any
from urllib.parse import unquote

import numpy as np

from decc.errors import DeccError

from .. import disk_cache
from ..automata.automata import reachable_codes
from ..automata.counters import SegmentConflict
from ..automata.dfa import ByteDFA, dfa_from_nfa, gc_paused
from ..contextfree.cfg_grammar import Call, Grammar, GrammarError, Lexeme, map_calls
from ..contextfree.cfg_matcher import CFGConstraint, cfg_from_grammar
from ..contextfree.rtn import MAX_LEXEME_STATES, build_rtn, rule_states, unrolled_states
from ..errors import GrammarLimitError, RegexError
from ..limits import DEFAULT_LIMITS, Limits, check_time, deadline
from ..regexes.nfa import MAX_NESTING, NFA, NFABuilder, build_nfa, check_nesting, estimate_states, nesting
from ..regexes.regex_ast import EMPTY, Alt, CharSet, Concat, Node, Repeat, map_leaves, negate, normalize
from ..regexes.regex_parser import parse_regex
from ..tokens.constraint import TokenConstraint
from ..tokens.token_automaton import TokenAutomaton
from ..tokens.vocab import Vocabulary
from .json_allof import any_and_one, as_json_schema, merge_all, patterns_of
from .json_canonical import NotExact, regular_dfa
from .json_disjoint import Oracle, disjoint, json_type
from .json_engine import AUTOMATON, GRAMMAR, EngineChoice, choose, inline, recursive
from .json_exponents import number_range
from .json_formats import (
    FORMATS,
    MAX_LENGTHS,
    UNENFORCED_FORMATS,
    mentions_unknown_format,
    unknown_format_note,
)
from .json_keys import excluding, spellings
from .json_keywords import (
    counted_members,
    dependencies_as_conditionals,
    draft4_bounds,
    is_annotation,
    pattern_regions,
    property_names,
    unique_items,
)
from .json_meta import surely_valid
from .json_negation import contains, negations, one_of
from .json_numbers import (
    NUMBER,
    Automaton,
    alt,
    decimal_multiple,
    decimal_step,
    fixed_width_range,
    integer_multiple,
    integer_range,
    lit,
    opt,
    seq,
    signed_number,
)
from .json_strict import close_objects
from .regex_ops import byte_runs, counted_loop, dfa_of, intersection, node_of, top_level_alternatives

ANY_DEPTH = 3  # true / {} nest at most this deep when a schema runs as one token automaton
ANY_RULE = "any"
PIECE_STATES = 64  # object members and extras larger than this (in NFA states) become rules of their own
TYPES = ("null", "boolean", "object", "array", "string", "number", "integer")

UNSUPPORTED = frozenset(
    {
        "unevaluatedProperties",
        "unevaluatedItems", "$dynamicRef", "$recursiveRef",
    }
)  # fmt: skip


MAX_UNFOLDS = 2  # a recursive $ref merged with other keywords is unfolded this often along one chain


class _Recursive(Exception):
    def __init__(self, frag: str) -> None:
        super().__init__(frag)
        self.frag = frag


class UnsupportedSchema(DeccError):
    """A schema using a keyword (or a combination) that decc cannot compile to a regular language."""

    def __init__(self, message: str, keyword: str = "", pointer: str = "") -> None:
        super().__init__(f"{message} (at '{pointer or '/'}')")
        self.keyword = keyword
        self.pointer = pointer


class InvalidSchema(DeccError):
    """A schema that fails the JSON Schema meta-schema check."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(f"invalid JSON schema at '{pointer or '/'}': {message}")
        self.pointer = pointer


# -- public API ---------------------------------------------------------------------------------------


def json_schema(
    schema: dict | bool | str,
    vocab: Vocabulary,
    *,
    lenient: bool = False,
    whitespace: str = "compact-or-default",
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    engine: str = "auto",
) -> TokenConstraint | CFGConstraint:
    """Constrain generation to JSON texts valid under `schema` (a dict, a bool, or its JSON text).

    `strict=True` closes every object schema without `additionalProperties` to its declared properties
    (json_strict.py); by default the language is exactly the schema's. `engine`: "auto" (a token automaton
    for small regular schemas, else the lazy grammar engine: json_engine.py), "automaton" or "grammar"."""
    # The collector paused for the whole bind, not only for its parts (`_build`, `_rules`): each resume set
    # off a collection of the allocations made while paused, over every object earlier schemas left
    with gc_paused():
        text = _canonical(schema, strict)
        bound = _bind(text, lenient, whitespace, strict, limits, vocab, engine)
    _warn_ignored(text, lenient, whitespace, limits)
    return bound


def compile_json_schema(
    schema: dict | bool | str,
    *,
    lenient: bool = False,
    whitespace: str = "compact-or-default",
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    engine: str = "automaton",
) -> ByteDFA | Grammar:
    """The JSON texts valid under `schema`: its minimal byte DFA, or a grammar (json_engine.py); cached.
    `engine`: "automaton" (a DFA wherever the schema does not recurse), "auto" (what `json_schema` runs:
    json_engine.choose) or "grammar". `strict=True`: objects hold only their declared properties,
    as in `json_schema`."""
    text = _canonical(schema, strict)
    compiled = _compile(text, lenient, whitespace, limits, engine)[0]
    _warn_ignored(text, lenient, whitespace, limits)
    return compiled


def json_schema_engine(
    schema: dict | bool | str,
    *,
    lenient: bool = False,
    whitespace: str = "compact-or-default",
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    heals: bool = False,
) -> EngineChoice:
    """The engine `engine="auto"` picks for `schema`, and why (cheap: no automaton is built); `heals`: for a
    step that heals its boundary, which needs an automaton (json_engine.HEALING_MAX_NFA)."""
    return _choice(_canonical(schema, strict), lenient, whitespace, limits, heals)


def branches_disjoint(a: Any, b: Any, root: Any = None) -> bool:
    """Does decc prove that no JSON value is valid under both subschemas of `root` (default: themselves,
    in an allOf)? What makes a oneOf of them exact without a complement (json_disjoint.py)."""
    root = {"allOf": [a, b]} if root is None else root
    comp = _Compiler(root, False, False)
    try:
        return disjoint(a, b, comp.oracle())
    finally:
        comp.close()


@dataclass(frozen=True)
class Ignored:
    """A keyword that `lenient=True` ignored: its name, JSON pointer and why it is unsupported; or, with
    `annotation` set, one that asserts nothing (a format no draft defines), noted in every mode."""

    keyword: str
    pointer: str
    message: str
    annotation: bool = False


class IgnoredKeyword(UserWarning):
    """The constraint API's warning for an ignored keyword (a program gets a positioned `DeccWarning`)."""


def ignored_keywords(
    schema: dict | bool | str,
    *,
    whitespace: str = "compact-or-default",
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    lenient: bool = True,
) -> tuple[Ignored, ...]:
    """The keywords a compilation of `schema` ignores, each once, in the order met (cached): unsupported
    ones (lenient only) and annotations it notes (`Ignored.annotation`: unknown formats, in both modes)."""
    return _rules(_canonical(schema, strict), lenient, whitespace, limits)[1]


def _warn_ignored(text: str, lenient: bool, ws: str, limits: Limits) -> None:
    if lenient or _notes_formats(text):
        for i in _rules(text, lenient, ws, limits)[1]:
            done = "" if i.annotation else "; ignored"
            warnings.warn(f"{i.message} (at '{i.pointer or '/'}'){done}", IgnoredKeyword, stacklevel=3)


@lru_cache(maxsize=128)
def _notes_formats(text: str) -> bool:
    """May compiling `text` note an unknown format? (Called on every bind: cached.)"""
    return '"format"' in text and mentions_unknown_format(json.loads(text))


def _canonical(schema: dict | bool | str, strict: bool = False) -> str:
    try:
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as e:
                raise InvalidSchema(f"not JSON: {e}") from None
        if strict:
            schema, _ = close_objects(schema)
        # no sort_keys: the order of `properties` is part of the language
        return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> UnsupportedSchema:
    """Nesting past Python's stack: subschemas nested hundreds deep, or merges that unfold `$ref`s into
    one another. A positioned refusal, never a RecursionError."""
    return UnsupportedSchema(
        "the schema nests too deeply to compile (subschemas nested hundreds deep, or merged through $refs "
        "that unfold into one another)",
        "",
        "",
    )


@lru_cache(maxsize=32)
def _bind(
    text: str, lenient: bool, ws: str, strict: bool, limits: Limits, vocab: Vocabulary, engine: str = "auto"
) -> TokenConstraint | CFGConstraint:
    build = partial(_build, text, lenient, ws, limits, vocab, engine)
    # `text` is already closed when strict; the flag is in the key too, so that the two can never share one
    return disk_cache.cached("json_schema", (text, lenient, ws, strict, limits, engine), vocab, build)


def _build(
    text: str, lenient: bool, ws: str, limits: Limits, vocab: Vocabulary, engine: str = "auto"
) -> TokenConstraint | CFGConstraint:
    # The collector paused: compiling makes many long-lived containers and no cyclic garbage, yet each
    # allocation burst set off full collections over the heap (up to 3/4 of a large schema's compile).
    with deadline(limits.max_seconds), gc_paused():
        compiled = _compile(text, lenient, ws, limits, engine)[0]
        if isinstance(compiled, ByteDFA) and compiled.is_empty():
            raise UnsupportedSchema("this schema accepts no JSON value at all", "", "")
        short = text if len(text) <= 60 else text[:57] + "..."
        if isinstance(compiled, Grammar):
            return cfg_from_grammar(compiled, vocab, limits, f"json_schema {short}")
        return TokenConstraint(
            compiled, vocab, TokenAutomaton.build(compiled, vocab, limits), f"json_schema {short}"
        )


@lru_cache(maxsize=128)
def _rules(text: str, lenient: bool, ws: str, limits: Limits) -> tuple[Grammar, tuple[Ignored, ...]]:
    """The schema as a grammar of structure rules, and the keywords it ignored (lenient)."""
    with deadline(limits.max_seconds), gc_paused():  # as in `_build`
        if ws not in ("compact-or-default", "any"):
            raise ValueError(f"whitespace must be 'compact-or-default' or 'any', not {ws!r}")
        schema = json.loads(text)
        _check_meta(schema)
        compiler = _Compiler(schema, lenient, ws == "any", text)
        try:
            grammar = compiler.compile()
        except RecursionError:
            raise _too_deep() from None
        finally:
            compiler.close()
        return grammar, tuple(dict.fromkeys(compiler.ignored))


@lru_cache(maxsize=128)
def _choice(text: str, lenient: bool, ws: str, limits: Limits, heals: bool = False) -> EngineChoice:
    grammar = _rules(text, lenient, ws, limits)[0]
    with deadline(limits.max_seconds), gc_paused():
        recurses = _recurses(grammar)
        calls_any = any(name == ANY_RULE for name, _ in grammar.rules)  # the any rule calls itself
        choice = choose(grammar, ANY_RULE, _counted_size, heals, recurses=recurses, calls_any=calls_any)
        if choice.engine == GRAMMAR and not recurses:
            lexemes = _lexemes(grammar, limits)
            n = sum(unrolled_states(b.dfa) for _, b in lexemes.rules if isinstance(b, Lexeme))
            if n > MAX_LEXEME_STATES:  # counters a single automaton keeps as counters
                why = f"its length-bounded strings would unroll into {n:,} grammar states"
                return EngineChoice(AUTOMATON, why)
    return choice


@lru_cache(maxsize=128)
def _compile(
    text: str, lenient: bool, ws: str, limits: Limits, engine: str = "auto"
) -> tuple[ByteDFA | Grammar, tuple[Ignored, ...]]:
    """The compiled schema and the keywords it ignored (lenient), so that callers warn on every call."""
    if engine not in ("auto", AUTOMATON, GRAMMAR):
        raise ValueError(f"engine must be 'auto', 'automaton' or 'grammar', not {engine!r}")
    grammar, ignored = _rules(text, lenient, ws, limits)
    with deadline(limits.max_seconds):
        if engine == "auto":
            engine = _choice(text, lenient, ws, limits).engine
        elif engine == AUTOMATON and _recurses(grammar):
            engine = GRAMMAR
        return _finish(grammar, engine, ws == "any", limits), ignored


REF_RULE = "ref"  # the names of the rules of recursive `$ref` targets start so (`_Compiler.call`)


def _recurses(grammar: Grammar) -> bool:
    """`json_engine.recursive(grammar, ANY_RULE)` of a compiled schema, with no walk over its bodies where
    the answer is known: a structure rule is named after its body is built, so it calls only rules named
    before it, and the any rule is set aside; only the rules of `$ref` targets can close a cycle."""
    if not any(name.startswith(REF_RULE) for name, _ in grammar.rules):
        return False
    return recursive(grammar, ANY_RULE)


def _finish(grammar: Grammar, engine: str, any_ws: bool, limits: Limits) -> ByteDFA | Grammar:
    """One DFA of the inlined grammar (any JSON value at most `ANY_DEPTH` deep), or the grammar with its
    counted strings as `Lexeme` rules, checked (and its RTN cached) so that errors come at compile time."""
    if engine == AUTOMATON:
        # any JSON value only where the schema has one: it is a large automaton to build the first time
        anything = any(name == ANY_RULE for name, _ in grammar.rules)
        fixed = {ANY_RULE: _any_value(ANY_DEPTH, any_ws)} if anything else {}
        return _counted_dfa(inline(grammar, fixed), limits)
    grammar = _lexemes(grammar, limits)
    try:
        build_rtn(grammar, limits)
    except GrammarError:
        raise UnsupportedSchema("this schema accepts no JSON value at all", "", "") from None
    return grammar


def _check_meta(schema: Any) -> None:
    from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator, Draft202012Validator, validators
    from jsonschema.exceptions import best_match

    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise InvalidSchema("a schema must be an object or a boolean")
    declared_uri = schema.get("$schema")
    if (
        isinstance(declared_uri, str)
        and declared_uri.rstrip("#").replace("https://", "http://") not in _KNOWN_DRAFTS
    ):
        raise UnsupportedSchema(f"unknown meta-schema {declared_uri!r}", "$schema", "/$schema")
    declared = schema.get("$schema")
    cls = validators.validator_for(schema, default=Draft202012Validator)
    fast = Draft7Validator if not declared else cls
    if fast in (Draft4Validator, Draft6Validator, Draft7Validator):  # proven valid without jsonschema's walk
        if surely_valid(schema, meta_format_checker(fast).conforms, draft4=fast is Draft4Validator):
            return
    # Undeclared: valid under either draft. Draft 7's meta-schema is checked first: it has no dynamic refs,
    # so checking it is about five times faster, and most real schemas pass it.
    candidates = [cls] if declared else [Draft7Validator, Draft202012Validator]
    first: Any = None
    for c in candidates:
        checker = _meta_validator(c)
        if checker.is_valid(schema):
            return
        first = first or best_match(checker.iter_errors(schema))
    raise InvalidSchema(first.message, _pointer(list(first.absolute_path)))


@lru_cache(maxsize=8)
def _meta_validator(cls: Any) -> Any:
    """One validator of `cls`'s meta-schema per process (building one resolves the meta-schema's refs)."""
    return cls(cls.META_SCHEMA, format_checker=meta_format_checker(cls))


@lru_cache(maxsize=8)
def meta_format_checker(cls: Any) -> Any:
    """The meta-schema's format checker, except that a `pattern` is valid when Python's `re` or decc's own
    parser takes it: ECMAScript patterns like `\\p{L}` are not Python regexes."""
    from jsonschema import FormatChecker

    base = cls.FORMAT_CHECKER
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)

    def is_pattern(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        try:
            re.compile(instance)
            return True
        except re.error:
            pass
        try:
            parse_regex(instance, ecma=True)  # as schema patterns are read
            return True
        except RegexError:
            return False

    checker.checkers["regex"] = (is_pattern, ())
    return checker


_KNOWN_DRAFTS = frozenset(
    {
        "http://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-06/schema",
        "http://json-schema.org/draft-04/schema",
    }
)


_OLD_DRAFTS = frozenset(d for d in _KNOWN_DRAFTS if "/draft-0" in d)


def _declares_old_draft(root: Any) -> bool:
    """Does the schema declare draft-04, -06 or -07, where the keywords beside a `$ref` are ignored?"""
    uri = root.get("$schema") if isinstance(root, dict) else None
    return isinstance(uri, str) and uri.rstrip("#").replace("https://", "http://") in _OLD_DRAFTS


def _pointer(parts: list) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


# -- JSON text pieces -----------------------------------------------------------------------------------

_HEX = CharSet(normalize([(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)]))
_RAW = CharSet(negate(((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))))
_U_BMP = alt(*(fixed_width_range(lo, hi, 4, 16) for lo, hi in ((0, 0xD7FF), (0xE000, 0xFFFF))))
_U_PAIR = seq(fixed_width_range(0xD800, 0xDBFF, 4, 16), lit("\\u"), fixed_width_range(0xDC00, 0xDFFF, 4, 16))
# one character: a surrogate-pair escape counts as one, like the code point it stands for
_ESC = seq(
    lit("\\"),
    alt(CharSet(normalize([(ord(c), ord(c)) for c in '"\\/bfnrt'])), seq(lit("u"), alt(_U_BMP, _U_PAIR))),
)
STR_CHAR = alt(_RAW, _ESC)
QUOTE = lit('"')
ANY_BODY = Repeat(STR_CHAR, 0, None)
ANY_STRING = seq(QUOTE, ANY_BODY, QUOTE)
_SHORT_ESC = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"}


@lru_cache(maxsize=4096)
def _json_chars(ranges: tuple[tuple[int, int], ...]) -> Node:
    """One JSON-string character (raw or escaped) whose decoded code point lies in `ranges`."""

    parts: list[Node] = []
    raw = [(max(lo, a), min(hi, b)) for lo, hi in ranges for a, b in _RAW.ranges if max(lo, a) <= min(hi, b)]
    if raw:
        parts.append(CharSet(normalize(raw)))
    shorts = [c for cp, c in _SHORT_ESC.items() if any(lo <= cp <= hi for lo, hi in ranges)]
    if shorts:
        parts.append(seq(lit("\\"), CharSet(normalize([(ord(c), ord(c)) for c in shorts]))))
    bmp = [(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF]
    if bmp:
        parts.append(seq(lit("\\u"), alt(*(fixed_width_range(lo, hi, 4, 16) for lo, hi in bmp))))
    return alt(*parts) if parts else CharSet(())


@lru_cache(maxsize=4096)
def _to_json_string_body(node: Node) -> Node:
    """Rewrite a regex over decoded characters into one over JSON string bodies (escapes included)."""
    if isinstance(node, CharSet):
        return _json_chars(node.ranges)
    if isinstance(node, Concat):
        return Concat(tuple(_to_json_string_body(i) for i in node.items))
    if isinstance(node, Alt):
        return Alt(tuple(_to_json_string_body(i) for i in node.items))
    if isinstance(node, Repeat):
        return Repeat(_to_json_string_body(node.item), node.min, node.max)
    raise TypeError(node)


def _string_literal(s: str, quotes: bool = True) -> Node:
    """`s` as `json.dumps` writes it, escaped or not (one spelling for most keys: ASCII without escapes)."""
    escaped = json.dumps(s)
    texts = [escaped] if s.isascii() and s.isprintable() else [escaped, json.dumps(s, ensure_ascii=False)]
    return alt(*(lit(t if quotes else t[1:-1]) for t in texts))


def _key_language(include: Node | None, exclude: Node) -> Node:
    """JSON string bodies matched by `include` (None: any) and not by `exclude`."""
    return _body_product(() if include is None else (include,), exclude)


def _body_product(includes: tuple[Node, ...], exclude: Node) -> Node:
    """JSON string bodies matched by every node of `includes` and not by `exclude`: a product of DFAs."""
    return string_product(includes, exclude)[0]


MAX_MULTIPLE_STATES = 20_000  # multipleOf is a remainder automaton: one state per remainder (and digit)


@lru_cache(maxsize=256)
def intersect_nodes(a: Node, b: Node) -> Node:
    """The strings both `a` and `b` match, as one automaton: the product of their DFAs (numbers: a range
    and a multipleOf)."""
    da, db = (dfa_from_nfa(counted_nfa(n, DEFAULT_LIMITS)) for n in (a, b))
    if da.start < 0 or db.start < 0:
        return NOTHING
    ids = {(da.start, db.start): 0}
    order = [(da.start, db.start)]
    edges: list[tuple[int, int, int, int]] = []
    accepting = set()
    i = 0
    while i < len(order):
        if not i & 63:
            check_time("intersecting number constraints")
        p, q = order[i]
        if da.accepting[p] and db.accepting[q]:
            accepting.add(i)
        ta, tb = da.transitions[p], db.transitions[q]
        for byte in np.flatnonzero((ta >= 0) & (tb >= 0)).tolist():
            pair = (int(ta[byte]), int(tb[byte]))
            j = ids.get(pair)
            if j is None:
                j = ids[pair] = len(order)
                order.append(pair)
                if len(order) > DEFAULT_LIMITS.max_dfa_states:
                    raise GrammarLimitError(
                        f"constraint too large: the product of a number range and multipleOf passes "
                        f"{DEFAULT_LIMITS.max_dfa_states:,} states"
                    )
            edges.append((i, byte, byte, j))
        i += 1
    return Automaton(len(order), 0, frozenset(accepting), tuple(edges))


@lru_cache(maxsize=256)
def string_product(
    includes: tuple[Node, ...], exclude: Node, body: Node | None = None
) -> tuple[Node, frozenset[int]]:
    """`_body_product` plus the product states where a character ends (the body DFA accepts there).

    `body` is the character loop: JSON string characters by default, raw text for `length(...)`.
    Breadth first over whole frontiers (a product state is one int64, mixed radix over the components);
    states are numbered in order of first appearance, state by state and byte by byte."""
    chars = _string_body_dfa() if body is None else dfa_from_nfa(counted_nfa(body, DEFAULT_LIMITS))
    dfas = [chars, _part_dfa(exclude), *(_part_dfa(n) for n in includes)]
    # Tables with a dead row appended (index -1 reads it), so a dead component stays dead.
    tables = [
        np.vstack([d.transitions, np.full((1, 256), -1, dtype=d.transitions.dtype)]).astype(np.int64)
        for d in dfas
    ]
    musts = np.array([0, *range(2, len(dfas))])  # components that must stay alive (all but the excluded one)
    start = np.array([d.start for d in dfas], dtype=np.int64)
    if (start[musts] < 0).any():
        return NOTHING, frozenset()
    sizes = [d.n_states + 1 for d in dfas]
    if math.prod(sizes) >= 1 << 62:
        raise GrammarLimitError("JSON schema string constraints too complex to intersect")
    radix = np.cumprod([1, *sizes[:-1]]).astype(np.int64)
    codes, table = reachable_codes(
        int((start + 1) @ radix),  # codes: (state + 1) in each component's digit, 0 for a dead one
        lambda codes: _successors(codes, tables, radix, sizes, musts),
        DEFAULT_LIMITS.max_dfa_states,
        lambda _total: GrammarLimitError("JSON schema string constraints too complex to intersect"),
        "combining string constraints",
    )
    comps = [(codes // r) % n - 1 for r, n in zip(radix.tolist(), sizes, strict=True)]
    acc = [np.append(d.accepting, False) for d in dfas]  # index -1: a dead component does not accept
    accepting = np.ones(len(codes), dtype=bool)
    for c in musts.tolist():
        accepting &= acc[c][comps[c]]
    accepting &= ~acc[1][comps[1]]
    boundary = np.flatnonzero(acc[0][comps[0]])
    auto = Automaton(len(codes), 0, frozenset(np.flatnonzero(accepting).tolist()), tuple(byte_runs(table)))
    return auto, frozenset(boundary.tolist())


@lru_cache(maxsize=1)
def _any_counted_body() -> tuple[Node, frozenset[int]]:
    """`string_product((), NOTHING)`: any JSON string body with its character boundaries, the body of
    every long `maxLength` string without a pattern or format; built once per process, not per schema."""
    return string_product((), NOTHING)


def _part_dfa(node: Node) -> ByteDFA:
    """The DFA of one part of a string product, through `dfa_of`'s cache when it holds no counted string:
    overlapping patternProperties take products of the same patterns in many combinations
    (strmprivacy: 345 DFAs built for 94 products)."""
    if _has_counted(node):
        return dfa_from_nfa(counted_nfa(node, DEFAULT_LIMITS))
    return dfa_of(node)


def _has_counted(node: Any) -> bool:
    """Does `node` hold a `CountedBody` leaf (each shared subtree looked at once)?"""
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, CountedBody):
            return True
        if isinstance(n, Concat | Alt):
            stack.extend(n.items)
        elif isinstance(n, Repeat):
            stack.append(n.item)
    return False


def _successors(
    codes: np.ndarray, tables: list[np.ndarray], radix: np.ndarray, sizes: list[int], musts: np.ndarray
) -> np.ndarray:
    """int64 [len(codes), 256]: each product state's successor codes, -1 where a needed component dies."""
    out = np.zeros((len(codes), 256), dtype=np.int64)
    dead = np.zeros((len(codes), 256), dtype=bool)
    must = set(musts.tolist())
    for c, (t, r, n) in enumerate(zip(tables, radix.tolist(), sizes, strict=True)):
        nxt = t[(codes // r) % n - 1]
        if c in must:
            dead |= nxt < 0
        out += (nxt + 1) * r
    out[dead] = -1
    return out


# Length bounds from here up are counted (see counters.py); smaller ones are unrolled, which is cheap.
COUNT_FROM = 16
# Recursive schemas run on the grammar engine, where a counted string becomes a `Lexeme` rule; a bounded
# string that is not a whole quoted string (none the compiler writes today) is unrolled up to this bound.
MAX_UNROLL_IN_GRAMMAR = 128


@dataclass(frozen=True)
class CountedBody:
    """A JSON string body of `lo`..`hi` characters in `auto`'s language; `boundary`: states between
    characters (their edges start a counted character). `bodies` rebuilds the unrolled form if needed."""

    auto: Automaton
    boundary: frozenset[int]
    lo: int
    hi: int
    bodies: tuple[Node, ...]

    def unrolled(self) -> Node:
        rep = _chars(self.lo, self.hi)
        return rep if not self.bodies else _body_product((*self.bodies, rep), NOTHING)


@lru_cache(maxsize=256)
def _chars(lo: int, hi: int | None) -> Node:
    """`lo`..`hi` JSON string characters, as one automaton of character-DFA layers (regex_ops.counted_loop):
    a third of the regex's NFA states, none of its epsilon edges; as the regex when too large anyway.
    `hi` None: at least `lo` (a long `minLength` alone: string2's 1,000 took seconds to determinize)."""
    loop = _string_body_dfa()
    if loop.n_states * ((lo if hi is None else hi) + 1) > DEFAULT_LIMITS.max_nfa_states:
        return Repeat(STR_CHAR, lo, hi)
    return counted_loop(loop, lo, hi)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _any_string_dfa() -> ByteDFA:
    """The DFA of any quoted JSON string: one object for every schema, so that its lexeme's token rows
    (cfg_rows.lexeme_automaton) are built once per vocabulary and kept in the disk cache."""
    return dfa_from_nfa(counted_nfa(ANY_STRING, DEFAULT_LIMITS))


@lru_cache(maxsize=1)
def _string_body_dfa() -> ByteDFA:
    return dfa_from_nfa(counted_nfa(Repeat(STR_CHAR, 0, None), DEFAULT_LIMITS))


def _anchors(pattern: str) -> tuple[bool, bool, bool]:
    """(starts with ^, ends with unescaped $, has a top-level |)."""
    backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    end_anchor = pattern.endswith("$") and backslashes % 2 == 0
    return pattern.startswith("^"), end_anchor, len(top_level_alternatives(pattern)) > 1


# -- NFA with Automaton nodes ---------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _lexemes(grammar: Grammar, limits: Limits) -> Grammar:
    """`_with_lexemes`, cached. Its walk measures how deeply each body nests and stops past MAX_NESTING,
    so a body too deep for the recursive walks that follow gets check_nesting's error, and no body is
    walked a second time just to measure it."""
    try:
        return _with_lexemes(grammar, limits)
    except _Deep:
        pass
    except Exception:  # as before this walk measured nesting: a body nested too deep is the first error
        for _, body in grammar.rules:
            check_nesting(body)
        raise
    for _, body in grammar.rules:
        check_nesting(body)
    raise AssertionError("a body nested past MAX_NESTING that check_nesting accepts")  # pragma: no cover


class _Deep(Exception):
    """A body nests past MAX_NESTING (`_lexemes` reports which, as check_nesting does)."""


def _with_lexemes(grammar: Grammar, limits: Limits) -> Grammar:
    """`grammar` with every quoted counted string as a call of a `Lexeme` rule (one per distinct string
    language), so that the grammar engine counts its length instead of unrolling it."""
    names: dict[CountedBody | Node, str] = {}
    memo: dict[int, tuple[Any, int]] = {}  # shared subtrees (hash-consed members and values) rewritten once
    rules = [(name, _lexemize(body, names, memo, 1)[0]) for name, body in grammar.rules]
    for body, name in names.items():
        dfa = _any_string_dfa() if body == ANY_BODY else _lexeme_dfa(body, limits)  # type: ignore[arg-type]
        rules.append((name, Lexeme(dfa, name)))
    return Grammar(tuple(rules), grammar.source)


def _lexemize(
    node: Any, names: dict[CountedBody, str], memo: dict[int, tuple[Any, int]], level: int
) -> tuple[Any, int]:
    """(`node` rewritten, how deeply the original nests: `nfa.nesting`); `_Deep` past MAX_NESTING, by
    its depth or by `level` (how deep the walk is: it stops before the recursion can overflow)."""
    found = memo.get(id(node))
    if found is None:
        if level > MAX_NESTING:
            raise _Deep
        found = memo[id(node)] = _lexemize_node(node, names, memo, level + 1)
        if found[1] > MAX_NESTING:
            raise _Deep
    return found


def _lexemize_node(
    node: Any, names: dict[CountedBody, str], memo: dict[int, tuple[Any, int]], level: int
) -> tuple[Any, int]:
    kind = type(node)
    if kind is Concat:
        src = node.items
        n = len(src)
        items: list[Any] = []
        height = 0
        changed = False  # rather than comparing every item again at the end
        i = 0
        while i < n:
            x = src[i]
            t = type(x)
            if t in _KEPT_LEAVES:  # most items: a key's bytes, calls (height 1, unchanged)
                items.append(x)
                height = height or 1
                i += 1
                continue
            if (
                (t is CountedBody or (t is Repeat and x == ANY_BODY))
                and items
                and items[-1] == QUOTE
                and i + 1 < n
                and src[i + 1] == QUOTE
            ):
                items[-1] = Call(names.setdefault(x, f"string{len(names)}"))  # type: ignore[arg-type]
                height = max(height, nesting(x))
                changed = True
                i += 2
                continue
            y, h = _lexemize(x, names, memo, level)
            items.append(y)
            changed = changed or y is not x
            if h > height:
                height = h
            i += 1
        if not changed:
            return node, height + 1
        return (items[0] if len(items) == 1 else Concat(tuple(items))), height + 1
    if kind is Alt:
        out: list[Any] = []
        height = 0
        changed = False
        for x in node.items:
            if type(x) in _KEPT_LEAVES:
                out.append(x)
                h = 1
            else:
                y, h = _lexemize(x, names, memo, level)
                out.append(y)
                changed = changed or y is not x
            if h > height:
                height = h
        return (Alt(tuple(out)) if changed else node), height + 1
    if kind is Repeat:
        item, h = (
            (node.item, 1) if type(node.item) in _KEPT_LEAVES else _lexemize(node.item, names, memo, level)
        )
        return (node if item is node.item else Repeat(item, node.min, node.max)), h + 1
    return uncount(node), 1


# leaves `_lexemize` returns as they are (nesting 1), without a walk
_KEPT_LEAVES = frozenset({CharSet, Call, Automaton})


def _lexeme_dfa(body: CountedBody, limits: Limits) -> ByteDFA:
    """The counted byte DFA of `"body"`."""
    return _counted_dfa(Concat((QUOTE, body, QUOTE)), limits)


def _counted_dfa(node: Node, limits: Limits) -> ByteDFA:
    """The byte DFA of `node`, its counted strings kept as counters where they can be."""
    unroll: frozenset[int] = frozenset()
    while True:
        try:
            return dfa_from_nfa(counted_nfa(node, limits, unroll), limits)
        except SegmentConflict as e:  # counters cannot follow these strings: unroll them and retry
            unroll |= e.ids


def uncount(node: Any) -> Any:
    """`node` with counted string bodies unrolled (for one outside a quoted string, in a grammar)."""
    return map_leaves(node, _unroll)


def _unroll(leaf: Any) -> Any:
    if not isinstance(leaf, CountedBody):
        return leaf
    if leaf.hi > MAX_UNROLL_IN_GRAMMAR:
        raise GrammarLimitError(
            f"a string bound of {leaf.hi:,} characters inside a recursive schema is too long to unroll "
            f"(limit {MAX_UNROLL_IN_GRAMMAR})",
            hints=["a smaller maxLength, or no maxLength, on strings inside recursive definitions"],
        )
    return leaf.unrolled()


def _estimate(node: Any) -> int:
    return estimate_states(node, _counted_size)


def _rule_size(node: Any) -> int:
    """NFA states of `node` in a rule body, a call counting as its two states (kept on the nodes)."""
    return rule_states(node, _counted_size)


def _counted_size(node: Any) -> int:
    if isinstance(node, CountedBody):
        return node.auto.n + 1
    raise TypeError(node)


class _JBuilder(NFABuilder):
    def __init__(self, unroll: frozenset[int] = frozenset(), limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__()
        self.unroll = unroll  # counted segments (numbered in build order) to unroll instead
        self.limits = limits
        self.extra = 0

    def build(self, node: Any) -> tuple[int, int]:
        if isinstance(node, CountedBody):
            k = len(self.bounds)
            self.bounds.append((node.lo, node.hi))
            if k in self.unroll:
                flat = node.unrolled()
                self.extra += _estimate(flat)
                if self.extra > self.limits.max_nfa_states:
                    raise GrammarLimitError(
                        f"JSON schema too large: unrolling its length-bounded strings needs over "
                        f"{self.extra:,} NFA states (limit {self.limits.max_nfa_states:,})",
                        hints=[
                            "a string with both a large maxLength and an overlapping alternative "
                            "(anyOf/oneOf of strings) cannot be counted and must be unrolled"
                        ],
                    )
                return self.build(flat)
            ids = self.automaton(node.auto)
            for i in ids[:-1]:
                self.seg_of[i] = k
            self.tick.update(ids[b] for b in node.boundary)
            return ids[node.auto.start], ids[-1]
        return super().build(node)


def counted_nfa(node: Node, limits: Limits, unroll: frozenset[int] = frozenset()) -> NFA:
    return build_nfa(
        node,
        limits,
        builder_class=partial(_JBuilder, unroll, limits),  # type: ignore[arg-type]
        needed=_estimate(node),
        what="JSON schema",
        hint="large maxItems/maxLength bounds multiply the size of what they repeat",
    )


# -- the compiler ---------------------------------------------------------------------------------------

NOTHING = CharSet(())


class _Compiler:
    def __init__(self, root: Any, lenient: bool, any_ws: bool, text: str | None = None) -> None:
        """`text`: `root` as `_canonical` writes it, when known (it spares looking for `$anchor`s)."""
        self.root = root
        self.lenient = lenient
        ws = Repeat(CharSet(normalize([(0x20, 0x20), (0x0A, 0x0A), (0x0D, 0x0D), (0x09, 0x09)])), 0, None)
        if any_ws:
            self.ws = ws
            self.comma = seq(ws, lit(","), ws)
            self.colon = seq(ws, lit(":"), ws)
        else:
            self.ws = EMPTY
            self.comma = seq(lit(","), opt(lit(" ")))
            self.colon = seq(lit(":"), opt(lit(" ")))
        self.ref_siblings = not _declares_old_draft(root)
        self.anchors: dict[str, str] = {}
        if text is None or '"$anchor"' in text:  # most schemas have none: no walk over the document
            self._find_anchors(root, "")
        self._validator: Any = None
        self._validators: list[Any] | None = None
        self._oracle: Oracle | None = None
        self.rules: dict[str, str] = {}  # recursive $ref target (JSON pointer) -> its grammar rule
        self.merged_rules: dict[str, tuple[Any, str]] = {}  # a rule's key -> (target with siblings, pointer)
        # Structure as rules: each distinct object/array language (hash-consed: repeated $refs share one
        # rule) -> its rule name; "any" (true / {}) is one recursive any-JSON-value rule.
        self.structs: dict[Node, str] = {}
        self.memo: dict[int, tuple[Any, Node]] = {}  # see `schema`
        self.n_calls = 0  # recursive-rule calls made so far
        self.uses_any = False
        self.ignored: list[Ignored] = []  # lenient skips and annotations noted (one may be met twice)

    def compile(self) -> Grammar:
        """The schema's language as a grammar whose rules are its structure (json_engine.py decides
        whether it runs as one token automaton or on the lazy grammar engine).

        A recursive `$ref` becomes a call of a rule named after its target; each such target is compiled
        once more as that rule's body. Every object and array language is a rule of its own (`struct`), as
        is any JSON value (`any`), so each rule's automaton stays small.
        """
        root = self.schema(self.root, "", ())
        bodies: dict[str, Node] = {}
        while len(bodies) < len(self.rules):
            for frag, name in list(self.rules.items()):
                if name not in bodies:
                    bodies[name] = self.rule_body(frag)
        rules = [("start", root), *bodies.items(), *((name, body) for body, name in self.structs.items())]
        if self.uses_any:
            rules.append((ANY_RULE, self.any_rule()))
        return Grammar(tuple(rules), "json schema")

    def rule_body(self, frag: str) -> Node:
        """The language of the rule a recursive `$ref` (or one with its siblings: `merged_rules`) calls."""
        if frag in self.merged_rules:
            target, at = self.merged_rules[frag]
            return self.schema(target, at, (frag,))
        target, _ = self.resolve("#" + frag, frag)
        return self.schema(target, frag, (frag,))

    def call(self, frag: str) -> Call:
        self.n_calls += 1
        name = self.rules.get(frag)
        if name is None:
            name = self.rules[frag] = f"{REF_RULE}{len(self.rules)}"
        return Call(name)

    def struct(self, node: Node) -> Node:
        """A call of the rule whose body is `node` (one rule per distinct body); NOTHING stays NOTHING."""
        if node == NOTHING:
            return NOTHING
        name = self.structs.get(node)
        if name is None:
            name = self.structs[node] = f"struct{len(self.structs)}"
        return Call(name)

    def size(self, node: Node) -> int:
        """`_rule_size`: kept on the nodes, so members hold values sized before."""
        return _rule_size(node)

    def piece(self, node: Node) -> Node:
        """`node`, or a call of a rule for it when it is large: an object writes each member and its extras
        twice (props_body), so a large value there would double every rule automaton it sits in."""
        if isinstance(node, Call) or self.size(node) <= PIECE_STATES:
            return node
        return self.struct(node)

    def inline(self, s: Any, ptr: str, refs: tuple[str, ...]) -> Node:
        """Subschema `s` as one regex node, no calls (for keywords that complement or intersect it): see
        `expand`."""
        return self.expand(self.schema(s, ptr, refs), ptr)

    def expand(self, node: Any, ptr: str) -> Node:
        """`node` with its structure rules expanded, any JSON value nested at most `ANY_DEPTH` deep (so a
        complement of a subschema holding `true` is exact only up to that depth); a rule that calls itself
        is `NotExact` (its language is not regular)."""
        return map_calls(node, _Expansion(self, ptr).expand)  # type: ignore[return-value]

    # -- errors

    def unsupported(self, keyword: str, pointer: str, message: str | None = None) -> None:
        msg = message or f"JSON Schema keyword '{keyword}' is not supported"
        if self.lenient:
            self.ignored.append(Ignored(keyword, pointer, msg))
            return
        raise UnsupportedSchema(msg, keyword, pointer)

    def unknown_format(self, fmt: str, pointer: str) -> None:
        """Note a format no draft defines: an annotation, compiled as any string, with a warning."""
        self.ignored.append(Ignored("format", pointer, unknown_format_note(fmt), annotation=True))

    def hard(self, keyword: str, pointer: str, message: str) -> UnsupportedSchema:
        return UnsupportedSchema(message, keyword, pointer)

    # -- references

    def _find_anchors(self, s: Any, ptr: str) -> None:
        if isinstance(s, dict):
            if isinstance(s.get("$anchor"), str):
                self.anchors[s["$anchor"]] = ptr
            for k, v in s.items():
                if k in ("enum", "const", "default", "examples"):
                    continue
                self._find_anchors(v, f"{ptr}/{_esc(k)}")
        elif isinstance(s, list):
            for i, v in enumerate(s):
                self._find_anchors(v, f"{ptr}/{i}")

    def resolve(self, ref: str, pointer: str) -> tuple[Any, str]:
        if not ref.startswith("#"):
            raise self.hard("$ref", pointer, f"only local $ref ('#/...') is supported, not {ref!r}")
        frag = unquote(ref[1:])
        if frag and not frag.startswith("/"):
            if frag in self.anchors:
                frag = self.anchors[frag]
            else:
                raise self.hard("$ref", pointer, f"unknown $ref anchor {ref!r}")
        target = self.root
        for part in frag.split("/")[1:] if frag else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            elif isinstance(target, dict) and key in target:
                target = target[key]
            else:
                raise self.hard("$ref", pointer, f"$ref {ref!r} points at nothing")
        return target, frag

    def deref(
        self, s: Any, ptr: str, refs: tuple[str, ...], mode: str = "merge"
    ) -> tuple[Any, str, tuple[str, ...]]:
        """Follow a pure `$ref` chain; a schema with `$ref` and siblings becomes an allOf.

        A `$ref` back into the chain that led here recurses: in mode "call" it raises `_Recursive` (the
        caller emits a rule call), in mode "peek" it stops at the target (enough to look at its types),
        with sibling keywords it is unfolded once, and met again with the same siblings it calls the rule
        of the two (`merged_rules`); inside an allOf merge its target is unfolded, at most `MAX_UNFOLDS`
        times along one chain, then it is unsupported. Unfolding is exact: the same schema.
        """
        while isinstance(s, dict) and "$ref" in s:
            ref = s["$ref"]
            target, frag = self.resolve(ref, ptr + "/$ref")
            # up to draft-07 the keywords beside a `$ref` are ignored; from 2019-09 on they apply with it
            rest = {k: v for k, v in s.items() if k != "$ref" and self.ref_siblings}
            merged = ""  # a recursive target with sibling keywords: the rule of the two together
            if frag in refs:
                if mode == "peek":
                    return target, frag, refs
                if mode == "call" and not _constraining(rest):
                    raise _Recursive(frag)
                if mode == "call":
                    merged = f"{frag} & {json.dumps(rest, sort_keys=True)}"
                    if merged in refs:
                        raise _Recursive(merged)
                    self.merged_rules[merged] = ({"allOf": [rest, target]}, ptr)
                elif refs.count(frag) >= MAX_UNFOLDS:
                    raise UnsupportedSchema(
                        "a recursive $ref inside allOf (or next to other keywords) is not supported",
                        "$ref",
                        ptr + "/$ref",
                    )
            if _constraining(rest):
                s = {"allOf": [rest, target]}
                refs = refs + ((frag, merged) if merged else (frag,))
                return s, ptr, refs
            s, ptr, refs = target, frag, refs + (frag,)
        return s, ptr, refs

    # -- schemas

    def check_keywords(self, s: Any, ptr: str) -> None:
        if isinstance(s, dict):
            for k in s:
                if k in UNSUPPORTED:
                    self.unsupported(k, f"{ptr}/{_esc(k)}")

    def schema(self, s: Any, ptr: str, refs: tuple[str, ...]) -> Node:
        """The language of subschema `s`. Memoized by the schema object when its expansion met no recursive
        `$ref` (then it is the same wherever `s` is used: a definition referenced from many places is
        expanded once); not when lenient, whose ignored keywords are listed per pointer."""
        hit = self.memo.get(id(s))
        if hit is not None and hit[0] is s:
            return hit[1]
        calls = self.n_calls
        node = self._schema(s, ptr, refs)
        if calls == self.n_calls and not self.lenient and isinstance(s, dict):
            self.memo[id(s)] = (s, node)  # `s` kept alive: its id is not reused
        return node

    def _schema(self, s: Any, ptr: str, refs: tuple[str, ...]) -> Node:
        check_time("expanding the JSON schema")
        self.check_keywords(s, ptr)
        try:
            s, ptr, refs = self.deref(s, ptr, refs, "call")
        except _Recursive as r:
            return self.call(r.frag)  # type: ignore[return-value]
        if s is True:
            self.uses_any = True
            return Call(ANY_RULE)  # type: ignore[return-value]
        if s is False:
            return NOTHING
        if not isinstance(s, dict):
            raise InvalidSchema("a schema must be an object or a boolean", ptr)
        self.check_keywords(s, ptr)
        if "allOf" in s:
            s, refs = self.merge_all(s, ptr, refs)
            self.check_keywords(s, f"{ptr}/allOf")
            if not isinstance(s, dict):
                return self.schema(s, ptr, refs)
        # dependencies as if/then, draft-04 boolean exclusive bounds as numbers (json_keywords)
        s = dependencies_as_conditionals(draft4_bounds(s))
        if ("enum" in s or "const" in s) and _checked_by_validator(s):  # each value checked, no complement
            return self.enum(s, ptr)
        if "not" in s or "if" in s:  # exact through complement (json_keywords)
            return negations(self, s, ptr, refs)
        if "enum" in s or "const" in s:
            return self.enum(s, ptr)
        s = any_and_one(s)  # anyOf next to oneOf: one oneOf (json_allof)
        for key in ("anyOf", "oneOf"):
            if key not in s:
                continue
            subs = s[key]
            rest = {k: v for k, v in s.items() if k != key}
            if key == "oneOf" and not self.disjoint(subs, rest):  # exact through difference
                split = self.objects_apart(subs, rest, ptr, refs)
                return split or one_of(self, rest, subs, ptr, refs, _constraining(rest))
            if _constraining(rest):
                alts = [
                    self.schema({"allOf": [rest, sub]}, f"{ptr}/{key}/{i}", refs)
                    for i, sub in enumerate(subs)
                ]
            else:
                alts = [self.schema(sub, f"{ptr}/{key}/{i}", refs) for i, sub in enumerate(subs)]
            return alt(*alts) if alts else NOTHING
        return self.typed(s, ptr, refs)

    def typed(self, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
        types = s.get("type", list(TYPES))
        types = {types} if isinstance(types, str) else set(types)
        if "number" in types:
            types.discard("integer")
        out: list[Node] = []
        for t in TYPES:
            if t not in types:
                continue
            if t == "null":
                out.append(lit("null"))
            elif t == "boolean":
                out.append(alt(lit("true"), lit("false")))
            elif t == "string":
                out.append(self.string(s, ptr))
            elif t in ("number", "integer"):
                out.append(self.number(s, ptr, t == "integer"))
            elif t == "array":
                out.append(self.struct(self.array(s, ptr, refs)))
            else:
                out.append(self.struct(self.object(s, ptr, refs)))
        out = [o for o in out if o != NOTHING]
        return alt(*out) if out else NOTHING

    # -- any value

    def any_value(self, depth: int) -> Node:
        return _any_value(depth, self.ws != EMPTY)

    def any_rule(self) -> Node:
        """The body of the recursive any-JSON-value rule (true / {} at any depth, in grammar mode)."""
        me = Call(ANY_RULE)
        scalars = [lit("null"), lit("true"), lit("false"), NUMBER, ANY_STRING]
        arr = self.container("[", "]", me)  # type: ignore[arg-type]
        obj = self.container("{", "}", seq(ANY_STRING, self.colon, me))  # type: ignore[arg-type]
        return alt(*scalars, arr, obj)

    def container(self, open_: str, close: str, item: Node, lo: int = 0, hi: int | None = None) -> Node:
        if hi is not None and hi < lo:
            return NOTHING
        if hi == 0:
            body = EMPTY
        else:
            more = Repeat(seq(self.comma, item), max(lo - 1, 0), None if hi is None else hi - 1)
            body = seq(item, more)
            if lo == 0:
                body = opt(body)
        return seq(lit(open_), self.ws, body, self.ws, lit(close))

    # -- enum / const

    def enum(self, s: dict, ptr: str) -> Node:
        from jsonschema import Draft202012Validator

        values = [s["const"]] if "const" in s else list(s["enum"])
        if "const" in s and "enum" in s:  # both (an allOf merge): the const only if the enum lists it
            values = [v for v in values if any(v == x and json_type(v) == json_type(x) for x in s["enum"])]
        if self._validator is None:
            self._validator = Draft202012Validator(self.root if isinstance(self.root, dict) else {})
        # each value passes its own enum/const: checking them again would make n values cost n^2
        rest = as_json_schema({k: x for k, x in s.items() if k not in ("enum", "const")})
        check = self._validator.evolve(schema=rest)
        keep = []
        for i, v in enumerate(values):
            if not i & 255:
                check_time("building the enum")
            try:
                ok = check.is_valid(v)
            except Exception:  # noqa: BLE001 - refs the validator cannot follow, etc.
                ok = True
            if ok:
                keep.append(v)
        return alt(*(self.literal(v) for v in keep)) if keep else NOTHING

    def literal(self, v: Any) -> Node:
        if v is None:
            return lit("null")
        if isinstance(v, bool):
            return lit("true" if v else "false")
        if isinstance(v, int):
            return alt(lit(str(v)), lit(f"{v}.0"))
        if isinstance(v, float):
            if not math.isfinite(v):
                return NOTHING
            if v.is_integer():
                return alt(lit(str(int(v))), lit(repr(v)))
            return lit(json.dumps(v))
        if isinstance(v, str):
            return seq(_string_literal(v))
        if isinstance(v, list):
            if not v:
                return seq(lit("["), self.ws, lit("]"))
            items = [self.literal(x) for x in v]
            body = [items[0]]
            for x in items[1:]:
                body += [self.comma, x]
            return seq(lit("["), self.ws, *body, self.ws, lit("]"))
        if not v:
            return seq(lit("{"), self.ws, lit("}"))
        body = []
        for i, (k, x) in enumerate(v.items()):
            if i:
                body.append(self.comma)
            body += [_string_literal(k), self.colon, self.literal(x)]
        return seq(lit("{"), self.ws, *body, self.ws, lit("}"))

    # -- strings

    def string(self, s: dict, ptr: str) -> Node:
        lo = int(s.get("minLength", 0))
        hi = s.get("maxLength")
        hi = None if hi is None else int(hi)
        fmt_hi = MAX_LENGTHS.get(s.get("format"))
        if fmt_hi is not None:
            hi = fmt_hi if hi is None else min(hi, fmt_hi)
        bodies: list[Node] = []
        for p in patterns_of(s):  # several after an allOf merge: the intersection (json_allof)
            counted = counted_class(p)
            if counted is None:
                bodies.append(self.pattern(p, f"{ptr}/pattern"))
                continue
            item, m, n = counted  # `^C{m,n}$`: any string of C, its length counted as maxLength is
            lo, hi = max(lo, m), n if hi is None else min(hi, n)
            bodies.append(_to_json_string_body(Repeat(item, 0, None)))
        if hi is not None and hi < lo:
            return NOTHING
        fmt = s.get("format")
        if fmt in FORMATS:
            bodies.append(_format_body(fmt))
        elif fmt in UNENFORCED_FORMATS:  # never silent: refused, or ignored with a warning when lenient
            self.unsupported("format", f"{ptr}/format", _format_refusal(fmt))
        elif isinstance(fmt, str):  # no draft defines it: an annotation, noted (json_formats)
            self.unknown_format(fmt, f"{ptr}/format")
        if hi is not None and hi >= COUNT_FROM:
            auto, boundary = string_product(tuple(bodies), NOTHING) if bodies else _any_counted_body()
            if not isinstance(auto, Automaton):
                return NOTHING
            return seq(QUOTE, CountedBody(auto, boundary, lo, hi, tuple(bodies)), QUOTE)
        if lo or hi is not None or not bodies:
            long_min = hi is None and lo >= COUNT_FROM
            bodies.append(_chars(lo, None) if long_min else Repeat(STR_CHAR, lo, hi))
        body = bodies[0] if len(bodies) == 1 else _body_product(tuple(bodies), NOTHING)
        return seq(QUOTE, body, QUOTE)

    def pattern(self, p: str, ptr: str) -> Node:
        try:
            return _search_node(p, _to_json_string_body, Repeat(STR_CHAR, 0, None))
        except RegexError as e:
            raise self.hard("pattern", ptr, f"pattern not supported: {e.message}") from None

    # -- numbers

    def number(self, s: dict, ptr: str, integer: bool) -> Node:
        lo: float | None = None
        hi: float | None = None
        lo_x = hi_x = False
        if "minimum" in s:
            lo = s["minimum"]
        if "exclusiveMinimum" in s and (lo is None or s["exclusiveMinimum"] >= lo):
            lo, lo_x = s["exclusiveMinimum"], True
        if "maximum" in s:
            hi = s["maximum"]
        if "exclusiveMaximum" in s and (hi is None or s["exclusiveMaximum"] <= hi):
            hi, hi_x = s["exclusiveMaximum"], True
        mult = s.get("multipleOf")
        step: Node | None = None
        if mult is not None:
            if isinstance(mult, float) and mult.is_integer():
                mult = int(mult)
            exact = _decimal(mult)
            assert exact is not None
            d, k = decimal_step(exact)
            if integer:  # n * 10**k divisible by d: n divisible by d / gcd(d, 10**k)
                mult = d // math.gcd(d, 10**k)
                size = 2 * mult + 3
            else:
                size = d * (k + 2) + 3
            if size > MAX_MULTIPLE_STATES:
                raise self.hard(
                    "multipleOf",
                    f"{ptr}/multipleOf",
                    f"multipleOf {mult} needs an automaton of {size:,} states "
                    f"(limit {MAX_MULTIPLE_STATES:,}) to be enforced exactly",
                )
            if not integer:  # exact over numbers written without an exponent, like the decimal bounds
                step = decimal_multiple(exact)
        if integer:
            ilo = (
                None
                if lo is None
                else (math.floor(lo) + 1 if lo_x and float(lo).is_integer() else math.ceil(lo))
            )
            ihi = (
                None
                if hi is None
                else (math.ceil(hi) - 1 if hi_x and float(hi).is_integer() else math.floor(hi))
            )
            if mult is None:
                return integer_range(ilo, ihi) or NOTHING
            multiples = integer_multiple(mult)
            if ilo is None and ihi is None:
                return multiples
            bounded = integer_range(ilo, ihi)
            return intersect_nodes(multiples, bounded) if bounded else NOTHING
        if lo is None and hi is None:
            return step or NUMBER
        if (lo is not None and lo != 0) or (hi is not None and hi != 0):
            # bounds as the decimals the schema wrote; exponent forms with a short mantissa (json_exponents)
            node = number_range(_decimal(lo), lo_x, _decimal(hi), hi_x)
        else:
            neg = lo is None
            pos = hi is None
            zero = not ((lo is not None and lo_x) or (hi is not None and hi_x))
            node = signed_number(neg, zero, pos)
        if node is None:
            return NOTHING
        return node if step is None else intersect_nodes(step, node)

    # -- arrays

    def array(self, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
        if "contains" in s:  # json_keywords; it calls back without the keyword
            return contains(self, s, ptr, refs)
        if "uniqueItems" in s:  # json_keywords; it calls back without the keyword
            return unique_items(self, s, ptr, refs)
        prefix = s.get("prefixItems")
        items = s.get("items", True)
        items_ptr = f"{ptr}/items"
        if isinstance(items, list):  # draft-07
            prefix, items = items, s.get("additionalItems", True)
            items_ptr = f"{ptr}/additionalItems"
        prefix = prefix or []
        lo = int(s.get("minItems", 0))
        hi = s.get("maxItems")
        hi = None if hi is None else int(hi)
        if hi is not None and hi < lo:
            return NOTHING
        pnodes = [self.schema(p, f"{ptr}/prefixItems/{i}", refs) for i, p in enumerate(prefix)]
        if hi is not None:
            pnodes = pnodes[:hi]
        k = len(pnodes)
        rest = self.schema(items, items_ptr, refs) if (hi is None or hi > k) else NOTHING
        # rest items after the prefix: count in [max(0, lo-k), hi-k]
        r_lo = max(0, lo - k)
        r_hi = None if hi is None else max(0, hi - k)
        if rest == NOTHING:
            r_hi = 0
            if r_lo > 0:
                return NOTHING
        if k == 0:
            return self.container("[", "]", rest, r_lo, r_hi) if rest != NOTHING or r_lo == 0 else NOTHING
        tail: Node = EMPTY if r_hi == 0 else Repeat(seq(self.comma, rest), r_lo, r_hi)
        # build from the last prefix item backwards: position i is required when i < lo
        node = seq(pnodes[-1], tail)
        for i in range(k - 2, -1, -1):
            after = seq(self.comma, node)
            node = seq(pnodes[i], after if i + 1 < lo else opt(after))
        body = node if lo > 0 else opt(node)
        return seq(lit("["), self.ws, body, self.ws, lit("]"))

    # -- objects

    def object(self, s: dict, ptr: str, refs: tuple[str, ...]) -> Node:
        props: dict = s.get("properties", {})
        required = set(s.get("required", []))
        patterns: dict = s.get("patternProperties", {})
        addl = s.get("additionalProperties", True)
        if _vacuous(addl):  # any key takes any value: a pattern whose schema asserts nothing changes nothing
            patterns = {p: v for p, v in patterns.items() if not _vacuous(v)}
        names = list(props)
        for r in [r for r in dict.fromkeys(s.get("required", [])) if r not in props]:
            names.append(r)  # required but undeclared: any value (or additionalProperties / patterns)
        decl: list[tuple[str, Node, bool]] = []
        for name in names:
            sub_ptr = f"{ptr}/properties/{_esc(name)}"
            matching = [p for p in patterns if _search(p, name, ptr)]
            if name in props:
                sub = props[name]
            else:
                sub = patterns[matching[0]] if matching else addl
                sub_ptr = (
                    f"{ptr}/patternProperties/{_esc(matching[0])}"
                    if matching
                    else f"{ptr}/additionalProperties"
                )
                matching = matching[1:]
            if matching:
                subs = [sub] + [patterns[p] for p in matching]
                sub = {"allOf": subs}
            value = self.schema(sub, sub_ptr, refs)
            if value == NOTHING:
                if name in required:
                    return NOTHING
                continue
            decl.append((name, seq(_string_literal(name), self.colon, self.piece(value)), name in required))
        # extra keys
        extras: list[Node] = []
        declared = [n for n in names]
        if patterns:
            pp = f"{ptr}/patternProperties"
            overlap = (
                len(patterns) > 1
                and len({json.dumps(v, sort_keys=True) for v in patterns.values()}) > 1
                and not _patterns_apart(tuple(patterns), pp)
            )
            bodies = {p: self.pattern(p, f"{pp}/{_esc(p)}") for p in patterns}
            # declared names are written as declared members, never again as extras
            names_body = alt(*(_string_literal(n, quotes=False) for n in declared)) if declared else NOTHING
            if overlap:  # a key matching several patterns takes all their schemas (json_keywords)
                try:
                    regions = pattern_regions(self, patterns, bodies, names_body, _body_product, pp, refs)
                except NotExact as e:
                    raise self.hard("patternProperties", e.pointer, e.message) from None
                extras += [seq(QUOTE, key, QUOTE, self.colon, v) for key, v in regions]
            for p, sub in patterns.items() if not overlap else ():
                v = self.schema(sub, f"{pp}/{_esc(p)}", refs)
                if v != NOTHING:
                    key = _key_language(bodies[p], names_body)
                    extras.append(seq(QUOTE, key, QUOTE, self.colon, v))
            if addl is not False:
                v = self.schema(addl, f"{ptr}/additionalProperties", refs)
                if v != NOTHING:
                    key = _key_language(None, alt(*bodies.values(), names_body))
                    extras.append(seq(QUOTE, key, QUOTE, self.colon, v))
        elif addl is not False:
            v = self.schema(addl, f"{ptr}/additionalProperties", refs)
            if v != NOTHING:
                extras.append(seq(_not_names(tuple(declared)), self.colon, v))
        if "propertyNames" in s:  # json_keywords
            named = property_names(self, s, decl, extras, ptr, refs)
            if named is None:
                return NOTHING
            decl, extras = named
        # extras as a rule of their own, whatever their size: their key language (every string but the
        # declared names) is most of an object's automaton, and the parser needs it only once a comma
        # after the declared members is written, not for the object's first masks
        extra = self.struct(alt(*extras)) if extras else None
        lo = int(s.get("minProperties", 0))
        hi = s.get("maxProperties")
        hi = None if hi is None else int(hi)
        n_req = sum(1 for d in decl if d[2])
        if hi is not None and hi < max(lo, n_req):
            return NOTHING
        trivial_lo = lo <= n_req
        trivial_hi = hi is None or (extra is None and hi >= len(decl))
        if trivial_lo and trivial_hi:
            return self.props_body(decl, extra, 0, None)
        optional = [d for d in decl if not d[2]]
        if len(optional) > 4:  # counted over the members (json_keywords), not 2^n alternatives
            return counted_members(decl, extra, lo, hi, self.comma, self.ws)
        alts: list[Node] = []
        for mask in range(1 << len(optional)):
            chosen = {optional[i][0] for i in range(len(optional)) if mask >> i & 1}
            fixed = [(n, v, True) for n, v, r in decl if r or n in chosen]
            c = len(fixed)
            e_lo = max(0, lo - c)
            e_hi = None if hi is None else hi - c
            if e_hi is not None and e_hi < 0:
                continue
            if extra is None:
                if e_lo > 0:
                    continue
                e_hi = 0
            alts.append(self.props_body(fixed, extra, e_lo, e_hi))
        return alt(*alts) if alts else NOTHING

    def props_body(
        self, decl: list[tuple[str, Node, bool]], extra: Node | None, e_lo: int, e_hi: int | None
    ) -> Node:
        """`{` declared members in order (optional ones may be absent), then extras, commas exactly right `}`.

        Written as (declared, at least one)(, extra)* | extras-only, so the extras appear only twice.
        """
        if extra is None or e_hi == 0:
            extra = None
        # g: members i.. after something was written (each after a comma); f: members i.., at least one
        g: Node = EMPTY
        f: Node = NOTHING
        g_size = 1
        comma = self.size(self.comma)
        for _name, member, req in reversed(decl):
            # g is written twice below: a rule once large, so that n optional members cost O(n), not n^2
            if g_size > PIECE_STATES:
                g, g_size = self.struct(g), 2
            g_size += comma + self.size(member) + (0 if req else 2)
            g_next, f_next = g, f
            g = seq(self.comma, member, g_next) if req else seq(opt(seq(self.comma, member)), g_next)
            f = seq(member, g_next) if req or f_next == NOTHING else alt(seq(member, g_next), f_next)
        can_skip_decl = not any(req for _, _, req in decl)
        parts: list[Node] = []
        if extra is None:
            if f != NOTHING:
                parts.append(f)
            if can_skip_decl:
                parts.append(EMPTY)
        else:
            if f != NOTHING:
                parts.append(seq(f, Repeat(seq(self.comma, extra), e_lo, e_hi)))
            if can_skip_decl:
                more = Repeat(seq(self.comma, extra), max(e_lo - 1, 0), None if e_hi is None else e_hi - 1)
                alone = seq(extra, more)
                parts.append(alone if e_lo > 0 else opt(alone))
        return seq(lit("{"), self.ws, alt(*parts), self.ws, lit("}"))

    # -- allOf

    def merge_all(self, s: dict, ptr: str, refs: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
        """`s` with its allOf merged into one schema (json_allof)."""
        return merge_all(self, s, ptr, refs)

    def matches(self, pattern: str, name: str, ptr: str) -> bool:
        """Does patternProperties' `pattern` match the property `name` (ECMA-262, unanchored)?"""
        return _search(pattern, name, ptr)

    def patterns_meet(self, p: str, q: str, ptr: str) -> bool:
        """May a property name match both patterns? (True when that is too costly to tell.)"""
        try:
            return not intersection([_search_dfa(p), _search_dfa(q)], "patternProperties").is_empty()
        except RegexError:
            raise UnsupportedSchema(
                f"pattern {p!r} or {q!r} not supported", "patternProperties", ptr
            ) from None
        except GrammarLimitError:
            return True

    # -- oneOf disjointness (json_disjoint.py)

    def disjoint(self, subs: list, rest: dict) -> bool:
        """Are the branches `subs` of a oneOf pairwise disjoint within `rest` (its sibling keywords)?"""
        oracle = self.oracle()
        sides = [{"allOf": [rest, sub]} if _constraining(rest) else sub for sub in subs]
        return all(
            disjoint(sides[i], sides[j], oracle) for i in range(len(sides)) for j in range(i + 1, len(sides))
        )

    def objects_apart(self, subs: list, rest: dict, ptr: str, refs: tuple[str, ...]) -> Node | None:
        """A oneOf whose branches are disjoint on objects but may overlap on other values (untyped
        branches told apart by `required`): the objects as an anyOf, the other values through difference,
        where no key order is involved. None when the objects are not proven disjoint either."""
        objects, others = {"type": "object"}, {"type": [t for t in TYPES if t != "object"]}
        if not self.disjoint(subs, {"allOf": [rest, objects]}):
            return None
        alts = [
            self.schema({"allOf": [rest, objects, sub]}, f"{ptr}/oneOf/{i}", refs)
            for i, sub in enumerate(subs)
        ]
        scalars = {"allOf": [rest, others]}
        if self.disjoint(subs, scalars):
            alts += [
                self.schema({"allOf": [scalars, sub]}, f"{ptr}/oneOf/{i}", refs) for i, sub in enumerate(subs)
            ]
        else:
            alts.append(one_of(self, scalars, subs, ptr, refs, True))
        return alt(*alts)

    def oracle(self) -> Oracle:
        if self._oracle is None:
            self._oracle = Oracle(self.resolve, self.valid, self.pattern_dfa, self.ref_siblings)
        return self._oracle

    def close(self) -> None:
        """Drop the oracle: its bound methods and this compiler are a reference cycle, which would keep
        everything the compiler made (tens of thousands of objects on a large schema) for the cyclic
        collector to find during some later decoding step."""
        self._oracle = None

    def valid(self, value: Any, s: Any) -> bool | None:
        """jsonschema's verdict on `value` under subschema `s`, formats not asserted: False only when both
        the schema's own draft and 2020-12 (decc's reading) reject it; None when it cannot tell."""
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for

        root = self.root if isinstance(self.root, dict) else {}
        if self._validators is None:
            self._validators = [Draft202012Validator(root), validator_for(root, Draft202012Validator)(root)]
        try:
            return any(v.evolve(schema=s).is_valid(value) for v in self._validators)
        except Exception:  # noqa: BLE001 - refs the validator cannot follow, etc.
            return None

    def pattern_dfa(self, pattern: str) -> ByteDFA | None:
        """The JSON strings (quoted) that decc writes for `pattern`; None when it cannot compile it."""
        try:
            return regular_dfa(self.string({"type": "string", "pattern": pattern}, ""), "")
        except (DeccError, NotExact):
            return None


class _Expansion:
    """`_Compiler.expand`'s expansion of calls, each rule's once (a method, not a closure that calls itself:
    that is a reference cycle holding the compiler and every expanded body, freed only by the cyclic
    collector, in some later decoding step)."""

    def __init__(self, comp: _Compiler, ptr: str) -> None:
        self.comp, self.ptr = comp, ptr
        self.bodies = {name: body for body, name in comp.structs.items()}
        self.done: dict[str, Any] = {}
        self.open: set[str] = set()  # the rules being expanded: met again, the language recurses

    def expand(self, call: Call) -> Any:
        comp, done = self.comp, self.done
        if call.rule == ANY_RULE:
            return comp.any_value(ANY_DEPTH)
        if call.rule in done:
            return done[call.rule]
        if call.rule in self.open:
            raise NotExact("the subschema recurses, so its language is not regular", self.ptr)
        frags = {name: frag for frag, name in comp.rules.items()}
        # a `$ref` met twice along one chain of merged schemas is a rule, but not always a recursive one
        body = comp.rule_body(frags[call.rule]) if call.rule in frags else None
        if body is None:
            self.bodies.update((name, b) for b, name in comp.structs.items() if name not in self.bodies)
            body = self.bodies[call.rule]
        self.open.add(call.rule)
        try:
            done[call.rule] = map_calls(body, self.expand)
        finally:
            self.open.discard(call.rule)
        return done[call.rule]


@lru_cache(maxsize=16)
def _any_value(depth: int, any_ws: bool) -> Node:
    """Any JSON value nested at most `depth` containers deep, pre-compiled to a DFA and embedded."""
    comp = _Compiler(True, False, any_ws)
    scalars = [lit("null"), lit("true"), lit("false"), NUMBER, ANY_STRING]
    if depth > 0:
        inner = _any_value(depth - 1, any_ws)
        scalars.append(comp.container("[", "]", inner))
        scalars.append(comp.container("{", "}", seq(ANY_STRING, comp.colon, inner)))
    return _embed(alt(*scalars))


@lru_cache(maxsize=64)
def _format_body(fmt: str) -> Node:
    """A format's JSON string body as its minimal DFA: the regex, spelled with every JSON escape, is many
    times that in NFA states (`uri`: ~15,000), and a schema may hold a format in many places."""
    return _embed(_to_json_string_body(parse_regex(FORMATS[fmt])))  # type: ignore[return-value]


def _embed(node: Node) -> Automaton:
    """A node as its minimal DFA, so that repeated copies cost no subset-construction work."""
    return node_of(dfa_from_nfa(counted_nfa(node, DEFAULT_LIMITS)))  # type: ignore[return-value]


def _decimal(x: float | None) -> Decimal | None:
    """A schema bound as an exact decimal: `0.1` is 0.1 (its shortest repr), not the binary float's value."""
    return None if x is None else Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _format_refusal(fmt: str) -> str:
    """Why decc does not enforce string format `fmt`, one JSON Schema defines but decc cannot enforce exactly."""
    return f"decc does not enforce string format '{fmt}' ({UNENFORCED_FORMATS[fmt]})"


def _esc(k: str) -> str:
    return str(k).replace("~", "~0").replace("/", "~1")


def _search(pattern: str, name: str, ptr: str) -> bool:
    """Does `pattern` match somewhere in the declared property `name`? With ECMA-262 meanings (as the value
    is constrained), not Python's `re` (whose `\\s` and `\\d` are Unicode): an unanchored search automaton."""
    try:
        return _search_dfa(pattern).accepts(name.encode("utf-8"))
    except RegexError:
        raise UnsupportedSchema(f"pattern {pattern!r} not supported", "patternProperties", ptr) from None


def _patterns_apart(patterns: tuple[str, ...], ptr: str) -> bool:
    """Can no key match two of `patterns`? Proven cheaply where each pair has an anchored literal
    (`^billing_id$`) that the other pattern does not match; then no region of overlapping patterns is built
    (2^n products of key languages). False where unproven."""
    literals = [anchored_literal(p) for p in patterns]
    for i, p in enumerate(patterns):
        for j in range(i + 1, len(patterns)):
            lit, other = (literals[i], patterns[j]) if literals[i] is not None else (literals[j], p)
            if lit is None or _search(other, lit, ptr):
                return False
    return True


def _anchored_node(pattern: str) -> Node | None:
    """`pattern` parsed, when it is anchored at both ends with no top-level `|` (its whole language is the
    node's), else None."""
    start, end, top_bar = _anchors(pattern)
    if not (start and end) or top_bar:
        return None
    try:
        return parse_regex(pattern, ecma=True)
    except RegexError:
        return None


@lru_cache(maxsize=1024)
def anchored_literal(pattern: str) -> str | None:
    """The one string `pattern` matches when it is `^` literal characters `$`, else None."""
    node = _anchored_node(pattern)
    if node is None:
        return None
    chars = []
    for item in node.items if isinstance(node, Concat) else (node,):
        if not (
            isinstance(item, CharSet) and len(item.ranges) == 1 and item.ranges[0][0] == item.ranges[0][1]
        ):
            return None
        chars.append(chr(item.ranges[0][0]))
    return "".join(chars) or None


@lru_cache(maxsize=64)
def _search_dfa(pattern: str) -> ByteDFA:
    anything = Repeat(CharSet(negate(())), 0, None)  # any character, newlines included
    return dfa_from_nfa(build_nfa(_search_node(pattern, lambda n: n, anything), DEFAULT_LIMITS))


@lru_cache(maxsize=1024)
def counted_class(pattern: str) -> tuple[CharSet, int, int] | None:
    """(C, m, n) when `pattern` is exactly `^C{m,n}$` (one character class) with n >= COUNT_FROM: the same
    language as strings of C with minLength m and maxLength n, which a counter enforces in a few states
    where the repeat would unroll into n (`^[\\w-]{1,255}$` made thousands of DFA states)."""
    node = _anchored_node(pattern)
    if isinstance(node, Repeat) and isinstance(node.item, CharSet) and node.max is not None:
        return (node.item, node.min, node.max) if node.max >= COUNT_FROM else None
    return None


def _search_node(pattern: str, node_of: Callable[[Node], Node], anything: Node) -> Node:
    """A JSON Schema `pattern` as a search (ECMAScript: unanchored unless it starts with ^ / ends with $):
    `node_of` of the parsed regex, with `anything` on each side that is not anchored."""
    start, end, top_bar = _anchors(pattern)
    if (start or end) and top_bar:  # each alternative a search of its own, with its own anchors
        return alt(*(_search_node(p, node_of, anything) for p in top_level_alternatives(pattern)))
    node = node_of(parse_regex(pattern, ecma=True))
    return seq(*([] if start else [anything]), node, *([] if end else [anything]))


def _checked_by_validator(s: dict) -> bool:
    """Does jsonschema (formats not asserted) decide `s`'s `not`/`if`/`then`/`else` exactly, so that `enum`
    can keep the listed values they accept instead of taking a complement? Not when a format, a pattern
    (Python's `re` is not ECMA-262: `\\d` takes other digits) is inside and the listed values hold a string
    (or key) for it to look at; never with a `$ref` or a draft-07 spelling inside."""
    text = json.dumps([s.get(k) for k in ("not", "if", "then", "else")])
    if any(k in text for k in ('"$ref"', '"dependencies"', '"additionalItems"', '"items": [')):
        return False  # a $ref jsonschema cannot follow counts as valid; 2020-12 ignores draft-07 spellings
    values = [s["const"]] if "const" in s else s["enum"] if isinstance(s.get("enum"), list) else []
    stringless = all(_without_strings(v) for v in values)  # formats and patterns only look at strings
    return stringless or not any(k in text for k in ('"format"', '"pattern'))


def _without_strings(v: Any) -> bool:
    """A JSON value with no string in it, keys included."""
    if isinstance(v, list):
        return all(_without_strings(x) for x in v)
    return not isinstance(v, (str, dict)) or v == {}


def _constraining(s: dict) -> bool:
    return any(not is_annotation(k) for k in s)


def _vacuous(s: Any) -> bool:
    """A subschema any JSON value is valid under: `true`, or an object of annotations only."""
    return s is True or (isinstance(s, dict) and not _constraining(s))


@lru_cache(maxsize=1024)
def _not_names(names: tuple[str, ...]) -> Node:
    """A JSON string (quotes included) that is not one of `names` as `json.dumps` writes them."""
    if not names:
        return ANY_STRING
    spelled = {w for n in names for w in spellings(n)}
    # a lone surrogate has no UTF-8 form: that spelling is no string body, so there is nothing to exclude
    words = sorted(w.encode() for w in spelled if not any(0xD800 <= ord(c) <= 0xDFFF for c in w))
    return seq(QUOTE, excluding(_string_body_dfa(), words), QUOTE)


__all__ = ["InvalidSchema", "UnsupportedSchema", "branches_disjoint", "compile_json_schema", "json_schema"]
