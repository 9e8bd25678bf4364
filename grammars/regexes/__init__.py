"""Regex syntax: the AST, the parser (Python and ECMA dialects), Thompson NFAs, UTF-8 ranges."""
