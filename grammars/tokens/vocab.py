"""A model's vocabulary as raw bytes per token id: what a constraint needs to know about a tokenizer.

Constraints work on bytes, not strings, because byte-level BPE tokens are often partial UTF-8 sequences
(half of an `é`); they keep their raw bytes here and the byte DFA decides what may follow them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


_BYTE_TO_CHAR = _bytes_to_unicode()
_CHAR_TO_LATIN1 = str.maketrans({ch: chr(b) for b, ch in _BYTE_TO_CHAR.items()})
_BYTELEVEL_PIECE = re.compile("[" + re.escape("".join(_BYTE_TO_CHAR.values())) + "]*")
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPIECE_SPACE = "\u2581"


@dataclass(frozen=True)
class Vocabulary:
    """Token id -> bytes (None: never produced as text), padded to the logits width `size`."""

    token_bytes: tuple[bytes | None, ...]
    size: int
    eos_ids: frozenset[int]
    special_ids: frozenset[int] = frozenset()
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size < len(self.token_bytes):
            raise ValueError(f"size {self.size} is smaller than the {len(self.token_bytes)} tokens")
        bad = [i for i in self.eos_ids | self.special_ids if not 0 <= i < self.size]
        if bad:
            raise ValueError(f"token ids {sorted(bad)} are outside the vocabulary (size {self.size})")
        # The token tuple is large: hash it once, since vocabularies are used as cache keys.
        object.__setattr__(self, "_hash", hash((self.token_bytes, self.size, self.eos_ids, self.special_ids)))

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            f"Vocabulary(tokens={len(self.token_bytes)}, size={self.size}, "
            f"eos_ids={sorted(self.eos_ids)}, special={len(self.special_ids)})"
        )

    @property
    def n_words(self) -> int:
        """int32 words in one allowed-token bitmask row."""
        return (self.size + 31) // 32

    @cached_property
    def text_ids(self) -> np.ndarray:
        """Ids of tokens that can appear as text: non-empty bytes, neither special nor EOS."""
        skip = self.special_ids | self.eos_ids
        ids = [i for i, b in enumerate(self.token_bytes) if b and i not in skip]
        return np.array(ids, dtype=np.int64)

    @cached_property
    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, lengths, bytes zero-padded to [n, max_len], offsets) of the text tokens, by first byte.

        Tokens starting with byte b are rows offsets[b]:offsets[b+1]; the layout lets the token automaton
        walk every token through a DFA at once with numpy, starting only the ones whose first byte lives.
        """
        ids = self.text_ids
        tokens = [self.token_bytes[i] or b"" for i in ids.tolist()]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        width = int(lengths.max()) if len(lengths) else 1
        padded = np.zeros((len(tokens), width), dtype=np.uint8)
        if tokens:
            flat = np.frombuffer(b"".join(tokens), dtype=np.uint8)
            rows = np.repeat(np.arange(len(tokens)), lengths)
            starts = np.cumsum(lengths) - lengths
            cols = np.arange(len(flat)) - np.repeat(starts, lengths)
            padded[rows, cols] = flat
        order = np.lexsort((lengths, padded[:, 0]))
        ids, lengths, padded = ids[order], lengths[order], np.ascontiguousarray(padded[order])
        offsets = np.zeros(257, dtype=np.int64)
        np.cumsum(np.bincount(padded[:, 0], minlength=256), out=offsets[1:])
        for a in (ids, lengths, padded, offsets):
            a.setflags(write=False)
        return ids, lengths, padded, offsets

    @cached_property
    def longest_token(self) -> int:
        """The most bytes a text token has (at least 1): once per vocabulary, not once per constraint."""
        return int(self.packed[1].max(initial=1))

    @cached_property
    def flat_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """(every text token's bytes concatenated, each token's start) in `packed` order: per-token
        reductions over bytes (`np.add.reduceat`) without the padding of `packed`."""
        _, lengths, padded, _ = self.packed
        flat = padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]]
        starts = np.cumsum(lengths) - lengths
        for a in (flat, starts):
            a.setflags(write=False)
        return flat, starts

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of everything a compiled constraint depends on (token bytes, size, EOS and special ids):
        the vocabulary's part of the on-disk constraint cache key (disk_cache.py)."""
        h = hashlib.sha256(repr((self.size, sorted(self.eos_ids), sorted(self.special_ids))).encode())
        lengths = np.array([-1 if b is None else len(b) for b in self.token_bytes], dtype="<i8")
        h.update(lengths.tobytes())
        h.update(b"".join(b for b in self.token_bytes if b))
        return h.hexdigest()

    @cached_property
    def loop_cache(self) -> dict:
        """Per-vocabulary cache of token_loops.Loop by loop byte set (shared by every constraint)."""
        return {}

    @classmethod
    def from_token_bytes(
        cls,
        tokens: Sequence[bytes | None],
        eos_id: int | Iterable[int] | None = None,
        size: int | None = None,
        special_ids: Iterable[int] = (),
    ) -> Vocabulary:
        """A vocabulary from explicit bytes (handy in tests); EOS and special ids are never text."""
        eos = frozenset() if eos_id is None else frozenset([eos_id] if isinstance(eos_id, int) else eos_id)
        special = frozenset(special_ids)
        table = tuple(None if i in eos or i in special else b for i, b in enumerate(tokens))
        return cls(table, len(table) if size is None else size, eos, special)

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, size: int | None = None, eos_ids: Iterable[int] | None = None
    ) -> Vocabulary:
        """The vocabulary of a Hugging Face tokenizer (byte-level BPE or SentencePiece), cached per tokenizer."""
        eos_key = None if eos_ids is None else frozenset(eos_ids)
        key = (id(tokenizer), size, eos_key)
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is tokenizer:
            return hit[1]
        vocab = _from_tokenizer(tokenizer, size, eos_key)
        _CACHE[key] = (tokenizer, vocab)
        return vocab


_ANCHORS = ("\n", "«", ":", "x")


def encode_in_context(tokenizer: Any, text: str) -> list[int]:
    """The tokens of `text` as a model writes it after other text: what a constraint sees and a canonical
    tokenization must be. SentencePiece tokenizers (Llama-2, Phi-3) prepend a space to whatever they
    encode alone (`▁hello` for `hello`); mid-context that space is not there, so encode `text` after an
    anchor and keep what follows the anchor's own tokens. Other tokenizers encode `text` as is."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if not text or not adds_prefix_space(tokenizer):
        return ids
    for anchor in _ANCHORS:
        head = list(tokenizer.encode(anchor, add_special_tokens=False))
        both = list(tokenizer.encode(anchor + text, add_special_tokens=False))
        if both[: len(head)] == head:
            return both[len(head) :]
    return ids


def decode_in_context(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text of `ids` as they read after other text: the inverse of `encode_in_context`. SentencePiece
    decoders drop the space of a text's first token (`▁the` alone decodes to `the`); a generated value is
    never a text's start, so decode it after an anchor token and keep what follows the anchor's text."""
    if not ids or not adds_prefix_space(tokenizer):
        return tokenizer.decode(ids) if ids else ""
    key = id(tokenizer)
    hit = _DECODE_ANCHOR.get(key)
    if hit is None or hit[0] is not tokenizer:
        anchor = list(tokenizer.encode("a", add_special_tokens=False))[-1:]
        hit = _DECODE_ANCHOR[key] = (tokenizer, anchor, tokenizer.decode(anchor))
    _, anchor, head = hit
    both = tokenizer.decode([*anchor, *ids])
    return both[len(head) :] if both.startswith(head) else tokenizer.decode(ids)


def adds_prefix_space(tokenizer: Any) -> bool:
    """Whether encoding a text alone starts it with a SentencePiece space it does not have."""
    key = id(tokenizer)
    hit = _PREFIX_SPACE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    ids = tokenizer.encode("a", add_special_tokens=False)
    to_pieces = getattr(tokenizer, "convert_ids_to_tokens", None)
    pieces = to_pieces(ids) if ids and to_pieces else []
    adds = bool(pieces) and str(pieces[0]).startswith(_SPIECE_SPACE)
    _PREFIX_SPACE[key] = (tokenizer, adds)
    return adds


_PREFIX_SPACE: dict[int, tuple[Any, bool]] = {}
_DECODE_ANCHOR: dict[int, tuple[Any, list[int], str]] = {}
# Keyed by id(); the stored tokenizer reference keeps the id from being reused while the entry lives.
_CACHE: dict[tuple[int, int | None, frozenset[int] | None], tuple[Any, Vocabulary]] = {}


def _from_tokenizer(tokenizer: Any, size: int | None, eos_ids: frozenset[int] | None) -> Vocabulary:
    pieces: dict[str, int] = tokenizer.get_vocab()
    added: dict[int, Any] = dict(getattr(tokenizer, "added_tokens_decoder", None) or {})
    n = max([len(tokenizer), *(i + 1 for i in pieces.values()), *(i + 1 for i in added)])
    if size is not None and size < n:
        raise ValueError(f"size {size} is smaller than the tokenizer's {n} token ids")
    if eos_ids is None:
        eos_id = getattr(tokenizer, "eos_token_id", None)
        eos_ids = frozenset() if eos_id is None else frozenset([eos_id])
    decode = _piece_decoder(tokenizer, [p for p, i in pieces.items() if i not in added])
    special = set(getattr(tokenizer, "all_special_ids", None) or ())
    # Added tokens are control tokens, special or not: GGUF conversions mark chat markers (`<|EOT|>`), `</s>`
    # and `[PAD151646]` fillers non-special, and a mask that let them into a JSON string would end a turn
    # mid-value. Only whitespace runs (code tokenizers add those) are text: encoding ordinary text uses them.
    special |= {i for i, tok in added.items() if not _added_text(tok)}
    table: list[bytes | None] = [None] * n
    for piece, i in pieces.items():
        if i in special or i in eos_ids:
            continue
        table[i] = decode(getattr(added[i], "content", piece) if i in added else piece)
    for i, tok in added.items():  # an added token that get_vocab() does not list
        if table[i] is None and i not in special and i not in eos_ids:
            table[i] = decode(tok.content)
    return Vocabulary(tuple(table), n if size is None else size, eos_ids, frozenset(special))


def _added_text(token: Any) -> bool:
    """Whether an added token is text: a non-special run of whitespace."""
    content = getattr(token, "content", "")
    return not getattr(token, "special", False) and bool(content) and content.isspace()


def _piece_decoder(tokenizer: Any, pieces: list[str]) -> Any:
    """How to turn one vocabulary piece into bytes, judged from the decoder type or else the pieces."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = type(getattr(backend, "decoder", None)).__name__
    if decoder == "ByteLevel":
        return _bytelevel_bytes
    if decoder == "Metaspace":
        return _sentencepiece_bytes
    sample = pieces[:: max(1, len(pieces) // 5000)]
    if any(_BYTE_FALLBACK.fullmatch(p) for p in pieces) or (
        sum(_SPIECE_SPACE in p for p in sample) > len(sample) // 100
    ):
        return _sentencepiece_bytes
    if any(("\u0120" in p or "\u010a" in p) for p in sample) and all(
        _BYTELEVEL_PIECE.fullmatch(p) for p in sample
    ):
        return _bytelevel_bytes
    return _text_bytes


def _bytelevel_bytes(piece: str) -> bytes:
    if _BYTELEVEL_PIECE.fullmatch(piece):
        return piece.translate(_CHAR_TO_LATIN1).encode("latin-1")
    return piece.encode("utf-8")


def _sentencepiece_bytes(piece: str) -> bytes:
    m = _BYTE_FALLBACK.fullmatch(piece)
    if m:
        return bytes([int(m.group(1), 16)])
    return piece.replace(_SPIECE_SPACE, " ").encode("utf-8")


def _text_bytes(piece: str) -> bytes:
    return piece.encode("utf-8")
