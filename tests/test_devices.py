"""Devices, dtypes and threads: `model ... { device: D, dtype: T }`, `decc run --device/--dtype/--threads`
and `decc.load(device=, dtype=, threads=)`. A misspelling is an error at its position; a device this
machine lacks is a clean user error (exit 2); a bfloat16 run decodes values valid under their constraints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import decc
from decc import devices
from decc.cli import main
from decc.dsl import ast, parse
from decc.dsl.format import format_source

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks how a machine without CUDA answers")


def test_model_options_parse_with_their_spans() -> None:
    src = 'model default { device: "cuda:1", dtype: bfloat16 }\n"x"\n'
    (decl, _) = parse(src).items
    assert isinstance(decl, ast.ModelDecl) and decl.spec == "default"
    device, dtype = decl.option("device"), decl.option("dtype")
    assert device is not None and dtype is not None
    assert isinstance(device.value, ast.StrLit) and device.value.value == "cuda:1"
    assert src[device.value.span.start : device.value.span.end] == '"cuda:1"'
    assert isinstance(dtype.value, ast.NameRef) and (dtype.value.span.line, dtype.value.span.col) == (1, 42)
    plain = parse("model default\n").items[0]
    assert isinstance(plain, ast.ModelDecl) and plain.options == () and plain.option("device") is None


@pytest.mark.parametrize(
    ("src", "bad", "message"),
    [
        ("model default { dtype: float64 }", "float64", "unknown dtype 'float64'"),
        ('model default { device: "gpu" }', '"gpu"', "unknown device 'gpu'"),
        ("model default { device: cuda:0 }", ":0", "unexpected"),  # cuda:N is written as a string
        ('model "m" {\n  devise: cpu\n}', "devise", "unknown model option 'devise'"),
        ("model default { device: 3 }", "3", "device is a name or a string"),
        (
            "model default { dtype: auto, dtype: float16 }",
            "dtype: float16",
            "model option 'dtype' given twice",
        ),
    ],
)
def test_bad_model_options_are_positioned(src: str, bad: str, message: str) -> None:
    with pytest.raises(decc.DeccError) as info:
        decc.loads(src + '\n"x"\n', "p.dec")
    err = info.value
    assert message in err.message and err.span is not None
    at = src.index(bad, src.index("{"))
    assert err.span.start == at
    if message != "unexpected":  # a syntax error marks one character
        assert err.span.end == at + len(bad)
    else:
        assert list(err.hints) == ['a device with an index is written as a string: device: "cuda:1"']


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
@pytest.mark.parametrize("dtype", devices.DTYPES)
def test_every_spelling_parses_and_formats_canonically(device: str, dtype: str) -> None:
    written = device if ":" not in device else f'"{device}"'
    src = f"model   default{{dtype :{dtype} ,\ndevice:{written}}}\n"
    out = format_source(src)
    assert out == f"model default {{ dtype: {dtype}, device: {written} }}\n"
    assert format_source(out) == out


def test_a_comment_among_model_options_keeps_the_block_form() -> None:
    src = 'model "m" { # where\n device: cpu\n}\n'
    assert format_source(src) == 'model "m" {  # where\n  device: cpu\n}\n'


def test_auto_is_cuda_in_bfloat16_with_a_gpu_else_cpu_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    for gpus in (0, 2):
        monkeypatch.setattr(torch.cuda, "is_available", lambda gpus=gpus: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda gpus=gpus: gpus)
        where = devices.resolve_device("auto")
        assert where == ("cuda" if gpus else "cpu") == devices.resolve_device(None)
        assert devices.resolve_dtype("auto", where) == ("bfloat16" if gpus else "float32")
        assert devices.resolve_dtype("float16", where) == "float16"
        if gpus:
            assert devices.resolve_device("cuda:1") == "cuda:1"
            with pytest.raises(decc.DeccError, match="finds 2 CUDA GPU"):
                devices.resolve_device("cuda:2")


@NO_GPU
def test_a_missing_gpu_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "p.dec"
    prog.write_text('"Q"\ngen a { max_tokens: 2 }\n')
    assert main(["run", str(prog), "--device", "cuda", "--json"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda' is not available" in err and "Traceback" not in err
    prog.write_text('model default {\n  device: "cuda:0"\n}\n"Q"\ngen a { max_tokens: 2 }\n')
    assert main(["run", str(prog), "--json"]) == 2
    assert f"{prog}:2:11: error: device 'cuda:0' is not available" in capsys.readouterr().err
    assert main(["run", str(prog), "--json", "--device", "cpu", "--dtype", "float64"]) == 2
    assert "--dtype: unknown dtype 'float64'" in capsys.readouterr().err
    with pytest.raises(decc.DeccError, match="unknown device 'tpu'"):
        decc.load(prog, device="tpu")
    with pytest.raises(decc.DeccError, match="threads must be an integer of at least 1"):
        decc.load(prog, threads=0)


def test_threads_default_to_the_physical_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default is OMP_NUM_THREADS when set, else the physical cores (counted from the CPU topology,
    never more than the CPUs this process may use); `threads` sets torch's count."""
    cores = devices.physical_cores()
    allowed = os.sched_getaffinity(0)
    assert 1 <= cores <= len(allowed)
    if shutil.which("lscpu"):  # util-linux's own count: (core, socket) pairs of the CPUs we may use
        rows = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True).stdout
        pairs = {
            tuple(r.split(",")[1:])
            for r in rows.splitlines()
            if r[:1].isdigit() and int(r.split(",")[0]) in allowed
        }
        assert cores == len(pairs)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert devices.default_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert devices.default_threads() == 3
    before = torch.get_num_threads()
    try:
        assert devices.set_threads(2) == 2 == torch.get_num_threads()
        torch.set_num_threads(1)
        devices.set_threads(None)  # the default is set once per process: here, or by an earlier run
        assert devices.set_threads(None) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.model
@NO_GPU
def test_float32_and_bfloat16_runs_give_valid_values() -> None:
    """examples/hello.dec in float32 (auto, here) and in bfloat16 from the declaration: both dates match
    the constraint; the models are loaded once per (device, dtype)."""
    from decc.runtime.model import load_language_model

    date = r"(1[0-9]|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    src = (ROOT / "examples" / "hello.dec").read_text()
    auto = decc.loads(src, "p.dec", threads=1)
    bf16 = decc.loads(src.replace("model default", "model default { dtype: bfloat16 }"), "q.dec", threads=1)
    lm32, lm16 = auto.language_model(), bf16.language_model()
    assert lm32 is load_language_model("default", "cpu", "float32") is load_language_model("default")
    assert (lm32.engine.dtype, lm16.engine.dtype) == (torch.float32, torch.bfloat16)
    assert lm16 is decc.loads(src, "r.dec", dtype="bfloat16").language_model()
    for program in (auto, bf16):
        assert re.fullmatch(date, program.run().values["date"])


@pytest.mark.model
def test_the_cli_runs_in_bfloat16_and_prints_nothing_else(tmp_path: Path) -> None:
    prog = tmp_path / "p.dec"
    prog.write_text('"Q: 2+2=? A:"\ngen a { where: regex(r"[0-9]{1,2}") max_tokens: 3 }\n')
    out = subprocess.run(
        [sys.executable, "-W", "always", "-m", "decc", "run", str(prog), "--device", "cpu"]
        + ["--dtype", "bfloat16", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert re.fullmatch(r"a: [0-9]{1,2}\n", out.stdout)
