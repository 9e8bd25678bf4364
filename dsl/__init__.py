"""The `.dec` front end: source text → AST with spans."""

from decc.dsl.parser import parse, parse_file, read_source

__all__ = ["parse", "parse_file", "read_source"]
