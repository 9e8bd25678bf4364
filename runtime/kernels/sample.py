"""Fused mask -> temperature -> top-k -> top-p -> min-p -> sample, one row per program, without a sort.

Why one fused operation: the unfused path writes the masked logits, sorts every row for top-k/top-p, takes
a softmax and draws with torch's generator, each a separate launch over `[B, V]`. Here one Triton program
per row reads its logits a few times from cache and writes four numbers. Every filter keeps an upper set
of the tempered logits `x`, so the whole filter chain is one threshold `tau` and the kept set is
`{t allowed : x_t >= tau}`; the thresholds are found by bisection on the value (count of `x >= pivot` for
top-k, mass of `x >= pivot` for top-p) with pivots snapped to values present in the row, so the search
ends on the exact sort-based threshold (FlashInfer's sorting-free samplers use the same pivot idea for
rejection sampling; we bisect to the exact value instead, then draw once).

The draw is Gumbel-max: `argmax_t (x_t + g_t)` over the kept set is an exact sample from
`softmax(x)` restricted to it. `g_t = -log(-log(u_t))` where `u_t` is a counter-based hash of
`(seed, step, t)` made of 32-bit integer ops, identical in torch and Triton. No generator state: a row's
draw depends only on its logits, its parameters and its `(seed, step)`, never on the batch order, the row
position or the block size, so beam search / SMC can reorder, fork or drop rows without changing draws.

Outputs per row: the token, its log-probability under the final (masked, tempered, filtered,
renormalized) distribution, `log_mass` = logsumexp(x over allowed) - logsumexp(x over all), the log of
the probability the mask leaves under the unmasked tempered model (what SMC importance weights need), and
`empty` where the mask leaves nothing (then token -1, logprob and log_mass -inf).

Three entry points, as in `bitmask.py`: `fused_sample_reference` (vectorized torch with a sort: the
spec), `fused_sample_triton` (the kernel; CUDA, or CPU tensors under `TRITON_INTERPRET=1`) and the
dispatcher `fused_sample`. Triton is imported lazily.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, NamedTuple

import torch

from decc.runtime.kernels.bitmask import unpack_bitmask

__all__ = [
    "FusedSample",
    "fused_filter_reference",
    "fused_sample",
    "fused_sample_reference",
    "fused_sample_triton",
    "gumbel_noise",
]

_NEG_INF = float("-inf")
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MASK32 = 0xFFFFFFFF
# Odd constants of the counter hash (golden ratio, murmur3 / xxhash primes). Changing any changes draws.
_C_SEED_LO, _C_SEED_HI, _C_STEP_LO, _C_STEP_HI, _C_TOKEN = (
    0x9E3779B9,
    0x7F4A7C15,
    0x85EBCA77,
    0xC2B2AE3D,
    0x27D4EB2F,
)
_MAX_SEARCH = 64  # bisection passes per threshold; the pivot rule below needs at most 24 + 33


class FusedSample(NamedTuple):
    tokens: torch.Tensor  # [B] int64, -1 where empty
    logprob: torch.Tensor  # [B] float32, log p(token) under the final sampling distribution (0 if greedy)
    log_mass: torch.Tensor  # [B] float32, logsumexp(x allowed) - logsumexp(x all)
    empty: torch.Tensor  # [B] bool, True where no allowed token has a finite logit


# ---------------------------------------------------------------------------------------------------------
# The counter-based uniforms (torch side). Every value is a uint32 held in an int64 tensor.


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """`a * c mod 2**32` without int64 overflow: split `c` into 16-bit halves."""
    lo = a * (c & 0xFFFF)
    hi = ((a * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _MASK32


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finalizer: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def row_keys(seed: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two uint32 keys per row from the 64-bit seed and step (int64 tensors, taken as their bit patterns)."""
    seed, step = seed.to(torch.int64), step.to(torch.int64)
    h = _fmix32((seed + _C_SEED_LO) & _MASK32)
    h = _fmix32(h ^ (((seed >> 32) + _C_SEED_HI) & _MASK32))
    h = _fmix32(h ^ ((step + _C_STEP_LO) & _MASK32))
    h = _fmix32(h ^ (((step >> 32) + _C_STEP_HI) & _MASK32))
    return h, _fmix32((h + _C_TOKEN) & _MASK32)


def gumbel_noise(seed: torch.Tensor, step: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """float32 `[B, vocab_size]`: `g[b, t] = -log(-log(u))`, `u = (k + 1/2) / 2**23` with `k` the top 23
    bits of `fmix32(fmix32(h1 ^ t) ^ h2)`, `(h1, h2)` the row keys of `(seed[b], step[b])`. `u` lies in
    `[2**-24, 1 - 2**-24]`, exact in float32, so `g` is finite (within about [-2.8, 17.3])."""
    h1, h2 = row_keys(seed, step)
    t = torch.arange(vocab_size, dtype=torch.int64, device=seed.device)
    r = _fmix32(_fmix32(h1[:, None] ^ t) ^ h2[:, None])
    u = ((r >> 9).to(torch.float32) + 0.5) * (1.0 / 2**23)
    return -torch.log(-torch.log(u))


# ---------------------------------------------------------------------------------------------------------
# Argument handling shared by every path.


def _row_param(value: Any, batch: int, dtype: torch.dtype, device: torch.device, name: str) -> torch.Tensor:
    """A contiguous `[batch]` tensor from a number or a tensor broadcastable to `[batch]`."""
    t = torch.as_tensor(value, device=device)
    if t.dim() > 1:
        raise ValueError(f"{name} must be a number or a [B] tensor, got shape {tuple(t.shape)}")
    if t.is_floating_point() and not dtype.is_floating_point:
        raise ValueError(f"{name} must be an integer, got {t.dtype}")
    return t.to(dtype).expand(batch).contiguous()


class _Args(NamedTuple):
    logits: torch.Tensor
    bitmask: torch.Tensor | None
    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    seed: torch.Tensor
    step: torch.Tensor


def check_sample_args(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
) -> _Args:
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"expected logits [B, V] with V >= 1, got shape {tuple(logits.shape)}")
    if logits.dtype not in _TRITON_DTYPES:
        raise ValueError(f"logits dtype {logits.dtype} not supported (fp32, bf16, fp16)")
    batch, device = logits.shape[0], logits.device
    if bitmask is not None:
        if bitmask.dtype != torch.int32:
            raise ValueError(f"bitmask must be int32, got {bitmask.dtype}")
        if bitmask.dim() != 2 or bitmask.shape[0] != batch:
            raise ValueError(f"expected bitmask [{batch}, W], got shape {tuple(bitmask.shape)}")
        if bitmask.device != device:
            raise ValueError(f"logits on {device} but bitmask on {bitmask.device}")
    return _Args(
        logits,
        bitmask,
        _row_param(temperature, batch, torch.float32, device, "temperature"),
        _row_param(top_k, batch, torch.int32, device, "top_k"),
        _row_param(top_p, batch, torch.float32, device, "top_p"),
        _row_param(min_p, batch, torch.float32, device, "min_p"),
        _row_param(seed, batch, torch.int64, device, "seed"),
        _row_param(step, batch, torch.int64, device, "step"),
    )


def min_p_offset(min_p: torch.Tensor) -> torch.Tensor:
    """The min-p threshold offset, `log(min_p)` in float32 (-inf when off; min_p >= 1 keeps only the
    maximal tokens), shared by both paths so that `M + log(min_p)` rounds identically in each."""
    return torch.log(min_p.clamp(0.0, 1.0))


# ---------------------------------------------------------------------------------------------------------
# The reference (the spec).


def _reference_parts(a: _Args) -> dict[str, torch.Tensor]:
    """Everything the reference computes, vectorized over rows; see `fused_sample_reference`."""
    logits = a.logits
    batch, vocab = logits.shape
    device = logits.device
    if a.bitmask is None:
        allowed = torch.ones((batch, vocab), dtype=torch.bool, device=device)
    else:
        allowed = unpack_bitmask(a.bitmask, vocab)
    greedy = a.temperature <= 0
    temp = torch.where(greedy, torch.ones_like(a.temperature), a.temperature)
    x_all = logits.float() / temp[:, None]
    x = x_all.masked_fill(~allowed, _NEG_INF)
    live = x > _NEG_INF
    n_live = live.sum(1)
    empty = n_live == 0
    m = x.max(1).values
    m_safe = torch.where(empty, torch.zeros_like(m), m)
    w = torch.exp(x - m_safe[:, None])  # float32 weights, exp(-inf) = 0 outside the live set
    s = w.double().sum(1)

    sx, _ = torch.sort(x, dim=1, descending=True)
    neg_inf = torch.full((batch,), _NEG_INF, device=device)
    # top-k: the k-th largest live value (ties at it all kept)
    k_on = ~greedy & (a.top_k > 0) & (a.top_k.long() < n_live)
    k_idx = (a.top_k.long() - 1).clamp(0, vocab - 1)
    v_k = torch.where(k_on, sx.gather(1, k_idx[:, None])[:, 0], neg_inf)
    # top-p over the top-k set: the value where the sorted cumulative mass first reaches p * mass
    sw = torch.where(sx >= v_k[:, None], torch.exp(sx - m_safe[:, None]), 0.0).double()
    cs = torch.cumsum(sw, dim=1)
    n_k = ((sx >= v_k[:, None]) & (sx > _NEG_INF)).sum(1)
    target = a.top_p.double() * cs[:, -1]
    p_idx = torch.minimum((cs < target[:, None]).sum(1), (n_k - 1).clamp(min=0))
    p_on = ~greedy & (a.top_p < 1)
    v_p = torch.where(p_on, sx.gather(1, p_idx[:, None])[:, 0], neg_inf)
    # min-p: exp(x - M) >= min_p, i.e. x >= M + log(min_p)
    v_m = torch.where(~greedy, m + min_p_offset(a.min_p), neg_inf)
    tau = torch.where(greedy, m, torch.maximum(torch.maximum(v_k, v_p), v_m))
    kept = live & (x >= tau[:, None])
    return {
        "x": x,
        "x_all": x_all,
        "kept": kept,
        "greedy": greedy,
        "empty": empty,
        "m": m,
        "m_safe": m_safe,
        "w": w,
        "s": s,
    }


def fused_filter_reference(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any = 1.0,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
) -> torch.Tensor:
    """float32 `[B, V]`: the tempered logits `x` where the reference keeps the token, -inf elsewhere (the
    row the draw is made from; greedy rows keep their maximal tokens). Comparable with
    `runtime.sampling.filter_logits` of the masked row."""
    a = check_sample_args(logits, bitmask, temperature, top_k, top_p, min_p, 0, 0)
    parts = _reference_parts(a)
    return parts["x"].masked_fill(~parts["kept"], _NEG_INF)


def fused_sample_reference(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
) -> FusedSample:
    """The spec, vectorized torch (sorts each row). Per row `b`, as a loop:

        allowed[t] = bitmask bit t (tokens past the bitmask: no; bitmask=None: all)
        greedy = temperature <= 0;  T = 1 if greedy else temperature
        x_all[t] = float32(logits[t]) / T;  x[t] = x_all[t] if allowed[t] else -inf
        live = {t : x[t] > -inf}; if live is empty: return (-1, -inf, -inf, empty=True)
        M = max x;  log_mass = logsumexp(x) - logsumexp(x_all)
        if greedy: tau = M                             (filters ignored)
        else:
          v_k = k-th largest x (with multiplicity) if 0 < top_k < |live| else -inf
          v_p = if top_p < 1: sort the live x >= v_k descending, w = exp(x - M); the value at the first
                position where the running sum of w reaches top_p * sum(w); else -inf
          v_m = M + log(min_p)   (-inf when min_p <= 0: keeps exp(x - M) >= min_p)
          tau = max(v_k, v_p, v_m)
        kept = {t in live : x[t] >= tau}               (never empty: the maximum is kept)
        token = argmax over kept of x[t] + (0 if greedy else gumbel_noise(seed, step)[t]), lowest t on ties
        logprob = 0 if greedy else x[token] - M - log(sum over kept of exp(x - M))

    Same sets as `filter_logits` (temperature, top-k, top-p, min-p in that order), except that a top-p
    boundary falling inside a run of equal values keeps the whole run (`filter_logits` keeps the part its
    sort puts first); top-k already keeps ties. Masses are float64 sums of float32 `exp(x - M)`.
    A row whose allowed tokens all have -inf logits counts as empty. NaN / +inf logits are unsupported.
    """
    a = check_sample_args(logits, bitmask, temperature, top_k, top_p, min_p, seed, step)
    return _reference(a)


def _reference(a: _Args) -> FusedSample:
    parts = _reference_parts(a)
    x, kept, greedy, empty = parts["x"], parts["kept"], parts["greedy"], parts["empty"]
    vocab = x.shape[1]
    noise = gumbel_noise(a.seed, a.step, vocab)
    score = torch.where(kept, torch.where(greedy[:, None], x, x + noise), _NEG_INF)
    tokens = torch.argmax(score, dim=1)
    s_kept = torch.where(kept, parts["w"].double(), 0.0).sum(1)
    x_tok = x.gather(1, tokens[:, None])[:, 0].double()
    logprob = torch.where(greedy, 0.0, x_tok - parts["m_safe"].double() - torch.log(s_kept))
    lse = torch.log(parts["s"]) + parts["m_safe"].double()
    lse_all = torch.logsumexp(parts["x_all"].double(), dim=1)
    log_mass = lse - lse_all
    neg_inf = torch.tensor(_NEG_INF, dtype=torch.float64, device=x.device)
    return FusedSample(
        torch.where(empty, -1, tokens),
        torch.where(empty, neg_inf, logprob).float(),
        torch.where(empty, neg_inf, log_mass).float(),
        empty,
    )


# ---------------------------------------------------------------------------------------------------------
# The Triton kernel.


@cache
def _triton_kernel() -> Any:
    """Build the kernel on first use: Triton is imported only when a Triton path is actually taken."""
    import triton
    import triton.language as tl

    @triton.jit
    def _tk_fmix32(h):
        h = h ^ (h >> 16)
        h = h * 0x85EBCA6B
        h = h ^ (h >> 13)
        h = h * 0xC2B2AE35
        return h ^ (h >> 16)

    @triton.jit
    def _tk_load_x(logits_ptr, bitmask_ptr, row, offs, vocab, n_words, logits_stride, bitmask_stride, temp,
                HAS_MASK: tl.constexpr):  # fmt: skip
        """(x over all tokens, x with disallowed tokens at -inf) for one block of the row."""
        in_vocab = offs < vocab
        raw = tl.load(logits_ptr + row * logits_stride + offs, mask=in_vocab, other=float("-inf"))
        x_all = tl.math.div_rn(raw.to(tl.float32), temp)
        if HAS_MASK:
            word_idx = offs // 32
            words = tl.load(
                bitmask_ptr + row * bitmask_stride + word_idx,
                mask=in_vocab & (word_idx < n_words),
                other=0,
            )
            allowed = ((words >> (offs % 32)) & 1) != 0
            x = tl.where(allowed, x_all, float("-inf"))
        else:
            x = x_all
        return x_all, x

    @triton.jit
    def _tk_key(v):
        """Order-preserving int64 key of a float32 (-0.0 and +0.0 share key 0)."""
        bits = v.to(tl.int32, bitcast=True)
        return tl.where(bits >= 0, bits, (bits ^ 0x7FFFFFFF) + 1).to(tl.int64)

    @triton.jit
    def _tk_unkey(k):
        k32 = k.to(tl.int32)
        bits = tl.where(k32 >= 0, k32, (k32 - 1) ^ 0x7FFFFFFF)
        return bits.to(tl.float32, bitcast=True)

    @triton.jit
    def _tk_pivot(lo, hi, it):
        """A value in (lo, hi]: the midpoint while that works, else the midpoint of the float order
        (halves the number of floats in the bracket, so the search is exact within 24 + 33 passes)."""
        mid = lo * 0.5 + hi * 0.5
        k_lo = _tk_key(lo)
        by_key = _tk_unkey(k_lo + (_tk_key(hi) - k_lo + 1) // 2)
        use_mid = (it < 24) & (mid > lo) & (mid <= hi)
        return tl.where(use_mid, mid, by_key)

    # The interpreter runs kernels re-parsed in the module's globals (closures are lost), so the helpers the
    # kernel calls are published there.
    globals().update(
        _tk_fmix32=_tk_fmix32,
        _tk_load_x=_tk_load_x,
        _tk_key=_tk_key,
        _tk_unkey=_tk_unkey,
        _tk_pivot=_tk_pivot,
    )

    @triton.jit
    def _fused_sample_kernel(
        logits_ptr,
        bitmask_ptr,
        temp_ptr,
        top_k_ptr,
        top_p_ptr,
        log_min_p_ptr,
        seed_ptr,
        step_ptr,
        tok_ptr,
        logprob_ptr,
        log_mass_ptr,
        empty_ptr,
        vocab,
        n_words,
        logits_stride,
        bitmask_stride,
        HAS_MASK: tl.constexpr,
        BLOCK: tl.constexpr,
        MAX_SEARCH: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        base = tl.arange(0, BLOCK)
        t_in = tl.load(temp_ptr + row)
        greedy = t_in <= 0.0
        temp = tl.where(greedy, 1.0, t_in)
        top_k = tl.load(top_k_ptr + row)
        top_p = tl.load(top_p_ptr + row)
        log_min_p = tl.load(log_min_p_ptr + row)

        # Pass 1: online max / logsumexp over the live tokens and over all tokens, the live count and min.
        m = float("-inf")
        s = 0.0
        m_all = float("-inf")
        s_all = 0.0
        n_live = 0
        x_min = float("inf")
        for start in range(0, vocab, BLOCK):
            offs = start + base
            x_all, x = _tk_load_x(logits_ptr, bitmask_ptr, row, offs, vocab, n_words, logits_stride,
                               bitmask_stride, temp, HAS_MASK)  # fmt: skip
            live = x > float("-inf")
            m_new = tl.maximum(m, tl.max(x))
            ref = tl.where(m_new == float("-inf"), 0.0, m_new)
            s = s * tl.exp(m - ref) + tl.sum(tl.exp(x - ref))
            m = m_new
            m_all_new = tl.maximum(m_all, tl.max(x_all))
            ref_all = tl.where(m_all_new == float("-inf"), 0.0, m_all_new)
            s_all = s_all * tl.exp(m_all - ref_all) + tl.sum(tl.exp(x_all - ref_all))
            m_all = m_all_new
            n_live += tl.sum(live.to(tl.int32))
            x_min = tl.minimum(x_min, tl.min(tl.where(live, x, float("inf"))))
        empty = n_live == 0
        m_ref = tl.where(empty, 0.0, m)

        # Top-k: the k-th largest live value. Invariant: lo, hi are values of the row, count(x >= lo) >= k,
        # the answer lies in [lo, hi]; each pass moves lo up or hi down to a value in the row.
        lo = x_min
        hi = m
        mass_lo = s  # mass of x >= lo, relative to exp(M)
        v_k = tl.full([], float("-inf"), tl.float32)
        if (top_k > 0) & (top_k < n_live) & (t_in > 0.0):
            it = 0
            while (lo < hi) & (it < MAX_SEARCH):
                pivot = _tk_pivot(lo, hi, it)
                count = 0
                mass = 0.0
                above = float("inf")
                below = float("-inf")
                for start in range(0, vocab, BLOCK):
                    offs = start + base
                    _, x = _tk_load_x(logits_ptr, bitmask_ptr, row, offs, vocab, n_words, logits_stride,
                                   bitmask_stride, temp, HAS_MASK)  # fmt: skip
                    ge = x >= pivot
                    count += tl.sum(ge.to(tl.int32))
                    mass += tl.sum(tl.where(ge, tl.exp(x - m_ref), 0.0))
                    above = tl.minimum(above, tl.min(tl.where(ge, x, float("inf"))))
                    below = tl.maximum(below, tl.max(tl.where(ge, float("-inf"), x)))
                up = count >= top_k
                lo = tl.where(up, above, lo)
                mass_lo = tl.where(up, mass, mass_lo)
                hi = tl.where(up, hi, below)
                it += 1
            v_k = lo

        # Top-p over the top-k set: the largest value v with mass(x >= v) >= top_p * mass(top-k set).
        v_p = tl.full([], float("-inf"), tl.float32)
        if (top_p < 1.0) & (t_in > 0.0) & (n_live > 0):
            target = top_p * mass_lo
            lo = tl.maximum(x_min, v_k)
            hi = m
            it = 0
            while (lo < hi) & (it < MAX_SEARCH):
                pivot = _tk_pivot(lo, hi, it)
                mass = 0.0
                above = float("inf")
                below = float("-inf")
                for start in range(0, vocab, BLOCK):
                    offs = start + base
                    _, x = _tk_load_x(logits_ptr, bitmask_ptr, row, offs, vocab, n_words, logits_stride,
                                   bitmask_stride, temp, HAS_MASK)  # fmt: skip
                    x = tl.where(x >= v_k, x, float("-inf"))
                    ge = x >= pivot
                    mass += tl.sum(tl.where(ge, tl.exp(x - m_ref), 0.0))
                    above = tl.minimum(above, tl.min(tl.where(ge, x, float("inf"))))
                    below = tl.maximum(below, tl.max(tl.where(ge, float("-inf"), x)))
                up = mass >= target
                lo = tl.where(up, above, lo)
                hi = tl.where(up, hi, below)
                it += 1
            v_p = lo

        tau = tl.maximum(tl.maximum(v_k, v_p), m + log_min_p)
        tau = tl.where(greedy, m, tau)

        # Final pass: Gumbel-max over the kept set, and the kept mass for the log-probability.
        seed = tl.load(seed_ptr + row)
        step = tl.load(step_ptr + row)
        h1 = _tk_fmix32(seed.to(tl.uint32) + 0x9E3779B9)
        h1 = _tk_fmix32(h1 ^ ((seed >> 32).to(tl.uint32) + 0x7F4A7C15))
        h1 = _tk_fmix32(h1 ^ (step.to(tl.uint32) + 0x85EBCA77))
        h1 = _tk_fmix32(h1 ^ ((step >> 32).to(tl.uint32) + 0xC2B2AE3D))
        h2 = _tk_fmix32(h1 + 0x27D4EB2F)
        noise_scale = tl.where(greedy, 0.0, 1.0)
        best = float("-inf")
        best_x = float("-inf")
        best_tok = -1
        s_kept = 0.0
        for start in range(0, vocab, BLOCK):
            offs = start + base
            _, x = _tk_load_x(logits_ptr, bitmask_ptr, row, offs, vocab, n_words, logits_stride,
                           bitmask_stride, temp, HAS_MASK)  # fmt: skip
            kept = (x >= tau) & (x > float("-inf"))
            r = _tk_fmix32(_tk_fmix32(h1 ^ offs.to(tl.uint32)) ^ h2)
            u = ((r >> 9).to(tl.float32) + 0.5) * (1.0 / 8388608.0)
            g = -tl.log(-tl.log(u))
            score = tl.where(kept, x + g * noise_scale, float("-inf"))
            block_best = tl.max(score)
            block_tok = tl.min(tl.where(kept & (score == block_best), offs, 2147483647))
            block_x = tl.max(tl.where(offs == block_tok, x, float("-inf")))
            better = block_best > best
            best = tl.where(better, block_best, best)
            best_x = tl.where(better, block_x, best_x)
            best_tok = tl.where(better, block_tok, best_tok)
            s_kept += tl.sum(tl.where(kept, tl.exp(x - m_ref), 0.0))

        # (logs of 1.0 on empty rows, whose outputs are overwritten: no log(0) warnings when interpreted)
        logprob = tl.where(greedy, 0.0, best_x - m_ref - tl.log(tl.where(empty, 1.0, s_kept)))
        log_mass = (m_ref - m_all) + (tl.log(tl.where(empty, 1.0, s)) - tl.log(tl.where(empty, 1.0, s_all)))
        tl.store(tok_ptr + row, tl.where(empty, -1, best_tok).to(tl.int64))
        tl.store(logprob_ptr + row, tl.where(empty, float("-inf"), logprob))
        tl.store(log_mass_ptr + row, tl.where(empty, float("-inf"), log_mass))
        tl.store(empty_ptr + row, empty.to(tl.int8))

    return _fused_sample_kernel


def fused_sample_triton(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
    *,
    block: int = 2048,
) -> FusedSample:
    """The Triton kernel, one program per row (CUDA, or CPU tensors under `TRITON_INTERPRET=1`). Same
    results as `fused_sample_reference` up to float rounding: the kernel sums masses in float32 in block
    order, so a top-p boundary within rounding of `top_p` may differ, and `log` may differ in the last
    bit, which changes a token only when two Gumbel scores are within an ulp."""
    a = check_sample_args(logits, bitmask, temperature, top_k, top_p, min_p, seed, step)
    if block < 32 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 32, got {block}")
    rows = a.logits if a.logits.stride(1) == 1 else a.logits.contiguous()
    masks = a.bitmask
    if masks is not None and masks.stride(1) != 1:
        masks = masks.contiguous()
    if not (rows.is_cuda or _interpreting()):
        raise ValueError("the Triton path needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")
    batch, vocab = rows.shape
    device = rows.device
    tokens = torch.empty(batch, dtype=torch.int64, device=device)
    logprob = torch.empty(batch, dtype=torch.float32, device=device)
    log_mass = torch.empty(batch, dtype=torch.float32, device=device)
    empty = torch.empty(batch, dtype=torch.int8, device=device)
    if batch == 0:
        return FusedSample(tokens, logprob, log_mass, empty.bool())
    _triton_kernel()[(batch,)](
        rows,
        masks if masks is not None else rows,
        a.temperature,
        a.top_k,
        a.top_p,
        min_p_offset(a.min_p),
        a.seed,
        a.step,
        tokens,
        logprob,
        log_mass,
        empty,
        vocab,
        masks.shape[1] if masks is not None else 0,
        rows.stride(0),
        masks.stride(0) if masks is not None else 0,
        HAS_MASK=masks is not None,
        BLOCK=block,
        MAX_SEARCH=_MAX_SEARCH,
    )
    return FusedSample(tokens, logprob, log_mass, empty.bool())


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def fused_sample(
    logits: torch.Tensor,
    bitmask: torch.Tensor | None,
    temperature: Any,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
    *,
    use_triton: bool | None = None,
    mass: bool = True,
) -> FusedSample:
    """Mask, temper, filter and draw one token per row (see `fused_sample_reference` for the spec).

    Per-row parameters are `[B]` tensors or numbers: `temperature` (<= 0: greedy), `top_k` (0: off),
    `top_p` (1: off), `min_p` (0: off), `seed` and `step` (int64; the draw is a function of the pair).
    Triton on CUDA; the sort-free torch path (sample_host.py) on CPU, unless `use_triton=True` forces
    Triton (on CPU tensors that needs TRITON_INTERPRET=1); the reference on other devices.
    Returns `FusedSample(tokens, logprob, log_mass, empty)`; `mass=False` lets the CPU path skip
    `log_mass` (NaN then)."""
    if use_triton is None:
        use_triton = logits.is_cuda
    if use_triton:
        return fused_sample_triton(logits, bitmask, temperature, top_k, top_p, min_p, seed, step)
    if logits.device.type == "cpu":
        from .sample_host import fused_sample_host

        return fused_sample_host(logits, bitmask, temperature, top_k, top_p, min_p, seed, step, mass=mass)
    return fused_sample_reference(logits, bitmask, temperature, top_k, top_p, min_p, seed, step)
