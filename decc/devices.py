"""Devices, dtypes and CPU threads for running a model: their spellings (checked where they are written, in
a program's `model` declaration or on the command line) and what `auto` means on this machine.

`auto` is CUDA with bfloat16 when torch sees a GPU, else the CPU in float32. A device that this machine
lacks is a user error (`DeccError`), never a torch traceback. torch is imported only to resolve.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from decc.errors import DeccError, Span

__all__ = [
    "DEVICES",
    "DTYPES",
    "default_threads",
    "device_error",
    "dtype_error",
    "physical_cores",
    "resolve_device",
    "resolve_dtype",
    "set_threads",
]

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def device_error(value: str, span: Span | None = None) -> DeccError | None:
    """The error for a misspelled device, or None when `value` is one of `DEVICES`."""
    if _DEVICE.fullmatch(value):
        return None
    return DeccError(
        f"unknown device '{value}'",
        span,
        hints=["a device is auto (CUDA when there is a GPU, else the CPU), cpu, cuda or cuda:N"],
    )


def dtype_error(value: str, span: Span | None = None) -> DeccError | None:
    """The error for a misspelled dtype, or None when `value` is one of `DTYPES`."""
    if value in DTYPES:
        return None
    return DeccError(
        f"unknown dtype '{value}'",
        span,
        hints=["a dtype is auto (bfloat16 on CUDA, float32 on the CPU), float32, bfloat16 or float16"],
    )


def resolve_device(device: str | None, span: Span | None = None) -> str:
    """`device` as torch names it ('cpu', 'cuda', 'cuda:1'): auto (or None) picks CUDA when available.
    A device this machine lacks is a `DeccError` at `span`."""
    value = "auto" if device is None else device
    err = device_error(value, span)
    if err is not None:
        raise err
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return value
    if not torch.cuda.is_available():
        raise DeccError(
            f"device '{value}' is not available: torch finds no CUDA GPU on this machine",
            span,
            hints=["run on the CPU (--device cpu, or device: cpu in the model declaration)"],
        )
    index = int(value.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeccError(f"device '{value}' is not available: torch finds {count} CUDA GPU(s)", span)
    return value


def resolve_dtype(dtype: str | None, device: str, span: Span | None = None) -> str:
    """`dtype` by name for a model on `device` (already resolved): auto (or None) is bfloat16 on CUDA,
    float32 on the CPU."""
    value = "auto" if dtype is None else dtype
    err = dtype_error(value, span)
    if err is not None:
        raise err
    if value == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return value


def physical_cores() -> int:
    """The physical cores this process may run on (hyper-threads of one core count once), from Linux's
    CPU topology; the logical CPU count where the topology cannot be read."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(cpus) or 1
        cores.add((package, core))
    return len(cores) or 1


def default_threads() -> int:
    """`OMP_NUM_THREADS` when set, else the physical cores: torch's own default can oversubscribe a busy
    machine (a batched run was 6-14x slower than on one thread)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else physical_cores()


_defaulted = threading.Event()


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads to `threads`; None sets `default_threads()` the first time in a process and
    later leaves torch as it is (a caller's own `torch.set_num_threads` stands). Returns the count."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DeccError(f"threads must be an integer of at least 1, not {threads!r}")
    import torch

    if threads is None:
        if _defaulted.is_set():
            return torch.get_num_threads()
        _defaulted.set()
        threads = default_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
