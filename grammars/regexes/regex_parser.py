"""Parse a regex in Python `re` syntax into the AST of `regex_ast`, with `re.ASCII` shorthand semantics.

`ecma=True` (JSON Schema `pattern`s, which are ECMA-262) changes what differs in meaning, not in syntax:
`\\s`/`\\S` use ECMAScript's WhiteSpace and LineTerminator code points (U+00A0, U+FEFF, U+2028, ... but not
U+001C-U+001F or U+0085), `.` excludes every line terminator (`\\n`, `\\r`, U+2028, U+2029), and `[]` matches
nothing, `[^]` any character (Python reads a `]` first in a class as a literal). `\\d` and `\\w` are ASCII in
both.

Matching is always a full match, so `^`/`\\A` are accepted only at the start and `$`/`\\Z` only at the end,
where they mean nothing. Features with no regular meaning (backreferences, lookaround, `\\b`, ...) raise a
`RegexError` whose `offset`/`end` point at the offending characters, so the compiler can underline them.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from ..errors import RegexError
from .regex_ast import (
    DOT,
    EMPTY,
    SHORTHANDS,
    SURROGATES,
    Alt,
    CharSet,
    Concat,
    Node,
    Ranges,
    Repeat,
    char,
    intersects,
    negate,
    normalize,
)

_SIMPLE_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07, "\\": 0x5C}
_HEX = "0123456789abcdefABCDEF"
_OCT = "01234567"
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

# ECMA-262 WhiteSpace and LineTerminator: what `\s` matches in a JSON Schema pattern.
ECMA_SPACE: Ranges = normalize(
    [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029)]
    + [(0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)]
)
ECMA_SHORTHANDS: dict[str, Ranges] = {**SHORTHANDS, "s": ECMA_SPACE, "S": negate(ECMA_SPACE)}
ECMA_DOT = CharSet(negate(((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))))

# What a parsed piece reports about anchors: offset and width of the first start / end anchor inside it.
Anchor = tuple[int, int] | None


MAX_GROUP_DEPTH = 100


@lru_cache(maxsize=512)
def parse_regex(pattern: str, ecma: bool = False) -> Node:
    """The AST of `pattern`; raises `RegexError` with exact offsets for anything malformed or unsupported.
    `ecma`: ECMA-262 meanings of `\\s`, `\\S` and `.` (JSON Schema patterns)."""
    return _Parser(pattern, ecma).parse()


class _Parser:
    def __init__(self, pattern: str, ecma: bool = False) -> None:
        self.ecma = ecma
        self.shorthands = ECMA_SHORTHANDS if ecma else SHORTHANDS
        self.dot = ECMA_DOT if ecma else DOT
        self.p = pattern
        self.n = len(pattern)
        self.i = 0
        self.names: set[str] = set()
        self.possessive: list[tuple[Repeat, int, int]] = []
        self.depth = 0  # groups open around the current position

    def error(self, message: str, start: int, end: int | None = None, hint: str | None = None) -> RegexError:
        return RegexError(message, self.p, start, end, hints=[hint] if hint else ())

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < self.n else ""

    def parse(self) -> Node:
        node, _, _ = self.alternation(at_start=True)
        if self.i < self.n:  # only a stray ')' ends the top level early
            raise self.error(
                "unbalanced parenthesis: ')' has no matching '('",
                self.i,
                hint=r"escape a literal parenthesis: \)",
            )
        _check_possessive(node, self.possessive, self.p)
        return node

    # -- structure -------------------------------------------------------------------------------------

    def alternation(self, at_start: bool) -> tuple[Node, Anchor, Anchor]:
        branches: list[Node] = []
        first_start: Anchor = None
        first_end: Anchor = None
        while True:
            node, s, e = self.sequence(at_start)
            branches.append(node)
            first_start = first_start or s
            first_end = first_end or e
            if self.peek() != "|":
                break
            self.i += 1
        node = branches[0] if len(branches) == 1 else Alt(tuple(branches))
        return node, first_start, first_end

    def sequence(self, at_start: bool) -> tuple[Node, Anchor, Anchor]:
        items: list[Node] = []
        start_anchor: Anchor = None
        end_anchor: Anchor = None
        while self.i < self.n:
            c = self.p[self.i]
            if c in "|)":
                break
            start = self.i
            if c == "^" or self.p.startswith("\\A", start):
                width = 1 if c == "^" else 2
                if not at_start or items:
                    raise self.error(
                        f"'{self.p[start : start + width]}' is only supported at the start of the pattern",
                        start,
                        start + width,
                    )
                self.i += width
                start_anchor = start_anchor or (start, width)
                self.forbid_quantifier()
                continue
            if c == "$" or self.p.startswith("\\Z", start):
                width = 1 if c == "$" else 2
                self.i += width
                end_anchor = end_anchor or (start, width)
                self.forbid_quantifier()
                continue
            if self.p.startswith("(?#", start):
                self.comment()
                continue
            atom, s, e = self.atom(at_start and not items)
            atom = self.quantified(atom, start, s or e)
            if end_anchor is not None:
                off, width = end_anchor
                anchor = self.p[off : off + width]
                raise self.error(f"'{anchor}' is only supported at the end of the pattern", off, off + width)
            items.append(atom)
            start_anchor = start_anchor or s
            end_anchor = end_anchor or e
        node = items[0] if len(items) == 1 else Concat(tuple(items))
        return node, start_anchor, end_anchor

    def atom(self, at_start: bool) -> tuple[Node, Anchor, Anchor]:
        c = self.p[self.i]
        if c == "(":
            return self.group(at_start)
        if c == "[":
            return CharSet(self.char_class()), None, None
        if c == ".":
            self.i += 1
            return self.dot, None, None
        if c == "\\":
            start = self.i
            ranges, cp = self.escape(in_class=False)
            if cp is not None and SURROGATES[0] <= cp <= SURROGATES[1]:
                raise self.surrogate(start)
            return CharSet(ranges), None, None
        if c in "*+?" or (c == "{" and self.brace(self.i) is not None):
            raise self.error(
                "nothing to repeat",
                self.i,
                self.quantifier_end(),
                hint=r"escape a literal quantifier: \*, \+, \?",
            )
        if SURROGATES[0] <= ord(c) <= SURROGATES[1]:
            raise self.surrogate(self.i)
        self.i += 1
        return char(ord(c)), None, None

    def surrogate(self, start: int) -> RegexError:
        return self.error(
            "a lone surrogate code point cannot be matched: it has no UTF-8 encoding", start, self.i
        )

    def comment(self) -> None:
        close = self.p.find(")", self.i)
        if close < 0:
            raise self.error("missing ), unterminated comment", self.i, self.i + 3)
        self.i = close + 1

    def group(self, at_start: bool) -> tuple[Node, Anchor, Anchor]:
        start = self.i
        self.depth += 1
        if self.depth > MAX_GROUP_DEPTH:  # every later stage walks the tree recursively
            raise self.error(
                f"groups nested too deep: more than {MAX_GROUP_DEPTH} levels",
                start,
                start + 1,
                hint="drop the groups that hold a single item",
            )
        self.i += 1
        if self.peek() == "?":
            self.group_extension(start)
        node, s, e = self.alternation(at_start)
        self.depth -= 1
        if self.peek() != ")":
            raise self.error(
                "unbalanced parenthesis: '(' is never closed",
                start,
                start + 1,
                hint=r"close the group with ')', or escape a literal parenthesis: \(",
            )
        self.i += 1
        return node, s, e

    def group_extension(self, start: int) -> None:
        """Consume what follows `(?`: only `(?:` and `(?P<name>` open a supported group."""
        j = self.i + 1
        nxt = self.p[j : j + 1]
        if nxt == ":":
            self.i = j + 1
        elif self.p.startswith("P<", j):
            close = self.p.find(">", j + 2)
            if close < 0:
                raise self.error("missing >, unterminated name", j + 2, self.n)
            name = self.p[j + 2 : close]
            if not name:
                raise self.error("missing group name", j + 2, close + 1)
            if not name.isidentifier():
                raise self.error(f"bad character in group name '{name}'", j + 2, close)
            if name in self.names:
                raise self.error(f"redefinition of group name '{name}'", j + 2, close)
            self.names.add(name)
            self.i = close + 1
        elif self.p.startswith("P=", j):
            close = self.p.find(")", j)
            raise self.error("backreferences are not supported", start, close + 1 if close >= 0 else self.n)
        elif nxt in ("=", "!"):
            raise self.error("lookahead is not supported", start, j + 1)
        elif self.p.startswith("<=", j) or self.p.startswith("<!", j):
            raise self.error("lookbehind is not supported", start, j + 2)
        elif nxt == ">":
            raise self.error("atomic groups are not supported", start, j + 1)
        elif nxt == "(":
            raise self.error("conditional groups are not supported", start, j + 1)
        elif nxt and nxt in "aiLmsux-":
            end = j
            while end < self.n and self.p[end] in "aiLmsux-":
                end += 1
            raise self.error("inline flags are not supported", start, min(end + 1, self.n))
        else:
            raise self.error(f"unknown extension ?{nxt}", start, j + 1)

    # -- quantifiers -----------------------------------------------------------------------------------

    def brace(self, i: int) -> tuple[int, int | None, int] | None:
        """`{n}`, `{n,}`, `{,m}`, `{n,m}` at `i` as (min, max, end); None when `{` is a plain literal (as in `re`)."""
        j = i + 1
        k = j
        while k < self.n and self.p[k].isdigit() and self.p[k].isascii():
            k += 1
        lo = self.p[j:k]
        if k < self.n and self.p[k] == ",":
            m = k + 1
            while m < self.n and self.p[m].isdigit() and self.p[m].isascii():
                m += 1
            hi: str | None = self.p[k + 1 : m]
            k = m
        else:
            hi = None
        if k >= self.n or self.p[k] != "}" or (not lo and hi is None):
            return None
        low = int(lo) if lo else 0
        high = low if hi is None else (int(hi) if hi else None)
        return low, high, k + 1

    def quantifier(self) -> tuple[int, int | None, int] | None:
        c = self.peek()
        if c == "*":
            return 0, None, self.i + 1
        if c == "+":
            return 1, None, self.i + 1
        if c == "?":
            return 0, 1, self.i + 1
        if c == "{":
            return self.brace(self.i)
        return None

    def quantifier_end(self) -> int:
        q = self.quantifier()
        return q[2] if q else self.i + 1

    def forbid_quantifier(self) -> None:
        if self.quantifier() is not None:
            raise self.error(
                "nothing to repeat",
                self.i,
                self.quantifier_end(),
                hint=r"escape a literal quantifier: \*, \+, \?",
            )

    def quantified(self, atom: Node, atom_start: int, anchor: Anchor) -> Node:
        q = self.quantifier()
        if q is None:
            return atom
        low, high, end = q
        qstart = self.i
        if high is not None and low > high:
            raise self.error(
                "min repeat greater than max repeat", qstart, end, hint="write {min,max} with min <= max"
            )
        if anchor is not None and (high is None or high > 1):
            off, width = anchor
            raise self.error("an anchor inside a repeated group is not supported", off, off + width)
        self.i = end
        possessive = self.peek() == "+"
        if self.peek() in ("?", "+"):  # lazy and possessive forms; see _check_possessive for the latter
            self.i += 1
        node = Repeat(atom, low, high)
        if possessive:
            self.possessive.append((node, qstart, self.i))
        if self.quantifier() is not None:
            raise self.error(
                "multiple repeat",
                self.i,
                self.quantifier_end(),
                hint="group it first: (a*)+, or drop one quantifier",
            )
        return node

    # -- characters ------------------------------------------------------------------------------------

    def char_class(self) -> Ranges:
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.ecma and self.peek() == "]":  # ECMAScript: `[]` matches nothing, `[^]` any character
            self.i += 1
            return negate(()) if negated else ()
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.i >= self.n:
                raise self.error(
                    "unterminated character set",
                    start,
                    start + 1,
                    hint=r"close it with ']', or escape it: \[",
                )
            if self.p[self.i] == "]" and not first:
                self.i += 1
                break
            first = False
            item_start = self.i
            lo_ranges, lo = self.class_item()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                _, hi = self.class_item()
                if lo is None or hi is None or hi < lo:
                    raise self.error(f"bad character range {self.p[item_start : self.i]}", item_start, self.i)
                ranges.append((lo, hi))
            else:
                ranges.extend(lo_ranges)
        return negate(tuple(ranges)) if negated else normalize(ranges)

    def class_item(self) -> tuple[Ranges, int | None]:
        if self.p[self.i] == "\\":
            return self.escape(in_class=True)
        cp = ord(self.p[self.i])
        self.i += 1
        return ((cp, cp),), cp

    def escape(self, in_class: bool) -> tuple[Ranges, int | None]:
        """The escape at `self.i`: (its code points, the single code point or None for a shorthand)."""
        start = self.i
        if start + 1 >= self.n:
            raise self.error("bad escape (end of pattern)", start, start + 1)
        c = self.p[start + 1]
        self.i = start + 2
        cp: int | None = None
        if c in _SIMPLE_ESCAPES:
            cp = _SIMPLE_ESCAPES[c]
        elif c in self.shorthands:
            return self.shorthands[c], None
        elif c == "b" and in_class:
            cp = 0x08
        elif c in "bB":
            raise self.error(f"word boundaries (\\{c}) are not supported", start, self.i)
        elif c in "xuU":
            cp = self.hex_escape(start, {"x": 2, "u": 4, "U": 8}[c])
        elif c == "N":
            cp = self.named_escape(start)
        elif c in "pP":
            return self.property_escape(start, negated=c == "P"), None
        elif c == "0" or (c in _OCT and in_class):
            cp = self.octal_escape(start, 2)
        elif c.isdigit() and c.isascii():
            nxt, nxt2 = self.peek(), self.peek(1)
            if in_class:
                raise self.error(f"bad escape \\{c}", start, self.i)
            if c in _OCT and nxt and nxt in _OCT and nxt2 and nxt2 in _OCT:
                cp = self.octal_escape(start, 2)  # `\123` is octal; `\1`, `\12` are group references
            else:
                end = self.i
                while end < self.n and self.p[end].isdigit():
                    end += 1
                raise self.error("backreferences are not supported", start, end)
        elif c in _ASCII_ALNUM:
            raise self.error(f"bad escape \\{c}", start, self.i)
        else:
            cp = ord(c)
        return ((cp, cp),), cp

    def hex_escape(self, start: int, digits: int) -> int:
        j = self.i
        while j < self.n and j - self.i < digits and self.p[j] in _HEX:
            j += 1
        if j - self.i < digits:
            raise self.error(f"incomplete escape {self.p[start:j]}", start, j)
        cp = int(self.p[self.i : j], 16)
        self.i = j
        if cp > 0x10FFFF:
            raise self.error(f"bad escape {self.p[start:j]}", start, j)
        return cp

    def octal_escape(self, start: int, more: int) -> int:
        j = self.i
        while j < self.n and j - self.i < more and self.p[j] in _OCT:
            j += 1
        self.i = j
        cp = int(self.p[start + 1 : j], 8)
        if cp > 0o377:
            raise self.error(f"octal escape value {self.p[start:j]} outside of range 0-0o377", start, j)
        return cp

    def named_escape(self, start: int) -> int:
        if self.peek() != "{":
            raise self.error("missing {", start, self.i + 1)
        close = self.p.find("}", self.i)
        if close < 0:
            raise self.error("missing }, unterminated name", start, self.n)
        name = self.p[self.i + 1 : close]
        if not name:
            raise self.error("missing character name", start, close + 1)
        try:
            cp = ord(unicodedata.lookup(name))
        except KeyError:
            raise self.error(f"undefined character name '{name}'", start, close + 1) from None
        self.i = close + 1
        return cp

    def property_escape(self, start: int, negated: bool) -> Ranges:
        """`\\p{L}` / `\\P{Lu}` (also `\\pL`): a Unicode general category, as ECMAScript (`u` flag) and the
        `regex` module read it; `General_Category=`/`gc=` prefixes and long names are accepted."""
        if self.peek() == "{":
            close = self.p.find("}", self.i)
            if close < 0:
                raise self.error("missing }, unterminated property name", start, self.n)
            name, end = self.p[self.i + 1 : close], close + 1
        elif self.peek():
            name, end = self.p[self.i], self.i + 1
        else:
            raise self.error("missing property name", start, self.i)
        key = name.split("=", 1)[1] if name.split("=", 1)[0] in ("General_Category", "gc") else name
        key = _CATEGORY_NAMES.get(key.replace(" ", "_").lower(), key)
        ranges = _category_ranges().get(key)
        if ranges is None:
            raise self.error(
                f"unknown Unicode property '{name}' (general categories such as L, Lu, Nd, P are supported)",
                start,
                end,
            )
        self.i = end
        return negate(ranges) if negated else ranges


_CATEGORY_NAMES = {
    "letter": "L",
    "cased_letter": "LC",
    "uppercase_letter": "Lu",
    "lowercase_letter": "Ll",
    "titlecase_letter": "Lt",
    "modifier_letter": "Lm",
    "other_letter": "Lo",
    "mark": "M",
    "combining_mark": "M",
    "nonspacing_mark": "Mn",
    "spacing_mark": "Mc",
    "enclosing_mark": "Me",
    "number": "N",
    "decimal_number": "Nd",
    "digit": "Nd",
    "letter_number": "Nl",
    "other_number": "No",
    "punctuation": "P",
    "punct": "P",
    "connector_punctuation": "Pc",
    "dash_punctuation": "Pd",
    "open_punctuation": "Ps",
    "close_punctuation": "Pe",
    "initial_punctuation": "Pi",
    "final_punctuation": "Pf",
    "other_punctuation": "Po",
    "symbol": "S",
    "math_symbol": "Sm",
    "currency_symbol": "Sc",
    "modifier_symbol": "Sk",
    "other_symbol": "So",
    "separator": "Z",
    "space_separator": "Zs",
    "line_separator": "Zl",
    "paragraph_separator": "Zp",
    "other": "C",
    "control": "Cc",
    "cntrl": "Cc",
    "format": "Cf",
    "unassigned": "Cn",
    "private_use": "Co",
    "surrogate": "Cs",
}
_CATEGORY_NAMES.update({v.lower(): v for v in list(_CATEGORY_NAMES.values())})


@lru_cache(maxsize=1)
def _category_ranges() -> dict[str, Ranges]:
    """Code point ranges per general category (two letters, one letter, and LC), from `unicodedata`:
    one pass over the code points, once per process."""
    spans: dict[str, list[tuple[int, int]]] = {}
    prev, begin = unicodedata.category("\0"), 0
    for cp in range(1, 0x110001):
        cat = unicodedata.category(chr(cp)) if cp <= 0x10FFFF else ""
        if cat != prev:
            spans.setdefault(prev, []).append((begin, cp - 1))
            prev, begin = cat, cp
    out: dict[str, Ranges] = {}
    for cat, rs in spans.items():
        out[cat] = normalize(rs)
    for major in "LMNPSZC":
        out[major] = normalize([r for cat, rs in spans.items() if cat.startswith(major) for r in rs])
    out["LC"] = normalize([r for cat in ("Lu", "Ll", "Lt") for r in spans.get(cat, [])])
    return out


def _first(node: Node) -> tuple[Ranges, bool]:
    """The code points that can start a match of `node`, and whether it matches the empty string."""
    if isinstance(node, CharSet):
        return node.ranges, False
    if isinstance(node, Repeat):
        ranges, nullable = _first(node.item) if node.max != 0 else ((), True)
        return ranges, nullable or node.min == 0
    if isinstance(node, Alt):
        parts = [_first(item) for item in node.items]
        return normalize(r for ranges, _ in parts for r in ranges), any(n for _, n in parts)
    acc: list[tuple[int, int]] = []
    for item in node.items:
        ranges, nullable = _first(item)
        acc.extend(ranges)
        if not nullable:
            return normalize(acc), False
    return normalize(acc), True


def _check_possessive(root: Node, marks: list[tuple[Repeat, int, int]], pattern: str) -> None:
    """Accept `X*+`-style quantifiers only where they match the same strings as the greedy form.

    A possessive quantifier never gives characters back, so `a*+a` matches nothing while `a*a` matches
    `a`, `aa`, ... For a one-character `X` whose follow set is disjoint from `X`, a full match must take the
    whole run anyway, so the languages agree; anywhere else we refuse rather than silently differ from `re`.
    """
    if not marks:
        return
    wanted = {id(node): (start, end) for node, start, end in marks}

    def walk(node: Node, follow: Ranges) -> None:
        if isinstance(node, Repeat):
            if id(node) in wanted and (
                not isinstance(node.item, CharSet) or intersects(node.item.ranges, follow)
            ):
                start, end = wanted[id(node)]
                raise RegexError(
                    "possessive quantifier is not supported here: it would reject strings that the "
                    "greedy form accepts",
                    pattern,
                    start,
                    end,
                    hints=["use the greedy quantifier (drop the trailing '+')"],
                )
            loops = node.max is None or node.max > 1
            walk(node.item, normalize(_first(node.item)[0] + follow) if loops else follow)
        elif isinstance(node, Alt):
            for item in node.items:
                walk(item, follow)
        elif isinstance(node, Concat):
            after = follow
            for item in reversed(node.items):
                walk(item, after)
                ranges, nullable = _first(item)
                after = normalize(ranges + after) if nullable else ranges

    walk(root, ())


__all__ = ["parse_regex", "EMPTY"]
