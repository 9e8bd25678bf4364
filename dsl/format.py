"""`decc fmt`: print a `.dec` program canonically, from its AST, keeping every comment.

The rules (one output for every program that means the same, so formatting twice changes nothing):

- Two spaces per level; one item, statement or option per line; exactly one newline at the end of the file.
- `gen NAME` without options; `gen NAME { key: value, key: value }` with at most three options when that
  fits on one line and no comment is inside the braces; otherwise the block form: `gen NAME {`, one
  `key: value` per line (no commas), `}`; a `model` declaration's options likewise. Turns written with a
  bare string stay `user "..."`; every other body is a block, `{}` when empty. `if c {...} elif c {...}
  else {...}` puts `} elif c {` and `} else {` on the line of the `}`.
- String and number literals are copied verbatim from the source (escapes, raw and long strings as written).
- A list or call stays on one line if it fits in 100 columns and holds no comment; otherwise one element per
  line, each followed by a comma.
- Blank lines: at most one is kept where the source had one or more between two entries (items, statements,
  options, elements or own-line comments); none at the start of a file or a block, none before a `}`.
- Comments: an own-line comment stays before what follows it, at its indentation (at the end of a block it
  stays inside, before the `}`); a trailing comment stays after the line it ends, a comment after a `{`, `[`
  or `(` stays on that opening line. A comment inside a construct that has no line of its own (between `model`
  and its argument, inside a condition, between `}` and `elif`) moves to its own line: before the item, or at
  the end of the block that precedes it.

Formatting never changes meaning or drops a comment: the output is parsed again and its AST (spans aside) and
its comments must equal the input's; otherwise an `InternalError`, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from decc.dsl import ast
from decc.dsl.parser import parse_with_comments
from decc.errors import DeccError, InternalError, Source, Span

MAX_ONE_LINE = 3  # options of a gen that may share its line
WIDTH = 100
INDENT = "  "
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


def format_source(source: Source | str) -> str:
    """The canonical text of a program; raises `DeccError` when it does not parse."""
    if isinstance(source, str):
        source = Source("<string>", source)
    program, found = parse_with_comments(source)
    out = _Printer(program, found).program()
    _verify(program, found, out)
    return out


@dataclasses.dataclass(frozen=True)
class _Comment:
    start: int
    end: int
    text: str  # trailing whitespace (a CRLF file's '\r' included) is not part of it
    own_line: bool  # nothing but whitespace before it on its line


class _Printer:
    """Prints nodes top-down; each place that can hold a comment claims the comments in its source range."""

    def __init__(self, program: ast.Program, found: list[tuple[int, str]]) -> None:
        self.tree = program
        self.text = program.source.text
        self.comments = [
            _Comment(
                start, start + len(raw), raw.rstrip(), not self.text[self._line_start(start) : start].strip()
            )
            for start, raw in found
        ]
        self.starts = [c.start for c in self.comments]  # in order: the lexer found them left to right
        self.ends = {c.start: c.end for c in self.comments}
        self.taken: set[int] = set()

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    # --- comments and source positions

    def take(self, lo: int, hi: int) -> list[_Comment]:
        """The comments starting in `lo..hi` that no inner construct claimed yet; they are now claimed."""
        first, last = bisect_left(self.starts, lo), bisect_left(self.starts, hi)
        out = [c for c in self.comments[first:last] if c.start not in self.taken]
        self.taken.update(c.start for c in out)
        return out

    def has_comment(self, lo: int, hi: int) -> bool:
        return bisect_left(self.starts, lo) < bisect_left(self.starts, hi)

    def next_code(self, pos: int) -> int:
        """The offset of the next character that is neither whitespace nor in a comment."""
        while pos < len(self.text):
            if self.text[pos].isspace():
                pos += 1
            elif pos in self.ends:
                pos = self.ends[pos]
            else:
                return pos
        return pos

    def verbatim(self, span: Span) -> str:
        return self.text[span.start : span.end]

    # --- bodies: the file, a block, the options of a gen, the elements of a wrapped list or call

    def body(
        self, nodes: Sequence[Any], lo: int, hi: int, indent: str, render: Callable[[Any, str], str]
    ) -> tuple[str | None, list[str]]:
        """(a comment for the opening line, the entries) of the nodes and comments in `lo..hi`."""
        opener: str | None = None
        chunks: list[str] = []
        prev_end: int | None = None  # where the previous entry ended; None before the first
        can_trail = lo > 0  # a comment that follows code on its line may trail the opener / previous node

        def blank_before(start: int) -> None:
            if prev_end is not None and _BLANK_LINE.search(self.text, prev_end, start):
                chunks.append("")

        pos = lo
        for node in [*nodes, None]:
            for c in self.take(pos, node.span.start if node is not None else hi):
                if not c.own_line and can_trail:
                    if prev_end is None:
                        opener = c.text
                    else:
                        chunks[-1] += f"  {c.text}"
                else:
                    blank_before(c.start)
                    chunks.append(indent + c.text)
                can_trail = False
                prev_end = c.end
            if node is None:
                break
            blank_before(node.span.start)
            printed = render(node, indent)
            chunks += [
                indent + c.text for c in self.take(node.span.start, node.span.end)
            ]  # no line of their own
            chunks.append(printed)
            prev_end = pos = node.span.end
            can_trail = True
        return opener, chunks

    @staticmethod
    def braced(head: str, opener: str | None, chunks: list[str], indent: str, close: str = "}") -> str:
        if opener is None and not chunks:
            return head + close
        first = f"{head}  {opener}" if opener is not None else head
        return "\n".join([first, *chunks, indent + close])

    def block(
        self, nodes: Sequence[Any], open_brace: int, close_brace: int, indent: str
    ) -> tuple[str | None, list[str]]:
        return self.body(nodes, open_brace + 1, close_brace, indent + INDENT, self.item)

    # --- items and statements

    def program(self) -> str:
        _, chunks = self.body(self.tree.items, 0, len(self.text), "", self.item)
        return "\n".join(chunks) + "\n" if chunks else ""

    def item(self, node: Any, indent: str) -> str:
        if isinstance(node, ast.ModelDecl):
            start, end = node.offsets
            return self.with_options(f"{indent}model {self.text[start:end]}", end, node, indent)
        if isinstance(node, ast.InputDecl):
            head = f"{indent}input {node.name.value}" + (f": {node.type.value}" if node.type else "")
            if node.default is None:
                return head
            return f"{head} = {self.expr(node.default, indent, len(head) + 3)}"
        if isinstance(node, ast.Import):
            path = self.verbatim(node.path.span)
            if node.names is None:
                return f"{indent}import {path}"
            names = ", ".join(n.name.value + (f" as {n.alias.value}" if n.alias else "") for n in node.names)
            return f"{indent}from {path} import {names}"
        if isinstance(node, ast.Let):
            head = f"{indent}let {node.name.value} = "
            return head + self.expr(node.value, indent, len(head))
        if isinstance(node, ast.Text):
            return indent + self.verbatim(node.span)
        if isinstance(node, ast.Turn):
            return self.turn(node, indent)
        if isinstance(node, ast.Gen):
            return self.gen(node, indent)
        if isinstance(node, ast.If):
            return self.if_(node, indent)
        raise InternalError(f"decc fmt cannot print a {type(node).__name__} yet")

    def turn(self, node: ast.Turn, indent: str) -> str:
        head = f"{indent}{node.role.value} "
        brace = self.next_code(node.role.span.end)
        if self.text[brace] != "{":  # `user "..."`: a bare string stays one
            (text,) = node.body
            return head + self.verbatim(text.span)
        opener, chunks = self.block(node.body, brace, node.span.end - 1, indent)
        return self.braced(head + "{", opener, chunks, indent)

    def gen(self, node: ast.Gen, indent: str) -> str:
        return self.with_options(f"{indent}gen {node.name.value}", node.name.span.end, node, indent)

    def with_options(self, head: str, after: int, node: ast.Gen | ast.ModelDecl, indent: str) -> str:
        """`head` and the `{ key: value }` options of a gen or a model declaration that follow `after`."""
        brace = self.next_code(after)
        if brace >= node.span.end:  # no braces at all
            return head
        if 1 <= len(node.options) <= MAX_ONE_LINE and not self.has_comment(brace, node.span.end):
            values = [self.flat(opt.value) for opt in node.options]
            if all(v is not None and "\n" not in v for v in values):
                inside = ", ".join(f"{o.key.value}: {v}" for o, v in zip(node.options, values, strict=True))
                one_line = f"{head} {{ {inside} }}"
                if len(one_line) <= WIDTH:
                    return one_line
        opener, chunks = self.body(node.options, brace + 1, node.span.end - 1, indent + INDENT, self.option)
        if opener is None and not chunks:
            return head
        return self.braced(head + " {", opener, chunks, indent)

    def option(self, node: ast.Option, indent: str) -> str:
        head = f"{indent}{node.key.value}: "
        return head + self.expr(node.value, indent, len(head))

    def if_(self, node: ast.If, indent: str) -> str:
        heads: list[str] = []
        blocks: list[tuple[str | None, list[str]]] = []
        close = -1
        for i, case in enumerate(node.cases):
            head = f"{indent}if " if i == 0 else "} elif "  # `} elif` follows the indentation of the `}`
            head += f"{case.cond.var.value} {case.cond.op} "
            head += self.expr(case.cond.value, indent, len(head) + (0 if i == 0 else len(indent)), len(" {"))
            brace = self.next_code(case.cond.span.end)
            if i > 0:  # between `}` and `elif ... {`: at the end of the block before
                blocks[-1][1].extend(indent + INDENT + c.text for c in self.take(close + 1, brace))
            heads.append(head + " {")
            close = case.span.end - 1
            blocks.append(self.block(case.body, brace, close, indent))
        if node.otherwise is not None and node.else_span is not None:
            brace = node.else_span.start
            blocks[-1][1].extend(indent + INDENT + c.text for c in self.take(close + 1, brace))
            heads.append("} else {")
            blocks.append(self.block(node.otherwise, brace, node.else_span.end - 1, indent))
        out = ""
        for head, (opener, chunks) in zip(heads, blocks, strict=True):
            first = f"{head}  {opener}" if opener is not None else head
            out += "\n".join([first, *chunks, indent]) if opener is not None or chunks else head
        return out + "}"

    # --- expressions

    def flat(self, e: Any) -> str | None:
        """`e` on one line, or None when a list or call inside holds a comment (and so must be wrapped)."""
        if isinstance(e, (ast.StrLit, ast.NumLit)):
            return self.verbatim(e.span)
        if isinstance(e, ast.BoolLit):
            return "true" if e.value else "false"
        if isinstance(e, ast.NameRef):
            return e.name
        if isinstance(e, ast.KwArg):
            value = self.flat(e.value)
            return None if value is None else f"{e.name.value}={value}"
        if isinstance(e, ast.And):
            items = [self.flat(x) for x in e.items]
            return None if None in items else " & ".join(items)  # type: ignore[arg-type]
        if isinstance(e, ast.ListLit):
            return self._flat_seq("[", e.items, "]", e.span.start, e.span.end)
        if isinstance(e, ast.Call):
            return self._flat_seq(f"{e.func.value}(", (*e.args, *e.kwargs), ")", self._paren(e), e.span.end)
        raise InternalError(f"decc fmt cannot print a {type(e).__name__} yet")

    def _flat_seq(self, head: str, items: Sequence[Any], close: str, lo: int, hi: int) -> str | None:
        if self.has_comment(lo, hi):
            return None
        parts = [self.flat(x) for x in items]
        return None if None in parts else head + ", ".join(parts) + close  # type: ignore[arg-type]

    def _paren(self, call: ast.Call) -> int:
        return self.next_code(call.func.span.end)

    def expr(self, e: Any, indent: str, col: int, tail: int = 0) -> str:
        """`e` starting at column `col` of a line indented by `indent`, with `tail` characters after it."""
        flat = self.flat(e)
        if flat is not None and col + len(flat.split("\n", 1)[0]) + tail <= WIDTH:
            return flat
        if isinstance(e, ast.ListLit):
            return self.wrapped("[", e.items, "]", e.span.start, e.span.end - 1, indent)
        if isinstance(e, ast.Call):
            return self.wrapped(
                f"{e.func.value}(", (*e.args, *e.kwargs), ")", self._paren(e), e.span.end - 1, indent
            )
        if isinstance(e, ast.KwArg):
            head = f"{e.name.value}="
            return head + self.expr(e.value, indent, col + len(head), tail)
        if isinstance(e, ast.And):
            parts: list[str] = []
            for i, x in enumerate(e.items):
                last = i == len(e.items) - 1
                parts.append(self.expr(x, indent, col, tail if last else len(" &")))
                col = _column_after(col, parts[-1]) + len(" & ")
            return " & ".join(parts)
        assert flat is not None  # a literal or a name: nothing to wrap
        return flat

    def wrapped(
        self, head: str, items: Sequence[Any], close: str, open_at: int, close_at: int, indent: str
    ) -> str:
        def element(x: Any, inner: str) -> str:
            return inner + self.expr(x, inner, len(inner), tail=1) + ","

        opener, chunks = self.body(items, open_at + 1, close_at, indent + INDENT, element)
        return self.braced(head, opener, chunks, indent, close)


def _column_after(col: int, printed: str) -> int:
    return col + len(printed) if "\n" not in printed else len(printed.rsplit("\n", 1)[1])


def ast_shape(node: Any) -> Any:
    """A node without its positions, to compare two parses of the same program."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        skip = {"span", "else_span", "offsets", "source"}
        fields = tuple(
            (f.name, ast_shape(getattr(node, f.name))) for f in dataclasses.fields(node) if f.name not in skip
        )
        return (type(node).__name__, fields)
    if isinstance(node, tuple):
        return tuple(ast_shape(x) for x in node)
    return node


def _verify(program: ast.Program, found: list[tuple[int, str]], out: str) -> None:
    """Refuse output that would change what the program means or lose a comment: that is a bug in `fmt`."""
    path = program.source.path
    try:
        again, kept = parse_with_comments(Source(path, out))
    except DeccError as e:
        raise InternalError(f"formatting {path} gave text that does not parse: {e.message}") from None
    if ast_shape(again) != ast_shape(program):
        raise InternalError(f"formatting {path} would change the program's meaning")
    lost = Counter(t.rstrip() for _, t in found) - Counter(t for _, t in kept)
    extra = Counter(t for _, t in kept) - Counter(t.rstrip() for _, t in found)
    if lost or extra:
        raise InternalError(f"formatting {path} would lose or alter comments: {sorted(lost | extra)}")
