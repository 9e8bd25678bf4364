"""The optional C extension (the compiled trie walk, grammars/contextfree/trie_walk_c.c); the rest of the
metadata is in pyproject.toml. `optional=True`: without a C compiler the install goes on and decc uses the
pure-Python walk."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "decc.grammars.contextfree.trie_walk_c",
            sources=["grammars/contextfree/trie_walk_c.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
