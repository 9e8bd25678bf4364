"""Lark's own Earley parser as the oracle for decc's grammar constraints (the semantics decc implements:
`lexer="dynamic_complete"`), shared by the grammar tests."""

from __future__ import annotations

from lark import Lark


def lark_parser(text: str) -> Lark:
    return Lark(text, parser="earley", lexer="dynamic_complete")


def lark_accepts(parser: Lark, s: str) -> bool:
    try:
        parser.parse(s)
        return True
    except Exception:
        return False
