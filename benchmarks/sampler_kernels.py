"""Fused mask-and-sample kernel benchmark: decc's one pass against the unfused ways of doing the same.

Cases, per `(B, V)` shape and logits dtype, each row with a random bitmask (about half the tokens
allowed), temperature 0.8, top-k 50 on some rows and top-p 0.9 on others (per-row parameters):

* `decc fused`: `fused_sample` (the Triton kernel on CUDA; on CPU the sort-free torch path);
* `torch sort top-p`: the usual unfused chain: mask the logits (`masked_fill` from the unpacked bitmask),
  divide by the temperature, sort every row, softmax + cumsum for top-p, scatter back, softmax,
  `torch.multinomial`;
* `xgrammar + sampler`: XGrammar's `apply_token_bitmask_inplace` (its own kernel) and then the same sort-
  based sampler (skipped when xgrammar is not installed);
* `HBM floor`: the bytes the fused kernel must move at least (the logits and the bitmask read once, four
  numbers per row written) over the device's measured copy bandwidth (a large `copy_`: read + write).
  The fused kernel reads a row several times (max, threshold searches, draw); a row of 128256 bf16 is
  250 KB, so the repeats mostly hit L2 on an H100 and the kernel can stay near the floor.

On CPU the same cases run at smaller sizes (`--cpu-shapes`); the figures there compare the torch paths.
Times are medians of `--repeats` runs after warm-up, with `torch.cuda.synchronize` around each on CUDA.

    .venv/bin/python benchmarks/sampler_kernels.py [--shapes 256x128256,64x49152] [--dtype bf16] [--repeats 20]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from decc.runtime.kernels.bitmask import pack_bitmask, unpack_bitmask
from decc.runtime.kernels.sample import fused_sample

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def make_case(batch: int, vocab: int, dtype: torch.dtype, device: str) -> dict:
    gen = torch.Generator().manual_seed(batch * 7 + vocab)
    logits = torch.randn(batch, vocab, generator=gen) * 2.0
    spikes = torch.randint(0, vocab, (batch, 16), generator=gen)
    logits.scatter_add_(1, spikes, 6.0 + 6.0 * torch.rand(batch, 16, generator=gen))
    allowed = torch.rand(batch, vocab, generator=gen) < 0.5
    allowed.scatter_(1, spikes[:, :4], True)
    rows = torch.arange(batch)
    return {
        "logits": logits.to(dtype).to(device),
        "bitmask": pack_bitmask(allowed).to(device),
        "temperature": torch.full((batch,), 0.8, device=device),
        "top_k": torch.where(rows % 2 == 0, 50, 0).to(torch.int32).to(device),
        "top_p": torch.where(rows % 2 == 1, 0.9, 1.0).float().to(device),
        "min_p": torch.zeros(batch, device=device),
        "seed": torch.arange(batch, dtype=torch.int64, device=device),
        "step": torch.zeros(batch, dtype=torch.int64, device=device),
    }


def sort_sampler(x: torch.Tensor, case: dict, gen: torch.Generator | None) -> torch.Tensor:
    """Temperature, top-k, top-p by a full sort, then multinomial: the unfused reference chain."""
    x = x.float() / case["temperature"][:, None]
    sx, order = torch.sort(x, dim=-1, descending=True)
    k = case["top_k"].long()
    ranks = torch.arange(x.shape[1], device=x.device)[None, :]
    sx = sx.masked_fill((k[:, None] > 0) & (ranks >= k[:, None]), float("-inf"))
    probs = torch.softmax(sx, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs
    sx = sx.masked_fill(before >= case["top_p"][:, None], float("-inf"))
    kept = torch.full_like(x, float("-inf")).scatter(1, order, sx)
    return torch.multinomial(torch.softmax(kept, dim=-1), 1, generator=gen).squeeze(1)


def torch_path(case: dict) -> Callable[[], object]:
    vocab = case["logits"].shape[1]

    def run() -> object:
        allowed = unpack_bitmask(case["bitmask"], vocab)
        x = case["logits"].masked_fill(~allowed, float("-inf"))
        return sort_sampler(x, case, None)

    return run


def xgrammar_path(case: dict) -> Callable[[], object] | None:
    try:
        import xgrammar
    except ImportError:
        return None

    def run() -> object:
        x = case["logits"].float()  # xgrammar's kernel takes float32 logits
        xgrammar.apply_token_bitmask_inplace(x, case["bitmask"])
        return sort_sampler(x, case, None)

    return run


def fused_path(case: dict) -> Callable[[], object]:
    args = [case[k] for k in ("temperature", "top_k", "top_p", "min_p", "seed", "step")]
    return lambda: fused_sample(case["logits"], case["bitmask"], *args, mass=True)


def timed(fn: Callable[[], object], repeats: int, cuda: bool) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(device: str, cuda: bool) -> float:
    """Bytes per second of a large device copy (read + write counted)."""
    n = (1 << 28) if cuda else (1 << 25)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src), 10, cuda)
    return 2 * n / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="256x128256,64x128256,64x49152")
    ap.add_argument("--cpu-shapes", default="8x49152,32x49152,8x128256")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--smoke", action="store_true", help="one 2x1024 shape, 2 repeats: check it runs (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.shapes = args.cpu_shapes = "2x1024"
        args.repeats = 2
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name() if cuda else "CPU"
    shapes = [
        tuple(int(v) for v in s.split("x")) for s in (args.shapes if cuda else args.cpu_shapes).split(",")
    ]
    bw = copy_bandwidth(device, cuda)
    print(f"device: {name}; copy bandwidth {bw / 1e9:.0f} GB/s; logits {args.dtype}")
    header = f"{'B x V':>12} {'fused us':>10} {'floor us':>9} {'x floor':>8} {'sort us':>9} {'speedup':>8}"
    print(header + f" {'xgr+sort us':>12}")
    report = []
    dtype = DTYPES[args.dtype]
    for batch, vocab in shapes:
        case = make_case(batch, vocab, dtype, device)
        fused = timed(fused_path(case), args.repeats, cuda)
        sort = timed(torch_path(case), max(3, args.repeats // 4), cuda)
        xgr_fn = xgrammar_path(case) if cuda else None
        xgr = timed(xgr_fn, max(3, args.repeats // 4), cuda) if xgr_fn is not None else None
        moved = batch * vocab * case["logits"].element_size() + case["bitmask"].numel() * 4 + batch * 32
        floor = moved / bw  # bw counts read + write bytes, like `moved`
        row = {
            "device": name,
            "batch": batch,
            "vocab": vocab,
            "dtype": args.dtype,
            "fused_s": fused,
            "floor_s": floor,
            "sort_s": sort,
            "xgrammar_sort_s": xgr,
        }
        report.append(row)
        xgr_text = f"{xgr * 1e6:>12.0f}" if xgr is not None else f"{'-':>12}"
        print(
            f"{batch:>5} x {vocab:<6} {fused * 1e6:>10.0f} {floor * 1e6:>9.0f} {fused / floor:>8.2f}"
            f" {sort * 1e6:>9.0f} {sort / fused:>8.2f}" + xgr_text
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
