"""Source text → AST. Lark parses; this module turns its tree (which never leaves `dsl`) into frozen AST nodes
and its exceptions into positioned `DeccError`s."""

from __future__ import annotations

import math
import re
import threading
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from decc.devices import device_error, dtype_error
from decc.dsl import ast
from decc.dsl.strings import decode_string, parse_template
from decc.errors import DeccError, Source, Span, unknown

_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "RAW_STRING": "a string",
    "LONG_STRING": "a string",
    "RAW_LONG_STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "$END": "end of file",
}


# Comments never reach the AST (the grammar ignores them); the lexer hands each one to this sink, so a `#`
# inside any kind of string literal is never mistaken for one. `parse_with_comments` returns them.
_comment_sink = threading.local()


def _collect_comment(tok: Token) -> Token:
    _comment_sink.found.append((tok.start_pos, str(tok)))
    return tok


@cache
def lark_parser() -> Lark:
    """The .dec grammar's LALR parser, built once (its terminals are tested against their first forms)."""
    grammar = (Path(__file__).parent / "dec.lark").read_text()
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _collect_comment},
    )


def parse_file(path: str | Path) -> ast.Program:
    """Read and parse a `.dec` file; unreadable or non-UTF-8 files are user errors too."""
    return parse(read_source(path))


MAX_SOURCE_BYTES = 8 << 20  # a program this long is no program; reading on would only exhaust memory


def read_source(path: str | Path) -> Source:
    """The file's text: UTF-8 (a BOM is dropped), at most MAX_SOURCE_BYTES, lone CR line ends read as LF."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        raise DeccError(f"cannot read '{path}': {e.strerror or e}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise DeccError(
            f"'{path}' is too large: more than {MAX_SOURCE_BYTES >> 20} MiB (a .dec file is a program)",
            hints=["keep large data in files the program names, e.g. json(file=...)"],
        )
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):  # a UTF-32 byte-order mark
        raise DeccError(
            f"'{path}' is encoded as UTF-32: .dec files must be UTF-8",
            hints=[f"convert it, e.g. iconv -f UTF-32 -t UTF-8 '{path}' > fixed.dec"],
        )
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a UTF-16 byte-order mark, either endianness
        raise DeccError(
            f"'{path}' is encoded as UTF-16: .dec files must be UTF-8",
            hints=[f"convert it, e.g. iconv -f UTF-16 -t UTF-8 '{path}' > fixed.dec"],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[: e.start].decode("utf-8", errors="replace")
        src = Source(str(path), prefix + "\ufffd" + data[e.end :].decode("utf-8", errors="replace"))
        raise DeccError(
            f"invalid UTF-8 byte 0x{data[e.start]:02x}: .dec files must be UTF-8",
            Span.of(src, len(prefix), len(prefix) + 1),
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    # Old Mac line ends: a lone CR ends a line (one character for one, so every offset stays the same).
    return Source(str(path), _LONE_CR.sub("\n", text))


_LONE_CR = re.compile(r"\r(?!\n)")


def parse(source: Source | str, path: str = "<string>") -> ast.Program:
    return parse_with_comments(source, path)[0]


def parse_with_comments(
    source: Source | str, path: str = "<string>"
) -> tuple[ast.Program, list[tuple[int, str]]]:
    """The AST and, from the same parse, the `# ...` comments as (source offset, text) in order: the AST
    drops them, a formatter must not."""
    if isinstance(source, str):
        source = Source(path, source)
    if "\0" in source.text:
        at = source.text.index("\0")
        raise DeccError("NUL character in source: is this a binary file?", Span.of(source, at, at + 1))
    _comment_sink.found = []
    try:
        tree = lark_parser().parse(source.text)
    except UnexpectedInput as e:
        raise _syntax_error(source, e) from None
    finally:
        found, _comment_sink.found = _comment_sink.found, []
    _check_depth(source, tree)
    return _Builder(source).program(tree), found


def comments(source: Source | str, path: str = "<string>") -> list[tuple[int, str]]:
    """The `# ...` comments of a program as (source offset, text), in order."""
    return parse_with_comments(source, path)[1]


MAX_DEPTH = 200


def _check_depth(source: Source, tree: Tree) -> None:
    """Refuse absurd nesting (`[[[[...`) up front: every later stage walks the tree recursively."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            start = node.meta.start_pos if not getattr(node.meta, "empty", True) else 0
            raise DeccError(
                f"nested more than {MAX_DEPTH} levels deep",
                Span.of(source, start, start + 1),
                hints=["flatten it, or name the inner parts with 'let'"],
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok.value}'" if len(tok.value) <= 30 else f"'{tok.value[:27]}...'"


def _expected(names: set[str]) -> str:
    shown = sorted({_TERMINAL_NAMES.get(n, f"'{n.lower()}'" if n.isupper() else n) for n in names})
    if len(shown) > 6:
        return ""
    return " or ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else shown[0]


def _syntax_error(source: Source, e: UnexpectedInput) -> DeccError:
    text = source.text
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        ch = text[pos]
        if ch == '"' or text.startswith('r"', pos):
            return DeccError(
                "unterminated string",
                Span.of(source, pos, pos + 1),
                hints=['close it with \'"\' on the same line, or use """...""" for text over several lines'],
            )
        return DeccError(f"unexpected character {ch!r}", Span.of(source, pos, pos + 1))
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            pos = len(text.rstrip())
            span = Span.of(source, pos, pos)
            msg = "unexpected end of file"
        else:
            span = Span.of(source, tok.start_pos, tok.end_pos)
            msg = f"unexpected {_describe(tok)}"
        exp = _expected(set(e.expected))
        hints = _hints(tok, set(e.expected))
        if tok.type == "COLON" and text[: tok.start_pos].endswith("cuda"):  # `device: cuda:1`
            hints = ['a device with an index is written as a string: device: "cuda:1"']
        return DeccError(f"{msg}; expected {exp}" if exp else msg, span, hints=hints)
    if isinstance(e, UnexpectedEOF):
        pos = len(text.rstrip())
        return DeccError("unexpected end of file", Span.of(source, pos, pos))
    return DeccError(str(e))


MODEL_OPTIONS = {"device": "cuda", "dtype": "bfloat16"}  # each with an example value


def _unique(options: tuple[ast.Option, ...]) -> None:
    seen: dict[str, ast.Option] = {}
    for opt in options:
        first = seen.setdefault(opt.key.value, opt)
        if first is not opt:
            raise DeccError(
                f"model option '{opt.key.value}' given twice",
                opt.span,
                notes=[f"first given at {first.span}"],
            )


def _hints(tok: Token, expected: set[str]) -> list[str]:
    if tok.type == "NAME" and "COLON" in expected:
        return ["options are written 'key: value'"]
    if tok.type == "COLON" and "LBRACE" in expected:
        return ["write 'gen NAME { key: value }'"]
    if tok.type == "NAME" and tok.value in {"gen", "input", "model"} and "RBRACE" in expected:
        return ["is a '}' missing before this?"]
    return []


class _Builder:
    """Lark tree → AST, keeping spans."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def span(self, node: Tree | Token) -> Span:
        if isinstance(node, Token):
            return Span.of(self.source, node.start_pos, node.end_pos)
        meta = node.meta
        if getattr(meta, "empty", True):
            return Span.of(self.source, 0, 0)
        return Span.of(self.source, meta.start_pos, meta.end_pos)

    def name(self, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self.span(tok))

    def program(self, tree: Tree) -> ast.Program:
        items = tuple(self.item(c) for c in tree.children)
        return ast.Program(items, Span.of(self.source, 0, len(self.source.text)), self.source)

    def item(self, node: Tree) -> ast.Item:
        kind = node.data
        if kind == "model_decl":
            arg, *opts = node.children
            spec = self.string(arg).value if isinstance(arg, Tree) else str(arg)
            at = self.span(arg)
            options = tuple(self.model_option(o) for o in opts if o is not None)
            _unique(options)
            return ast.ModelDecl(spec, self.span(node), options, (at.start, at.end))
        if kind == "input_decl":
            name, typ, default = node.children
            return ast.InputDecl(
                self.name(name),
                self.name(typ) if typ is not None else None,
                self.expr(default) if default is not None else None,
                self.span(node),
            )
        if kind == "turn":
            role, *body = node.children
            role_tok = role.children[0]
            items = tuple(self.item(b) if b.data != "string" else self.text(b) for b in body)
            return ast.Turn(self.name(role_tok), items, self.span(node))  # type: ignore[arg-type]
        if kind == "import_all":
            (path,) = node.children
            return ast.Import(self.string(path), None, self.span(node))
        if kind == "import_some":
            path, *names = node.children
            imported = tuple(
                ast.ImportName(
                    self.name(n.children[0]),
                    self.name(n.children[1]) if n.children[1] else None,
                    self.span(n),
                )
                for n in names
                if n is not None
            )
            return ast.Import(self.string(path), imported, self.span(node))
        if kind == "let_decl":
            name, value = node.children
            return ast.Let(self.name(name), self.expr(value), self.span(node))
        if kind == "if_stmt":
            parts = [c for c in node.children if c is not None]
            otherwise = None
            else_span = None
            if parts and parts[-1].data == "else_block":
                block = parts.pop().children[0]
                otherwise = self.block(block)
                else_span = self.span(block)
            cases = tuple(
                ast.Case(self.cond(c), self.block(b), Span.of(self.source, c.meta.start_pos, b.meta.end_pos))
                for c, b in zip(parts[::2], parts[1::2], strict=True)
            )
            return ast.If(cases, otherwise, self.span(node), else_span)
        if kind == "text_stmt":
            return self.text(node.children[0])
        if kind == "gen_stmt":
            name, *opts = node.children
            options = tuple(self.option(o) for o in opts if o is not None)
            return ast.Gen(self.name(name), options, self.span(node))
        raise AssertionError(f"unknown item {kind}")

    def block(self, node: Tree) -> tuple[ast.Stmt, ...]:
        return tuple(self.text(b) if b.data == "string" else self.item(b) for b in node.children)  # type: ignore[misc]

    def cond(self, node: Tree) -> ast.Cond:
        var, op, value = node.children
        return ast.Cond(self.name(var), " ".join(str(op).split()), self.expr(value), self.span(node))

    def text(self, node: Tree) -> ast.Text:
        lit = self.string(node)
        return ast.Text(parse_template(lit), lit.span)

    def string(self, node: Tree) -> ast.StrLit:
        (tok,) = node.children
        return decode_string(str(tok), tok.start_pos, self.span(tok))

    def model_option(self, node: Tree) -> ast.Option:
        """`device: D` or `dtype: T` in a model declaration, D and T a name or a string spelled right."""
        opt = self.option(node)
        key, value = opt.key.value, opt.value
        if key not in MODEL_OPTIONS:
            raise unknown("model option", key, opt.key.span, MODEL_OPTIONS)
        if not isinstance(value, (ast.StrLit, ast.NameRef)):
            raise DeccError(f"{key} is a name or a string, such as {key}: {MODEL_OPTIONS[key]}", value.span)
        text = value.value if isinstance(value, ast.StrLit) else value.name
        err = (device_error if key == "device" else dtype_error)(text, value.span)
        if err is not None:
            raise err
        return opt

    def option(self, node: Tree) -> ast.Option:
        key, value = node.children
        return ast.Option(self.name(key), self.expr(value), self.span(node))

    def expr(self, node: Tree | Token) -> ast.Expr:
        kind = node.data
        span = self.span(node)
        if kind == "string":
            return self.string(node)
        if kind == "number":
            text = str(node.children[0])
            try:
                value: int | float = int(text)
            except ValueError:
                value = float(text)
                if not math.isfinite(value):
                    raise DeccError(
                        f"number {text} is out of range (not a finite float)",
                        span,
                        hints=["floats reach about 1.8e308"],
                    ) from None
            return ast.NumLit(value, span)
        if kind in ("true", "false"):
            return ast.BoolLit(kind == "true", span)
        if kind == "name_ref":
            return ast.NameRef(str(node.children[0]), span)
        if kind == "list":
            return ast.ListLit(tuple(self.expr(c) for c in node.children if c is not None), span)
        if kind == "conj":
            return ast.And(tuple(self.expr(c) for c in node.children), span)
        if kind == "call":
            func, *args = node.children
            pos: list[ast.Expr] = []
            kws: list[ast.KwArg] = []
            for a in args:
                if a is None:
                    continue
                if a.data == "kwarg":
                    k, v = a.children
                    kws.append(ast.KwArg(self.name(k), self.expr(v), self.span(a)))
                elif kws:
                    raise DeccError("positional argument after a keyword argument", self.span(a))
                else:
                    pos.append(self.expr(a))
            return ast.Call(self.name(func), tuple(pos), tuple(kws), span)
        raise AssertionError(f"unknown expression {kind}")
