"""Context-free grammars: Lark text to rules, RTNs, the Earley recognizer and its token masks."""
