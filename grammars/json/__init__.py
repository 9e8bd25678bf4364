"""JSON Schema to grammars: structure, strings, numbers, formats and keywords."""
