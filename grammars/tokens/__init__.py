"""Byte automata lifted to a vocabulary: token automata, matchers, budgets, healing."""
