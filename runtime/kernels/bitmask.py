"""Applying a packed token bitmask to logits: disallowed tokens get -inf before sampling.

Layout (the one XGrammar and llguidance use, so their matchers can fill our buffers): an int32 tensor
`[B, ceil(V/32)]` where bit `t % 32` of word `t // 32` set means token `t` is allowed. Bit 31 is the
int32 sign bit, so every path extracts bits with `(word >> bit) & 1`, which is right for arithmetic shifts.
When the logits are wider than the bitmask covers, the extra tokens are disallowed (a matcher that does not
know a token never allows it); bitmask words past the logits' width are ignored.

Three implementations of the same spec: a slow Python reference (tests only), vectorized torch (CPU), and
a Triton kernel (CUDA, or CPU tensors under `TRITON_INTERPRET=1`). Triton is imported lazily so that the
CPU path works where Triton is missing.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import torch

__all__ = [
    "allocate_token_bitmask",
    "apply_token_bitmask_inplace",
    "apply_token_bitmask_reference",
    "apply_token_bitmask_torch",
    "apply_token_bitmask_triton",
    "bitmask_words",
    "pack_bitmask",
    "unpack_bitmask",
]

_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def bitmask_words(vocab_size: int) -> int:
    """Number of int32 words that cover `vocab_size` tokens."""
    return (vocab_size + 31) // 32


def allocate_token_bitmask(batch: int, vocab_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """An int32 `[batch, ceil(V/32)]` bitmask with every token allowed (all bits set, i.e. -1)."""
    return torch.full((batch, bitmask_words(vocab_size)), -1, dtype=torch.int32, device=device)


@cache
def _bit_shifts(device: torch.device) -> torch.Tensor:
    return torch.arange(32, dtype=torch.int32, device=device)


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool `[..., vocab_size]`: True where the token is allowed (False past the bitmask's coverage)."""
    if bitmask.dtype != torch.int32:
        raise ValueError(f"bitmask must be int32, got {bitmask.dtype}")
    bits = (bitmask.unsqueeze(-1) >> _bit_shifts(bitmask.device)) & 1
    allowed = bits.flatten(-2).bool()
    covered = allowed.shape[-1]
    if covered >= vocab_size:
        return allowed[..., :vocab_size]
    pad = torch.zeros((*allowed.shape[:-1], vocab_size - covered), dtype=torch.bool, device=allowed.device)
    return torch.cat([allowed, pad], dim=-1)


def pack_bitmask(allowed: torch.Tensor) -> torch.Tensor:
    """The inverse of `unpack_bitmask`: bool `[..., V]` -> int32 `[..., ceil(V/32)]` (for matchers, tests)."""
    vocab = allowed.shape[-1]
    padded = torch.zeros(
        (*allowed.shape[:-1], bitmask_words(vocab) * 32), dtype=torch.int64, device=allowed.device
    )
    padded[..., :vocab] = allowed
    weights = torch.ones(32, dtype=torch.int64, device=allowed.device) << torch.arange(
        32, device=allowed.device
    )
    words = (padded.unflatten(-1, (-1, 32)) * weights).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def _as_2d(logits: torch.Tensor, bitmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views `[B, V]` / `[B, W]` of 1-D or 2-D inputs, with the shape checks every path shares."""
    if bitmask.dtype != torch.int32:
        raise ValueError(f"bitmask must be int32, got {bitmask.dtype}")
    if logits.dim() not in (1, 2) or bitmask.dim() != logits.dim():
        raise ValueError(
            f"expected logits [B, V] and bitmask [B, W] (or both 1-D), got "
            f"{tuple(logits.shape)} and {tuple(bitmask.shape)}"
        )
    if logits.dim() == 1:
        logits, bitmask = logits.unsqueeze(0), bitmask.unsqueeze(0)
    if logits.shape[0] != bitmask.shape[0]:
        raise ValueError(f"batch mismatch: logits {tuple(logits.shape)}, bitmask {tuple(bitmask.shape)}")
    if logits.device != bitmask.device:
        raise ValueError(f"logits on {logits.device} but bitmask on {bitmask.device}")
    return logits, bitmask


def apply_token_bitmask_reference(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """The spec as a plain loop, returning a masked copy. Slow: tests on small sizes only."""
    out = logits.clone()
    rows, masks = _as_2d(out, bitmask)
    n_words = masks.shape[1]
    for b in range(rows.shape[0]):
        words = [int(w) for w in masks[b].tolist()]
        for t in range(rows.shape[1]):
            word = t // 32
            allowed = word < n_words and (words[word] >> (t % 32)) & 1 == 1
            if not allowed:
                rows[b, t] = float("-inf")
    return out


def apply_token_bitmask_torch(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Vectorized torch: set disallowed logits to -inf in place; returns `logits`."""
    rows, masks = _as_2d(logits, bitmask)
    allowed = unpack_bitmask(masks, rows.shape[1])
    rows.masked_fill_(~allowed, float("-inf"))
    return logits


@cache
def _triton_kernel() -> Any:
    """Build the kernel on first use: Triton is imported only when a Triton path is actually taken."""
    import triton
    import triton.language as tl

    @triton.jit
    def _apply_bitmask_kernel(
        logits_ptr,
        bitmask_ptr,
        vocab_size,
        n_words,
        logits_stride,
        bitmask_stride,
        BLOCK: tl.constexpr,
    ):
        # One program per (row, vocab block). Logits are only written, never read: disallowed -> -inf.
        row = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        in_vocab = offs < vocab_size
        word_idx = offs // 32
        words = tl.load(
            bitmask_ptr + row * bitmask_stride + word_idx,
            mask=in_vocab & (word_idx < n_words),
            other=0,
        )
        allowed = ((words >> (offs % 32)) & 1) != 0
        neg_inf = tl.full([BLOCK], float("-inf"), logits_ptr.dtype.element_ty)
        tl.store(logits_ptr + row * logits_stride + offs, neg_inf, mask=in_vocab & ~allowed)

    return _apply_bitmask_kernel


def apply_token_bitmask_triton(
    logits: torch.Tensor, bitmask: torch.Tensor, block: int = 4096
) -> torch.Tensor:
    """Triton kernel over (rows x vocab blocks): set disallowed logits to -inf in place; returns `logits`."""
    rows, masks = _as_2d(logits, bitmask)
    if rows.dtype not in _TRITON_DTYPES:
        raise ValueError(f"logits dtype {rows.dtype} not supported (fp32, bf16, fp16)")
    if rows.stride(1) != 1 or masks.stride(1) != 1:
        raise ValueError("logits and bitmask rows must be contiguous")
    if not (rows.is_cuda or _interpreting()):
        raise ValueError("the Triton path needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")
    batch, vocab = rows.shape
    if batch == 0 or vocab == 0:
        return logits
    import triton

    grid = (batch, triton.cdiv(vocab, block))
    _triton_kernel()[grid](rows, masks, vocab, masks.shape[1], rows.stride(0), masks.stride(0), BLOCK=block)
    return logits


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def apply_token_bitmask_inplace(
    logits: torch.Tensor, bitmask: torch.Tensor, *, use_triton: bool | None = None
) -> torch.Tensor:
    """Mask `logits` in place. Triton on CUDA; torch on CPU, unless `use_triton=True` forces Triton
    (on CPU tensors that needs TRITON_INTERPRET=1, which is how the tests exercise the kernel)."""
    if use_triton is None:
        use_triton = logits.is_cuda
    if use_triton:
        return apply_token_bitmask_triton(logits, bitmask)
    return apply_token_bitmask_torch(logits, bitmask)
