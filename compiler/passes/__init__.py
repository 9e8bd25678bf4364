"""Compiler passes: one per file, each a pure function `Module -> Module`."""
