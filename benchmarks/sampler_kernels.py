"""Fused mask-and-sample kernel benchmark: decc's one pass against the unfused ways of doing the same.

Per batch B, vocabulary V, logits dtype and sampling setting, on logits like a model's (a spread body and
a few large ones) with a random bitmask per row (about half the tokens allowed):

* `decc fused`: `fused_sample`, the Triton kernel (runtime/kernels/sample.py) on CUDA or, on CPU, under
  `TRITON_INTERPRET=1` (`--smoke` sets it); otherwise on CPU the sort-free torch path (sample_host.py).
  Before any timing its tokens, log-probabilities and log-masses are checked against
  `fused_sample_reference` on the same inputs: a difference is printed as `KERNEL MISMATCH` and the
  script exits 1 after the tables.
* `torch chain`: the usual unfused chain: unpack the bitmask and `masked_fill`, divide by the temperature,
  sort every row for top-k / top-p (skipped when no row filters), softmax + cumsum, scatter back, softmax,
  `torch.multinomial`;
* `xgrammar + chain`: XGrammar's `apply_token_bitmask_inplace` (its own kernel, in place on a copy of
  the logits) and then the same chain; "not installed" when `import xgrammar` fails;
* `HBM floor`: the bytes the fused kernel must move at least (logits and bitmask read once, the per-row
  parameters read, four numbers per row written) over the bandwidth of a large device copy (bytes read
  plus written). `x floor` is fused time over that floor.

Timing: on CUDA each call is bracketed by CUDA events, after `--warmup` calls, with L2 flushed (a 256 MiB
buffer zeroed) before each call, so no call finds its logits in cache; the figure is the median over
`--repeats`, in microseconds, and includes the host-side launch cost the GPU waits for. On CPU it is
`time.perf_counter`. Sampling settings (`--sampling`): `topp` (temperature 0.8, top-p 0.9 on every row),
`topk` (0.8, top-k 50), `mixed` (top-k 50 on even rows, top-p 0.9 on odd ones), `plain` (temperature 1,
no filter).

    .venv/bin/python benchmarks/sampler_kernels.py [--batches 1,8,64,256] [--vocabs 49152,128256,151936]
        [--dtypes bf16,fp32] [--sampling topp,plain] [--repeats 20] [--json out.json] [--smoke]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SAMPLINGS = ("topp", "topk", "mixed", "plain")
FLUSH_BYTES = 256 << 20  # larger than any GPU's L2 (H100 50 MB, H200 60 MB)
COLUMNS = (
    "B",
    "V",
    "dtype",
    "sampling",
    "decc fused us",
    "HBM floor us",
    "x floor",
    "torch chain us",
    "chain / fused",
    "xgrammar + chain us",
    "check",
)


def make_case(batch: int, vocab: int, dtype: torch.dtype, sampling: str, device: str) -> dict[str, Any]:
    """Logits, a packed bitmask and per-row parameters; built on `device` with a seeded generator."""
    from decc.runtime.kernels.bitmask import pack_bitmask

    gen = torch.Generator(device=device).manual_seed(batch * 7 + vocab)
    logits = torch.randn(batch, vocab, generator=gen, device=device) * 2.0
    spikes = torch.randint(0, vocab, (batch, 16), generator=gen, device=device)
    logits.scatter_add_(1, spikes, 6.0 + 6.0 * torch.rand(batch, 16, generator=gen, device=device))
    allowed = torch.rand(batch, vocab, generator=gen, device=device) < 0.5
    allowed.scatter_(1, spikes[:, :4], True)
    rows = torch.arange(batch, device=device)
    temperature, top_k, top_p = 0.8, torch.zeros_like(rows), torch.ones(batch, device=device)
    if sampling == "topp":
        top_p = torch.full((batch,), 0.9, device=device)
    elif sampling == "topk":
        top_k = torch.full_like(rows, 50)
    elif sampling == "mixed":
        top_k = torch.where(rows % 2 == 0, 50, 0)
        top_p = torch.where(rows % 2 == 1, 0.9, 1.0).float()
    else:
        temperature = 1.0
    return {
        "logits": logits.to(dtype),
        "bitmask": pack_bitmask(allowed),
        "temperature": torch.full((batch,), temperature, device=device),
        "top_k": top_k.to(torch.int32),
        "top_p": top_p.float(),
        "min_p": torch.zeros(batch, device=device),
        "seed": torch.arange(batch, dtype=torch.int64, device=device) * 1_000_003,
        "step": torch.full((batch,), 7, dtype=torch.int64, device=device),
    }


PARAMS = ("temperature", "top_k", "top_p", "min_p", "seed", "step")


def torch_sampler(x: torch.Tensor, case: dict[str, Any]) -> torch.Tensor:
    """Temperature, top-k and top-p by a full sort (skipped when no row filters), then multinomial."""
    x = x.float() / case["temperature"][:, None]
    k, p = case["top_k"].long(), case["top_p"]
    if bool((k > 0).any() | (p < 1).any()):
        sx, order = torch.sort(x, dim=-1, descending=True)
        ranks = torch.arange(x.shape[1], device=x.device)[None, :]
        sx = sx.masked_fill((k[:, None] > 0) & (ranks >= k[:, None]), float("-inf"))
        probs = torch.softmax(sx, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs
        sx = sx.masked_fill(before >= p[:, None], float("-inf"))
        x = torch.full_like(x, float("-inf")).scatter(1, order, sx)
    return torch.multinomial(torch.softmax(x, dim=-1), 1).squeeze(1)


def torch_path(case: dict[str, Any]) -> Callable[[], object]:
    from decc.runtime.kernels.bitmask import unpack_bitmask

    vocab = case["logits"].shape[1]

    def run() -> object:
        allowed = unpack_bitmask(case["bitmask"], vocab)
        return torch_sampler(case["logits"].masked_fill(~allowed, float("-inf")), case)

    return run


def xgrammar_status() -> str:
    """`xgrammar <version>`, or why it cannot be used."""
    if importlib.util.find_spec("xgrammar") is None:
        return "not installed"
    try:
        import xgrammar
    except Exception as exc:  # an import that fails half-way (a missing dependency) is "not usable"
        return f"not usable ({type(exc).__name__}: {exc})"
    del xgrammar
    return f"xgrammar {importlib.metadata.version('xgrammar')}"


def xgrammar_path(case: dict[str, Any]) -> Callable[[], object]:
    """XGrammar's in-place bitmask apply on a copy of the logits (idempotent, so the copy is made once),
    then the torch sampler. Raises if XGrammar's result differs from the torch masking."""
    import xgrammar

    from decc.runtime.kernels.bitmask import unpack_bitmask

    logits = case["logits"]
    vocab = logits.shape[1]
    buf = logits.clone()
    try:
        xgrammar.apply_token_bitmask_inplace(buf, case["bitmask"], vocab_size=vocab)
    except Exception:  # an older kernel that takes float32 only
        buf = logits.float().clone()
        xgrammar.apply_token_bitmask_inplace(buf, case["bitmask"], vocab_size=vocab)
    expected = logits.to(buf.dtype).masked_fill(~unpack_bitmask(case["bitmask"], vocab), float("-inf"))
    if not torch.equal(buf, expected):
        raise AssertionError("xgrammar's masked logits differ from masked_fill")

    def run() -> object:
        xgrammar.apply_token_bitmask_inplace(buf, case["bitmask"], vocab_size=vocab)
        return torch_sampler(buf, case)

    return run


def check_kernel(kernel: Callable[..., Any], case: dict[str, Any]) -> str:
    """'ok', or what differs between the kernel and the torch reference (the spec) on this case."""
    from decc.runtime.kernels.sample import fused_sample_reference

    args = [case[k] for k in PARAMS]
    ref = fused_sample_reference(case["logits"], case["bitmask"], *args)
    got = kernel(case["logits"], case["bitmask"], *args)
    problems = []
    bad = (ref.tokens != got.tokens).nonzero()[:, 0].tolist()
    if bad:
        pairs = ", ".join(f"row {r}: {int(got.tokens[r])} != {int(ref.tokens[r])}" for r in bad[:4])
        problems.append(f"{len(bad)} tokens differ ({pairs})")
    if not torch.equal(ref.empty, got.empty):
        problems.append("empty rows differ")
    for name in ("logprob", "log_mass"):
        a, b = getattr(ref, name), getattr(got, name)
        if a.isinf().ne(b.isinf()).any():
            problems.append(f"{name}: infinities differ")
            continue
        finite = ~a.isinf()
        if finite.any():
            err = float((a[finite] - b[finite]).abs().max())
            if err > 1e-3:
                problems.append(f"{name} off by {err:.2e}")
    return "ok" if not problems else "; ".join(problems)


class Timer:
    """Medians of `repeats` calls after `warmup`: CUDA events with L2 flushed before each call on CUDA,
    `perf_counter` on CPU."""

    def __init__(self, device: str, repeats: int, warmup: int) -> None:
        self.cuda = device.startswith("cuda")
        self.repeats, self.warmup = repeats, warmup
        self.flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=device) if self.cuda else None

    def __call__(self, fn: Callable[[], object], repeats: int | None = None) -> float:
        n = repeats or self.repeats
        for _ in range(self.warmup):
            fn()
        if not self.cuda:
            times = []
            for _ in range(n):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)
        ]
        for start, end in events:
            assert self.flush is not None
            self.flush.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) for s, e in events) / 1e3


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large device copy, bytes read plus bytes written."""
    n = (1 << 30) if device.startswith("cuda") else (1 << 25)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = Timer(device, 10, 3)(lambda: dst.copy_(src))
    return 2 * n / seconds


def floor_bytes(case: dict[str, Any]) -> int:
    """What the fused kernel must move at least: logits and bitmask read once, 6 parameters read and 4
    outputs written per row."""
    logits, bitmask = case["logits"], case["bitmask"]
    params = sum(case[k].element_size() for k in PARAMS)
    return (
        logits.numel() * logits.element_size()
        + bitmask.numel() * 4
        + logits.shape[0] * (params + 8 + 4 + 4 + 1)
    )


_SEEN: set[str] = set()


def guarded(what: Callable[[], Any]) -> Any:
    """`what()`, or 'error: ...' with the traceback printed: one failing measurement costs only its cell."""
    try:
        return what()
    except Exception as exc:
        text = f"error: {type(exc).__name__}: {exc}"[:160]
        if text not in _SEEN:  # each distinct error's traceback once
            _SEEN.add(text)
            traceback.print_exc()
        return text


def measure_row(
    batch: int,
    vocab: int,
    dtype_name: str,
    sampling: str,
    device: str,
    kernel: Callable[..., Any],
    timer: Timer,
    args: argparse.Namespace,
    xgr: str,
    bw: float,
) -> dict[str, Any]:
    """One table row: the kernel checked, then each path timed (seconds, or 'error: ...')."""
    case = make_case(batch, vocab, DTYPES[dtype_name], sampling, device)
    check = "skipped" if args.no_check else guarded(lambda: check_kernel(kernel, case))
    params = [case[k] for k in PARAMS]
    fused = guarded(lambda: timer(lambda: kernel(case["logits"], case["bitmask"], *params)))
    chain = guarded(lambda: timer(torch_path(case), max(3, args.repeats // 2)))
    xgr_s = (
        guarded(lambda: timer(xgrammar_path(case), max(3, args.repeats // 2)))
        if xgr.startswith("xgr")
        else None
    )
    return {"batch": batch, "vocab": vocab, "dtype": dtype_name, "sampling": sampling, "fused_s": fused,
            "floor_s": floor_bytes(case) / bw, "torch_chain_s": chain, "xgrammar_chain_s": xgr_s,
            "check": check}  # fmt: skip


def table_cells(row: dict[str, Any]) -> list[Any]:
    def us(seconds: Any) -> str:
        return f"{seconds * 1e6:.1f}" if isinstance(seconds, float) else str(seconds or "not installed")

    def ratio(a: Any, b: Any) -> str:
        return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) else "-"

    fused, chain = row["fused_s"], row["torch_chain_s"]
    return [row["batch"], row["vocab"], row["dtype"], row["sampling"], us(fused), us(row["floor_s"]),
            ratio(fused, row["floor_s"]), us(chain), ratio(chain, fused), us(row["xgrammar_chain_s"]),
            row["check"]]  # fmt: skip


def markdown_row(values: list[Any]) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def csv_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", help="comma list (default 1,8,64,256 on CUDA, 1,8 on CPU)")
    ap.add_argument("--vocabs", help="comma list (default 49152,128256,151936 on CUDA, 49152 on CPU)")
    ap.add_argument("--dtypes", help="logits dtypes, comma list of bf16, fp16, fp32 (default bf16,fp32)")
    ap.add_argument("--sampling", default="topp", help=f"comma list of {', '.join(SAMPLINGS)}")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-check", action="store_true", help="skip the kernel-vs-reference check")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes, 2 repeats; on CPU the Triton kernel runs interpreted (CI: check it runs)",
    )
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if args.smoke:
        args.batches, args.vocabs, args.repeats, args.warmup = "1,3", "1000", 2, 1
        args.dtypes = args.dtypes or "fp32,bf16"
        args.sampling = "mixed,plain"
        if not cuda and importlib.util.find_spec("triton") is not None:
            os.environ["TRITON_INTERPRET"] = "1"  # read when the kernel is first built, below
    batches = csv_ints(args.batches or ("1,8,64,256" if cuda else "1,8"))
    vocabs = csv_ints(args.vocabs or ("49152,128256,151936" if cuda else "49152"))
    dtypes = (args.dtypes or "bf16,fp32").split(",")
    samplings = args.sampling.split(",")
    for name in samplings:
        if name not in SAMPLINGS:
            raise SystemExit(f"unknown --sampling {name!r} (one of {', '.join(SAMPLINGS)})")
    for name in dtypes:
        if name not in DTYPES:
            raise SystemExit(f"unknown --dtypes entry {name!r} (one of {', '.join(DTYPES)})")

    from decc.runtime.kernels.sample import fused_sample

    use_triton = cuda or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

    def kernel(logits: torch.Tensor, bitmask: torch.Tensor, *params: torch.Tensor) -> Any:
        return fused_sample(logits, bitmask, *params, use_triton=use_triton)

    name = torch.cuda.get_device_name() if cuda else "CPU"
    timer = Timer(device, args.repeats, args.warmup)
    bw = copy_bandwidth(device)
    xgr = xgrammar_status()
    fused_what = "torch host path (no Triton)"
    if use_triton:
        fused_what = "Triton kernel" if cuda else "Triton kernel (interpreted)"
    print(f"device: {name}; torch {torch.__version__}; copy bandwidth {bw / 1e9:.0f} GB/s (read + write)")
    print(f"decc fused: {fused_what}; xgrammar: {xgr}\n")
    print(markdown_row(list(COLUMNS)))
    print(markdown_row(["---"] * len(COLUMNS)))
    report: dict[str, Any] = {"device": name, "torch": torch.__version__, "copy_bytes_per_s": bw,
                              "fused": fused_what, "xgrammar": xgr, "rows": []}  # fmt: skip
    failures = []
    for dtype_name in dtypes:
        for sampling in samplings:
            for vocab in vocabs:
                for batch in batches:
                    row = measure_row(
                        batch, vocab, dtype_name, sampling, device, kernel, timer, args, xgr, bw
                    )
                    report["rows"].append(row)
                    if row["check"] not in ("ok", "skipped") or isinstance(row["fused_s"], str):
                        failures.append(f"{batch}x{vocab} {dtype_name} {sampling}: {row['check']}")
                        print(f"KERNEL MISMATCH {failures[-1]}", file=sys.stderr)
                    print(markdown_row(table_cells(row)), flush=True)
                    if args.json:  # after every row: a run cut short keeps what it measured
                        with open(args.json, "w") as f:
                            json.dump(report, f, indent=2)
    if failures:
        print("\nKERNEL MISMATCH (the fused kernel differs from fused_sample_reference):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
