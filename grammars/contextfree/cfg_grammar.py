"""Context-free grammars in Lark syntax, normalized to a small IR: each rule is a regex AST over bytes and calls.

Lark itself reads the grammar (EBNF, templates, `%import`, `%ignore`) and hands back BNF rules and compiled
terminal regexes. Terminals are inlined as their regex ASTs (scannerless); `%ignore` patterns become
`(ignore)*` before every terminal occurrence and at the end of the start rule, which matches Lark's Earley
`lexer="dynamic_complete"` as long as ignored text cannot also start a terminal. The BNF is then made
regular again where possible: Arden's rule turns `A: A a | b` into `A: b a*` (and right recursion likewise),
and rules that do not call themselves are inlined into their callers, so the recursive transition network
keeps a call only where the grammar really nests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from decc.errors import DeccError, Source, Span

from ..errors import RegexError
from ..limits import check_time
from ..regexes.regex_ast import Alt, CharSet, Concat, Node, Repeat, char, map_leaves, normalize
from ..regexes.regex_parser import parse_regex

if TYPE_CHECKING:
    from ..automata.dfa import ByteDFA


class GrammarError(DeccError):
    """A context-free grammar that cannot be read or used (syntax, unknown names, unsupported terminals)."""


@dataclass(frozen=True)
class Call:
    """A call of another rule (by name) inside a rule's body."""

    rule: str


@dataclass(frozen=True, eq=False)
class Lexeme:
    """A whole rule body given as a byte DFA, counters included: a length-bounded JSON string in a recursive
    schema. The RTN unrolls its (state, counter) pairs; the mask for them comes from the DFA's own token
    automaton (cfg_matcher), so long bounds cost no per-state vocabulary walk."""

    dfa: ByteDFA
    name: str = ""


AnyNode = Node | Call | Lexeme
EMPTY_LANGUAGE = Alt(())


@dataclass(frozen=True)
class Grammar:
    """Rules as (name, body) with the start rule first; bodies are regex ASTs that may contain `Call`s."""

    rules: tuple[tuple[str, AnyNode], ...]
    source: str = ""

    @property
    def start(self) -> str:
        return self.rules[0][0]

    def accepts(self, data: bytes) -> bool:
        """`data` is a sentence of the grammar (byte-level Earley), like `ByteDFA.accepts`: a JSON schema
        compiles to either, and callers that only ask this need not care which."""
        return _recognizer(self).accepts(data)


@lru_cache(maxsize=32)
def _recognizer(grammar: Grammar) -> Any:
    from .earley import Recognizer  # earley -> rtn -> this module
    from .rtn import build_rtn

    return Recognizer(build_rtn(grammar))


# Lark's common.ESCAPED_STRING compiles to a regex with a lookbehind; this is its language as a plain regex
# (with dynamic_complete only the shortest, non-greedy match is ever found: up to the first unescaped quote).
_LARK_ESCAPED_STRING = r'".*?(?<!\\)(\\\\)*?"'
_PLAIN_ESCAPED_STRING = r'"(?:[^"\\\n]|\\.)*"'
MAX_INLINE_SIZE = 3000  # NFA states a rule may have and still be copied into several callers
MAX_RULE_SIZE = 20000  # NFA states a rule may grow to by inlining
MAX_INLINE_DEPTH = 60  # nesting a rule may grow to by inlining: later stages walk it recursively


def parse_grammar(text: str, start: str = "start", path: str = "<grammar>") -> Grammar:
    """Read `text` (Lark syntax) and normalize it; raises `GrammarError` with a position when Lark gives one."""
    from lark import Lark
    from lark.exceptions import GrammarError as LarkGrammarError
    from lark.exceptions import LarkError, UnexpectedInput

    source = Source(path, text)
    try:
        parser = Lark(text, parser="earley", lexer="dynamic_complete", start=start)
    except UnexpectedInput as e:
        span = _span_at(source, getattr(e, "line", None), getattr(e, "column", None))
        raise GrammarError(_unexpected(e), span) from None
    except (LarkGrammarError, LarkError) as e:
        message = _first_line(str(e))
        if f"NonTerminal('{start}')" in message:
            raise GrammarError(f"the grammar has no rule '{start}' to start from") from None
        at = re.search(r"line (\d+),? col(?:umn)? (\d+)", message)
        span = _span_at(source, int(at[1]), int(at[2])) if at else _span_of_name(source, message)
        raise GrammarError(_in_words(message), span) from None
    except Exception as e:  # Lark raises assorted exceptions (KeyError, ...) for some malformed grammars
        # a terminal's pattern that `re` / `regex` refuses comes through as their bare `error`
        regex_error = isinstance(e, re.error) or type(e).__name__ == "error"
        what = "invalid regex in a terminal" if regex_error else type(e).__name__
        raise GrammarError(f"{what}: {_first_line(str(e))}") from None

    terminals = {t.name: _terminal_ast(t, source) for t in parser.terminals}
    ignored = [terminals[name] for name in parser.ignore_tokens]
    ignore: Node | None = None
    if ignored:
        ignore = Repeat(ignored[0] if len(ignored) == 1 else Alt(tuple(ignored)), 0, None)

    alternatives: dict[str, list[AnyNode]] = {}
    for rule in parser.rules:
        items: list[AnyNode] = []
        for sym in rule.expansion:
            if sym.is_term:
                term = terminals.get(sym.name)
                if term is None:  # `%declare X`: a terminal only a custom lexer could produce
                    raise GrammarError(
                        f"terminal '{sym.name}' is declared but never defined, so nothing can match it",
                        _span_of_name(source, f"'{sym.name}'"),
                        hints=['define it, e.g. X: "x", or drop %declare'],
                    )
                items.append(term if ignore is None else Concat((ignore, term)))
            else:
                items.append(Call(str(sym.name)))
        alternatives.setdefault(str(rule.origin.name), []).append(_concat(items))
    if start not in alternatives:
        raise GrammarError(f"the grammar has no rule '{start}' to start from", _span_of_name(source, start))
    rules = {name: _alt(alts) for name, alts in alternatives.items()}
    if ignore is not None:
        rules[start] = _concat([rules[start], ignore])
    rules = _simplify(rules, start)
    if start not in productive_rules(rules):
        raise GrammarError(
            f"the grammar matches no string at all (rule '{start}' can never finish)",
            _span_of_name(source, start),
            hints=["give the rule an alternative that does not call itself"],
        )
    return Grammar(tuple([(start, rules[start])] + [(n, b) for n, b in rules.items() if n != start]), text)


# -- Lark terminals -> regex ASTs ------------------------------------------------------------------------


def _terminal_ast(term, source: Source) -> Node:
    from lark.lexer import PatternStr

    pattern = term.pattern
    flags = set(pattern.flags)
    unsupported = flags - {"i"}
    if unsupported:
        raise GrammarError(
            f"terminal {term.name}: regex flags {''.join(sorted(unsupported))} are not supported (only i)",
            _span_of_name(source, term.name),
        )
    if isinstance(pattern, PatternStr):
        node: Node = Concat(tuple(char(ord(c)) for c in pattern.value))
    else:
        regex = pattern.value.replace(_LARK_ESCAPED_STRING, _PLAIN_ESCAPED_STRING)
        try:
            node = parse_regex(regex)
        except RegexError as e:
            where = source.text.find(pattern.value)
            span = Span.of(source, where, where + len(pattern.value)) if where >= 0 else None
            what = f"regex /{pattern.value}/" if term.name.startswith("__") else f"terminal {term.name}"
            raise GrammarError(f"{what}: {e.message}", span or _span_of_name(source, term.name)) from None
    if "i" in flags:
        node = _casefold(node)
    if _nullable(node):
        raise GrammarError(f"terminal {term.name} matches the empty string", _span_of_name(source, term.name))
    return node


def _casefold(node: Node) -> Node:
    if isinstance(node, CharSet):
        extra: list[tuple[int, int]] = list(node.ranges)
        for lo, hi in node.ranges:
            if hi - lo <= 4096:
                for cp in range(lo, hi + 1):
                    for v in {chr(cp).lower(), chr(cp).upper()}:
                        if len(v) == 1:
                            extra.append((ord(v), ord(v)))
            else:  # a huge range: fold its ASCII letters only
                for a, b in ((0x41, 0x5A), (0x61, 0x7A)):
                    if lo <= b and hi >= a:
                        s, e = max(lo, a), min(hi, b)
                        extra.append((s ^ 0x20, e ^ 0x20))
        return CharSet(normalize(extra))
    if isinstance(node, Concat):
        return Concat(tuple(_casefold(i) for i in node.items))
    if isinstance(node, Alt):
        return Alt(tuple(_casefold(i) for i in node.items))
    return Repeat(_casefold(node.item), node.min, node.max)


def _nullable(node: AnyNode, rules: dict[str, bool] | None = None) -> bool:
    if isinstance(node, Call):
        return bool(rules and rules.get(node.rule))
    if isinstance(node, CharSet):
        return False
    if isinstance(node, Concat):
        return all(_nullable(i, rules) for i in node.items)
    if isinstance(node, Alt):
        return any(_nullable(i, rules) for i in node.items)
    return node.min == 0 or _nullable(node.item, rules)


# -- positions of errors ---------------------------------------------------------------------------------


# Lark's names for the tokens of its own grammar syntax, in words
TOKEN_WORDS = {
    "RULE": "a rule name", "TERMINAL": "a terminal name", "STRING": "a string", "REGEXP": "a regex",
    "_NL": "the end of the line", "_COLON": "':'", "_OR": "'|'", "_LPAR": "'('", "_RPAR": "')'",
    "_LBRA": "'['", "_RBRA": "']'", "OP": "an operator (?, *, +)", "_DOT": "'.'", "NUMBER": "a number",
    "_TO": "'->'", "_COMMA": "','", "_DOTDOT": "'..'", "TILDE": "'~'", "_IMPORT": "'%import'",
    "_IGNORE": "'%ignore'", "_DECLARE": "'%declare'", "_OVERRIDE": "'%override'", "_EXTEND": "'%extend'",
}  # fmt: skip


def _unexpected(e: Exception) -> str:
    """Lark's UnexpectedToken/Characters on a grammar, said in words: what was found, what was expected."""
    token = getattr(e, "token", None)
    if token is not None and getattr(token, "type", "") == "_NL":
        found = "end of line"
    elif token is not None:
        found = repr(str(token))
    else:
        char = getattr(e, "char", None)
        found = repr(char) if char else "input"
    expected = sorted(TOKEN_WORDS.get(x, x.strip("_").lower()) for x in getattr(e, "expected", None) or ())
    if not expected:
        return f"unexpected {found}"
    return f"unexpected {found} here: expected {' or '.join(expected)}"


def _in_words(message: str) -> str:
    """Lark's grammar error without its position (the span has it), starting in lower case."""
    message = re.sub(r",? at line \d+,? col(?:umn)? \d+.*$", "", message).rstrip(": ")
    message = re.sub(r"^Expecting ", "expected ", message)
    return message[:1].lower() + message[1:]


def _first_line(message: str) -> str:
    return message.strip().split("\n")[0]


def _span_at(source: Source, line: int | None, col: int | None) -> Span | None:
    if not line or line < 1:
        return None
    starts = source._line_starts
    if line > len(starts):
        return None
    offset = starts[line - 1] + max(0, (col or 1) - 1)
    return Span.of(source, offset, min(len(source.text), offset + 1))


def _span_of_name(source: Source, message: str) -> Span | None:
    """The first whole-word occurrence in the grammar of a quoted name in `message` (or of `message` itself)."""
    names = re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", message) or [message]
    for name in names:
        m = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", source.text)
        if m:
            return Span.of(source, m.start(), m.end())
    return None


# -- simplification --------------------------------------------------------------------------------------


def _concat(items: list[AnyNode]) -> AnyNode:
    return items[0] if len(items) == 1 else Concat(tuple(items))


def _alt(items: list[AnyNode]) -> AnyNode:
    return items[0] if len(items) == 1 else Alt(tuple(items))


def _mentions(node: AnyNode, name: str) -> bool:
    if isinstance(node, Call):
        return node.rule == name
    if isinstance(node, CharSet):
        return False
    if isinstance(node, Repeat):
        return _mentions(node.item, name)
    return any(_mentions(i, name) for i in node.items)


def _calls(node: AnyNode, out: dict[str, int]) -> None:
    if isinstance(node, Call):
        out[node.rule] = out.get(node.rule, 0) + 1
    elif isinstance(node, Repeat):
        _calls(node.item, out)
    elif not isinstance(node, CharSet):
        for i in node.items:
            _calls(i, out)


def _size(node: AnyNode) -> int:
    """About the number of NFA states the node builds into (UTF-8 sequences counted as 2)."""
    if isinstance(node, Call):
        return 2
    if isinstance(node, CharSet):
        return 2 + len(node.ranges)
    if isinstance(node, Repeat):
        return 2 + _size(node.item) * (node.min + 1 if node.max is None else max(node.max, 1))
    return 2 + sum(_size(i) for i in node.items)


def productive_rules(rules: dict[str, AnyNode]) -> set[str]:
    """The rules that derive some finite string (a fixpoint: no rule is productive until shown to be)."""
    good: set[str] = set()
    # callees mostly come after their callers (a schema's structure rules): in reverse, one round usually
    # settles every rule, and a round that leaves none to prove is the last
    order = list(rules.items())[::-1]
    derives: dict[int, bool] = {}  # shown to derive (stays so, as `good` only grows), by id, across rounds
    changed = True
    while changed and len(good) < len(rules):
        changed = False
        memo = dict(derives)  # and this round's answers, the negative ones included
        for name, body in order:
            if name not in good and _derives(body, good, memo):
                good.add(name)
                changed = True
        derives = {k: v for k, v in memo.items() if v}
    return good


def _derives(node: AnyNode, good: set[str], memo: dict[int, bool]) -> bool:
    kind = type(node)
    if kind is Call:
        return node.rule in good
    if kind is CharSet:
        return bool(node.ranges)
    found = memo.get(id(node))
    if found is not None:
        return found
    if kind is Concat:
        out = all(_derives(i, good, memo) for i in node.items)
    elif kind is Alt:
        out = any(_derives(i, good, memo) for i in node.items)
    elif kind is Repeat:
        out = node.min == 0 or _derives(node.item, good, memo)
    elif kind is Lexeme:
        out = not node.dfa.is_empty()
    else:
        out = bool(getattr(node, "accepting", True))  # a precompiled automaton
    memo[id(node)] = out
    return out


def _depth(node: AnyNode) -> int:
    """How deeply the node nests."""
    if isinstance(node, Concat | Alt):
        return 1 + max((_depth(i) for i in node.items), default=0)
    if isinstance(node, Repeat):
        return 1 + _depth(node.item)
    return 1


def map_calls(node: AnyNode, f: Callable[[Call], AnyNode]) -> AnyNode:
    """`node` with every call replaced by `f(call)`; untouched subtrees are shared."""
    return map_leaves(node, lambda leaf: f(leaf) if isinstance(leaf, Call) else leaf)


def _arden(name: str, body: AnyNode) -> AnyNode:
    """`A: b | A a` -> `b a*` and `A: b | a A` -> `a* b` when `A` occurs nowhere else in its body."""
    if not _mentions(body, name):
        return body
    alts = list(body.items) if isinstance(body, Alt) else [body]
    seqs = [list(a.items) if isinstance(a, Concat) else [a] for a in alts]
    for left in (True, False):
        rec: list[AnyNode] = []
        base: list[AnyNode] = []
        for alt, seq in zip(alts, seqs, strict=True):
            if not _mentions(alt, name):
                base.append(alt)
                continue
            end = seq[0] if left else seq[-1]
            rest = seq[1:] if left else seq[:-1]
            if end == Call(name) and not any(_mentions(x, name) for x in rest):
                rec.append(_concat(rest) if rest else Concat(()))
            else:
                break
        else:
            if not base:
                return EMPTY_LANGUAGE  # only recursive alternatives: no finite derivation
            loop = Repeat(_alt(rec), 0, None)
            return _concat([_alt(base), loop] if left else [loop, _alt(base)])
    return body


def _simplify(rules: dict[str, AnyNode], start: str) -> dict[str, AnyNode]:
    rules = {n: _arden(n, b) for n, b in rules.items()}
    while True:
        check_time("simplifying the grammar")
        sizes = {n: _size(b) for n, b in rules.items()}
        depths = {n: _depth(b) for n, b in rules.items()}
        refs: dict[str, dict[str, int]] = {}  # callee -> caller -> number of calls
        for caller, b in rules.items():
            found: dict[str, int] = {}
            _calls(b, found)
            for callee, k in found.items():
                refs.setdefault(callee, {})[caller] = k
        best: tuple[int, str] | None = None
        for name, body in rules.items():
            if name == start or _mentions(body, name):
                continue
            callers = refs.get(name, {})
            size, count = sizes[name], sum(callers.values())
            if count > 1 and size > MAX_INLINE_SIZE:
                continue
            if any(sizes[c] + k * size > MAX_RULE_SIZE for c, k in callers.items()):
                continue
            if any(depths[c] + depths[name] > MAX_INLINE_DEPTH for c in callers):
                continue
            cost = size * max(count - 1, 0)
            if best is None or cost < best[0]:
                best = (cost, name)
        if best is None:
            break
        name = best[1]
        body = rules.pop(name)
        for other in list(rules):
            if _mentions(rules[other], name):
                rules[other] = _arden(
                    other, map_calls(rules[other], lambda c, b=body, n=name: b if c.rule == n else c)
                )
    # Keep what the start rule reaches, in a stable order.
    reached = [start]
    seen = {start}
    for name in reached:
        found: dict[str, int] = {}
        _calls(rules[name], found)
        for callee in found:
            if callee not in seen:
                seen.add(callee)
                reached.append(callee)
    return {n: rules[n] for n in reached}
