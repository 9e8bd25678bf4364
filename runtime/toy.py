"""A tiny, exactly enumerable language model for tests: a char-level tokenizer and a random 2-layer Llama.

It exists so search and sampling policies can be checked against distributions computed exactly: over a
3-letter alphabet every output up to 6 tokens can be enumerated and scored with a few batched forwards,
which a real vocabulary never allows. Nothing is downloaded; the weights come from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from .model import LanguageModel

__all__ = ["BOS_TEXT", "EOS_TEXT", "ToyTokenizer", "toy_language_model"]

BOS_TEXT = "<s>"
EOS_TEXT = "</s>"
_HIDDEN = 32
_HEAD_SCALE = 0.5  # head rows of norm ~0.5 * sharpness: logits spread ~sharpness / 2 around their mean
_EOS_TARGET = 0.2  # mean P(EOS) over short contexts: most values end within a few tokens


@dataclass(frozen=True)
class _AddedToken:
    """What `Vocabulary.from_tokenizer` reads from a Hugging Face added token."""

    content: str
    special: bool = True


class ToyTokenizer:
    """One token per character of `alphabet` (ids 0..k-1), then BOS "<s>" (k) and EOS "</s>" (k+1).

    Implements the slice of the Hugging Face tokenizer interface the runtime and
    `Vocabulary.from_tokenizer` use, so the toy model runs through the same code paths as a real one.
    """

    def __init__(self, alphabet: str = "abc") -> None:
        if not alphabet:
            raise ValueError("the alphabet must not be empty")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"the alphabet has repeated characters: {alphabet!r}")
        self.alphabet = alphabet
        k = len(alphabet)
        self.bos_token_id = k
        self.eos_token_id = k + 1
        self.pad_token_id = k + 1
        self.bos_token = BOS_TEXT
        self.eos_token = EOS_TEXT
        self.pad_token = EOS_TEXT
        self._ids = {ch: i for i, ch in enumerate(alphabet)}
        self.added_tokens_decoder = {k: _AddedToken(BOS_TEXT), k + 1: _AddedToken(EOS_TEXT)}

    def __repr__(self) -> str:
        return f"ToyTokenizer({self.alphabet!r})"

    def __len__(self) -> int:
        return len(self.alphabet) + 2

    @property
    def all_special_ids(self) -> list[int]:
        return [self.bos_token_id, self.eos_token_id]

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self._ids)
        vocab[BOS_TEXT] = self.bos_token_id
        vocab[EOS_TEXT] = self.eos_token_id
        return vocab

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """One id per character; BOS first when `add_special_tokens`. Unknown characters raise ValueError."""
        ids = [self.bos_token_id] if add_special_tokens else []
        for ch in text:
            i = self._ids.get(ch)
            if i is None:
                raise ValueError(f"character {ch!r} is not in the toy alphabet {self.alphabet!r}")
            ids.append(i)
        return ids

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The characters of `ids`; BOS and EOS decode to "" (skipped or not), as the runtime expects."""
        del skip_special_tokens  # special tokens never have text here
        k = len(self.alphabet)
        out = []
        for i in ids:
            i = int(i)
            if 0 <= i < k:
                out.append(self.alphabet[i])
            elif i not in (k, k + 1):
                raise ValueError(f"token id {i} outside the toy vocabulary (0..{k + 1})")
        return "".join(out)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        k = len(self.alphabet)
        return [self.alphabet[i] if i < k else (BOS_TEXT if i == k else EOS_TEXT) for i in map(int, ids)]

    def vocabulary(self) -> Any:
        """The `decc.grammars.Vocabulary` of this tokenizer (what `Vocabulary.from_tokenizer` also gives)."""
        from decc.grammars import Vocabulary

        table = tuple([ch.encode("utf-8") for ch in self.alphabet] + [None, None])
        special = frozenset(self.all_special_ids)  # EOS included, as for Hugging Face tokenizers
        return Vocabulary(table, len(table), frozenset([self.eos_token_id]), special)


@cache
def toy_language_model(alphabet: str = "abc", seed: int = 0, sharpness: float = 3.0) -> LanguageModel:
    """A tiny random `LlamaForCausalLM` over `ToyTokenizer(alphabet)`, the same weights for the same seed.

    Weights are drawn from a private `torch.Generator` (the global RNG is left as it was), with the
    embeddings and projections at unit scale so the next-token distribution depends on the context, and the
    output head scaled by `sharpness` so it is far from uniform. Cached per (alphabet, seed, sharpness):
    callers share the model and must not change it.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = ToyTokenizer(alphabet)
    vocab = len(tok)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # the constructors' own init draws from the global RNG
        model = LlamaForCausalLM(config)
        # A head with a bias: BOS gets a logit no context can overcome (probability exactly 0, as for a
        # real model that never emits it) and EOS an offset calibrated below.
        model.lm_head = torch.nn.Linear(_HIDDEN, vocab, bias=True)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() == 1:  # RMSNorm weights and the head's bias
                param.fill_(1.0 if name.endswith("norm.weight") else 0.0)
                continue
            std = 1.0 if name.endswith("embed_tokens.weight") else param.shape[1] ** -0.5
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * std)
        model.lm_head.weight.mul_(_HEAD_SCALE * sharpness)
        model.lm_head.bias[tok.bos_token_id] = -1e4
    model.to(dtype=torch.float32)
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums whatever the caller's thread count: the same weights
    try:
        with torch.no_grad():
            model.lm_head.bias[tok.eos_token_id] = _eos_bias(model, tok)
    finally:
        torch.set_num_threads(threads)
    return LanguageModel("toy", model, tok, frozenset([tok.eos_token_id]), vocab, torch.device("cpu"))


def _eos_bias(model: Any, tok: ToyTokenizer) -> float:
    """The EOS logit offset that makes P(EOS) average `_EOS_TARGET` after BOS + the strings of each length
    0..3 (fewer for big alphabets), each length weighted equally so the empty value is not left to chance."""
    import itertools

    import torch

    k = len(tok.alphabet)
    depth = 3
    while depth > 0 and k**depth > 2000:
        depth -= 1
    gaps = []  # per length: EOS logit minus the logsumexp of the text tokens' logits, per context
    for n in range(depth + 1):
        ids = torch.tensor([[tok.bos_token_id, *p] for p in itertools.product(range(k), repeat=n)])
        logits = model(input_ids=ids, use_cache=False).logits[:, -1].double()
        gaps.append(logits[:, tok.eos_token_id] - torch.logsumexp(logits[:, : tok.bos_token_id], dim=1))
    lo, hi = -40.0, 40.0
    for _ in range(60):  # the mean EOS probability increases with the offset
        mid = (lo + hi) / 2
        if sum(float(torch.sigmoid(gap + mid).mean()) for gap in gaps) / len(gaps) < _EOS_TARGET:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
