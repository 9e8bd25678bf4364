"""Token-bitmask application: the Triton kernel (interpreted on CPU) and the torch path against the spec."""

from __future__ import annotations

import pytest
import torch

from decc.runtime.kernels.bitmask import (
    allocate_token_bitmask,
    apply_token_bitmask_inplace,
    apply_token_bitmask_reference,
    apply_token_bitmask_torch,
    apply_token_bitmask_triton,
    bitmask_words,
    pack_bitmask,
    unpack_bitmask,
)

SMALL = [1, 31, 32, 33, 64, 65, 100]
LARGE = [32001, 49152, 128256]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def random_bitmask(batch: int, words: int, seed: int) -> torch.Tensor:
    """Random words with the awkward rows forced in: bit 31 alone, an all-zero row, an all-ones row."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.randint(-(2**31), 2**31, (batch, words), generator=gen, dtype=torch.int64).to(torch.int32)
    mask[0, 0] = -(2**31)  # only bit 31: token 31 allowed, tokens 0..30 not
    if batch > 1:
        mask[1] = 0
    if batch > 2:
        mask[2] = -1
    return mask


def random_logits(batch: int, vocab: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, vocab, generator=gen).to(dtype)


def spec_allowed(mask: torch.Tensor, vocab: int) -> list[list[bool]]:
    """Allowed tokens straight from the definition, with Python ints (no int32 arithmetic)."""
    rows = []
    for words in mask.tolist():
        rows.append(
            [
                t // 32 < len(words) and (words[t // 32] & 0xFFFFFFFF) >> (t % 32) & 1 == 1
                for t in range(vocab)
            ]
        )
    return rows


@pytest.mark.parametrize("vocab", SMALL)
@pytest.mark.parametrize("batch", [1, 3])
def test_reference_matches_definition(vocab: int, batch: int) -> None:
    mask = random_bitmask(batch, bitmask_words(vocab), seed=vocab)
    logits = random_logits(batch, vocab, torch.float32, seed=vocab)
    out = apply_token_bitmask_reference(logits, mask)
    expected = spec_allowed(mask, vocab)
    assert (out != float("-inf")).tolist() == expected
    kept = torch.tensor(expected)
    assert torch.equal(out[kept], logits[kept])
    assert unpack_bitmask(mask, vocab).tolist() == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("vocab", SMALL + LARGE)
def test_triton_torch_reference_agree(vocab: int, batch: int, dtype: torch.dtype) -> None:
    mask = random_bitmask(batch, bitmask_words(vocab), seed=vocab + batch)
    logits = random_logits(batch, vocab, dtype, seed=vocab * 7 + batch)
    by_torch = apply_token_bitmask_torch(logits.clone(), mask)
    by_triton = apply_token_bitmask_triton(logits.clone(), mask)
    assert by_torch.dtype == by_triton.dtype == dtype
    assert torch.equal(by_torch, by_triton)
    assert torch.equal(by_torch == float("-inf"), ~unpack_bitmask(mask, vocab))
    if vocab in SMALL:
        assert torch.equal(by_torch, apply_token_bitmask_reference(logits, mask))
    if batch == 3:
        assert torch.isneginf(by_torch[1]).all()  # the all-zero row
        assert torch.equal(by_torch[2], logits[2])  # the all-ones row


@pytest.mark.parametrize("vocab,words", [(33, 1), (100, 2), (49152, 1000), (31, 3), (65, 5), (32001, 1100)])
@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_bitmask_narrower_or_wider_than_logits(vocab: int, words: int, impl: str) -> None:
    """Tokens past the bitmask are disallowed; words past the logits are ignored."""
    mask = random_bitmask(2, words, seed=words)
    logits = random_logits(2, vocab, torch.float32, seed=vocab)
    fn = apply_token_bitmask_torch if impl == "torch" else apply_token_bitmask_triton
    out = fn(logits.clone(), mask)
    allowed = unpack_bitmask(mask, vocab)
    assert not allowed[:, words * 32 :].any()
    assert torch.equal(out == float("-inf"), ~allowed)
    if vocab <= 100:
        assert torch.equal(out, apply_token_bitmask_reference(logits, mask))


def test_one_dimensional_rows_and_in_place() -> None:
    vocab = 1000
    mask = random_bitmask(1, bitmask_words(vocab), seed=3)[0]
    logits = random_logits(1, vocab, torch.float32, seed=3)[0]
    expected = apply_token_bitmask_reference(logits, mask)
    for impl in (apply_token_bitmask_torch, apply_token_bitmask_triton):
        row = logits.clone()
        assert impl(row, mask) is row
        assert torch.equal(row, expected)


def test_masking_a_view_writes_through() -> None:
    """The decode loop masks `out.logits[0, -1]`, a view into a bigger tensor."""
    full = random_logits(4, 64, torch.float32, seed=5).reshape(1, 4, 64)
    mask = random_bitmask(1, 2, seed=5)[0]
    expected = apply_token_bitmask_reference(full[0, -1], mask)
    for use_triton in (False, True):
        buf = full.clone()
        apply_token_bitmask_inplace(buf[0, -1], mask, use_triton=use_triton)
        assert torch.equal(buf[0, -1], expected)
        assert torch.equal(buf[0, :-1], full[0, :-1])


def test_dispatch_and_helpers() -> None:
    mask = allocate_token_bitmask(2, 70)
    assert mask.dtype == torch.int32 and mask.shape == (2, 3)
    assert unpack_bitmask(mask, 70).all()
    assert unpack_bitmask(mask, 100)[:, 96:].sum() == 0
    logits = random_logits(2, 70, torch.float32, seed=1)
    assert torch.equal(apply_token_bitmask_inplace(logits.clone(), mask), logits)
    mask[0, 1] = 0
    for use_triton in (None, False, True):
        out = apply_token_bitmask_inplace(logits.clone(), mask, use_triton=use_triton)
        assert torch.isneginf(out[0, 32:64]).all() and torch.equal(out[1], logits[1])


def test_bad_inputs_raise() -> None:
    logits = torch.zeros(2, 64)
    with pytest.raises(ValueError, match="int32"):
        apply_token_bitmask_inplace(logits, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch"):
        apply_token_bitmask_inplace(logits, torch.zeros(3, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="dtype"):
        apply_token_bitmask_triton(logits.double(), torch.zeros(2, 2, dtype=torch.int32))


@pytest.mark.parametrize("vocab", [1, 31, 32, 33, 49152])
def test_pack_is_inverse_of_unpack(vocab: int) -> None:
    gen = torch.Generator().manual_seed(vocab)
    allowed = torch.rand(3, vocab, generator=gen) < 0.5
    allowed[0, -1] = True
    allowed[1] = True
    allowed[2] = False
    packed = pack_bitmask(allowed)
    assert packed.dtype == torch.int32 and packed.shape == (3, bitmask_words(vocab))
    assert torch.equal(unpack_bitmask(packed, vocab), allowed)
    assert torch.equal(pack_bitmask(allowed[0]), packed[0])
