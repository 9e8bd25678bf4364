"""Byte automata: DFAs, products, minimization, counters, and queries over them."""
