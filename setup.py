"""The optional C extensions (the compiled trie walk, grammars/contextfree/trie_walk_c.c, the loop lookup,
loops_c.c, the Earley step, earley_c.c, a rule's NFA, tail_c.c, and the subset construction,
grammars/automata/subset_c.c); the rest of the metadata is in pyproject.toml. `optional=True`: without a C
compiler the install goes on and decc uses the pure-Python versions."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "decc.grammars.contextfree.trie_walk_c",
            sources=["grammars/contextfree/trie_walk_c.c"],
            depends=["grammars/contextfree/buffers.h", "grammars/contextfree/region_take.h"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "decc.grammars.contextfree.loops_c",
            sources=["grammars/contextfree/loops_c.c"],
            depends=["grammars/contextfree/buffers.h", "grammars/contextfree/region_take.h"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "decc.grammars.contextfree.earley_c",
            sources=["grammars/contextfree/earley_c.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "decc.grammars.contextfree.tail_c",
            sources=["grammars/contextfree/tail_c.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "decc.grammars.automata.subset_c",
            sources=["grammars/automata/subset_c.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
