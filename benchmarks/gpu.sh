#!/usr/bin/env bash
# Every GPU figure of issue 21 item 5 in one command: the fused mask+sample kernel against torch's
# sort-based chain, XGrammar's bitmask apply + that chain and the HBM floor (sampler_kernels.py: B 1, 8,
# 64, 256 x V 49152, 128256, 151936 x fp32, bf16), then constrained against unconstrained decode
# throughput at batch 1, 8, 64, 256 on random-weight SmolLM2-shaped models over the SmolLM2 (49k) and
# Llama-3 (128k) tokenizers (throughput.py). Prints markdown tables; the raw JSON and the whole log go to
# $OUT when it is set. Each step has its own time limit (6.5 minutes in all); a step that fails or runs
# out is reported and the others still run (exit 1 then). benchmarks/README.md says what each column means.
#
# 1. Once, here (PyPI, and decc's cache with the llama-bpe vocabulary: `make vocabs`), fill the ignored
#    folder .gpu/ with what the device image lacks (about 15 MiB; the device tool carries 64 MiB):
#        benchmarks/gpu.sh --prepare
#      .gpu/wheels/      cp312 manylinux wheels, installed there offline by this script with
#                        `python3 -m pip install --no-index --no-deps --target /tmp/decc-gpu/site-{decc,peers} ...`
#                        and put on PYTHONPATH: lark, jsonschema (+ jsonschema-specifications, referencing,
#                        rpds-py) for decc; xgrammar (+ apache-tvm-ffi, pydantic, pydantic-core,
#                        annotated-types, typing-inspection, typing-extensions) for the XGrammar column.
#      .gpu/tokenizers/  <name>.tar.gz: tokenizer files only, no weights: smollm2 (the embedded model's)
#                        and llama-bpe (Llama-3, 128k).
#    decc is not installed there: this script lays its packages out under /tmp/decc-gpu/src from
#    pyproject.toml's package-dir (symlinks into the working tree; `--layout DEST` does only that).
# 2. On the device (the `device` tool's run), from the repository root:
#        command: bash benchmarks/gpu.sh      carry: [".gpu"]      timeout_s: 480
# 3. Here, at tiny sizes on the CPU (the Triton kernel interpreted; tests/test_gpu_bench.py runs it):
#        benchmarks/gpu.sh --smoke
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-run}
WORK=${DECC_GPU_WORK:-/tmp/decc-gpu}
WHEELS=(lark==1.3.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
    rpds-py==2026.9.1 xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2 pydantic==2.14.4 pydantic-core==2.50.5
    annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0)
TOKENIZERS=(smollm2=default llama-bpe=llama-bpe) # carried name = decc tokenizer name here

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi

prepare() {
    set -e
    rm -rf .gpu
    mkdir -p .gpu/wheels .gpu/tokenizers
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels "${WHEELS[@]}"
    local pair name folder stage f
    for pair in "${TOKENIZERS[@]}"; do
        name=${pair%%=*}
        folder=$("$PYTHON" -c "import sys; from decc.runtime.model import load_tokenizer
print(load_tokenizer(sys.argv[1]).name_or_path)" "${pair#*=}")
        stage=$(mktemp -d)
        mkdir "$stage/$name"
        for f in tokenizer.json tokenizer_config.json special_tokens_map.json chat_template.jinja; do
            if [ -f "$folder/$f" ]; then cp "$folder/$f" "$stage/$name/"; fi
        done
        tar -czf ".gpu/tokenizers/$name.tar.gz" -C "$stage" "$name"
        rm -rf "$stage"
    done
    du -sh .gpu
    echo "device: command 'bash benchmarks/gpu.sh', carry ['.gpu'], timeout_s 480"
}

layout() { # layout DEST: decc's packages as installed (pyproject.toml's package-dir), symlinked files
    rm -rf "$1"
    (cd / && "$PYTHON" - "$ROOT" "$1" <<'PY'
import sys, tomllib
from pathlib import Path

root, dest = Path(sys.argv[1]), Path(sys.argv[2])
dirs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
for package, folder in dirs.items():
    target = dest.joinpath(*package.split("."))
    target.mkdir(parents=True, exist_ok=True)
    for f in (root / folder).iterdir():
        if f.is_file() and f.suffix in (".py", ".lark"):
            (target / f.name).symlink_to(f)
PY
    )
}

case $MODE in
--prepare)
    prepare
    exit $?
    ;;
--layout)
    layout "${2:?usage: gpu.sh --layout DEST}"
    exit $?
    ;;
--smoke) SMOKE=1 ;;
run) SMOKE=0 ;;
*)
    echo "usage: benchmarks/gpu.sh [--smoke | --prepare | --layout DEST]" >&2
    exit 2
    ;;
esac

RAW=${OUT:-}
if [ -z "$RAW" ]; then RAW=$(mktemp -d); fi
mkdir -p "$RAW" "$WORK"
exec > >(tee "$RAW/gpu.log") 2>&1
TEE_PID=$!
finish() { # finish STATUS: let tee write the log's last lines before the device tool ends what is left
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
    exit "$1"
}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error

# The carried wheels (on the device only: they are cp312 builds for the image's Python), in two groups so
# that a peer's wheel that does not install never costs decc its own; typing-extensions only where the
# image's is older than the one pydantic needs (PYTHONPATH goes before the image's packages).
if [ $SMOKE = 0 ] && compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    te_ok=$("$PYTHON" -c "import importlib.metadata as m
v = tuple(int(p) for p in m.version('typing_extensions').split('.')[:2]); print(int(v >= (4, 16)))" 2>/dev/null)
    DECC_WHL=()
    PEER_WHL=()
    for w in .gpu/wheels/*.whl; do
        case ${w##*/} in
        lark-* | jsonschema-* | jsonschema_specifications-* | referencing-* | rpds_py-*) DECC_WHL+=("$w") ;;
        typing_extensions-*) if [ "${te_ok:-0}" != 1 ]; then PEER_WHL+=("$w"); fi ;;
        *) PEER_WHL+=("$w") ;;
        esac
    done
    for group in decc peers; do
        if [ $group = decc ]; then files=("${DECC_WHL[@]}"); else files=("${PEER_WHL[@]}"); fi
        if [ ${#files[@]} = 0 ]; then continue; fi
        if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$WORK/site-$group" "${files[@]}"; then
            export PYTHONPATH="$WORK/site-$group${PYTHONPATH:+:$PYTHONPATH}"
        else
            echo "note: installing the carried $group wheels failed; going on without them"
        fi
    done
fi
# decc importable: installed (a dev venv), else laid out from this tree.
if ! (cd / && "$PYTHON" -c "import decc.runtime.batch" 2>/dev/null); then
    layout "$WORK/src"
    export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
fi
# The carried tokenizers, unpacked, and decc's caches in the scratch folder (not for the smoke run: it
# reads the embedded tokenizer from the usual cache).
if [ $SMOKE = 0 ]; then
    for t in .gpu/tokenizers/*.tar.gz; do
        if [ -f "$t" ]; then mkdir -p "$WORK/tok" && tar -xzf "$t" -C "$WORK/tok"; fi
    done
    export DECC_CACHE=${DECC_CACHE:-$WORK/cache}
fi

echo "# decc GPU benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo
if command -v nvidia-smi >/dev/null; then nvidia-smi -L; fi
(cd / && "$PYTHON" - <<'PY'
import importlib, importlib.metadata
for name in ("torch", "triton", "transformers", "xgrammar", "lark", "jsonschema", "decc"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        print(f"- {name}: not usable ({type(exc).__name__}: {str(exc)[:100]})")
        continue
    try:
        print(f"- {name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        print(f"- {name} (from {module.__file__})")
import torch
print(f"- CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}")
PY
) || echo "note: the environment report failed"

STATUS=()
step() { # step NAME SECONDS COMMAND...: run it under a time limit, note how it ended, go on regardless
    local name=$1 limit=$2 start=$SECONDS rc how=ok
    shift 2
    printf '\n## %s\n\n' "$name"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        how="TIMED OUT after ${limit}s"
    elif [ $rc != 0 ]; then
        how="FAILED (exit $rc)"
    fi
    STATUS+=("| $name | $how | $((SECONDS - start)) s |")
}

if [ $SMOKE = 1 ]; then
    step "kernels (smoke)" 300 "$PYTHON" benchmarks/sampler_kernels.py --smoke --dtypes bf16 \
        --json "$RAW/kernels.json"
    step "throughput, tiny random model (smoke)" 300 "$PYTHON" benchmarks/throughput.py --smoke \
        --model random --config tiny --tokenizer default --schema bounded,free --json "$RAW/throughput.json"
else
    step "kernels" 150 "$PYTHON" benchmarks/sampler_kernels.py --batches 1,8,64,256 \
        --vocabs 49152,128256,151936 --dtypes bf16,fp32 --sampling topp,plain --json "$RAW/kernels.json"
    for pair in "${TOKENIZERS[@]}"; do
        name=${pair%%=*}
        if [ ! -d "$WORK/tok/$name" ]; then
            printf '\n## throughput, %s: skipped (.gpu/tokenizers/%s.tar.gz not carried)\n' "$name" "$name"
            STATUS+=("| throughput, $name tokenizer | skipped: not carried (gpu.sh --prepare) | 0 s |")
            continue
        fi
        step "throughput, random SmolLM2-shaped model, $name tokenizer" 120 "$PYTHON" benchmarks/throughput.py \
            --model random --config smollm2 --tokenizer "$WORK/tok/$name" --schema bounded,free \
            --batches 1,8,64,256 --tokens 32 --repeats 3 --device cuda --dtype bfloat16 \
            --json "$RAW/throughput-$name.json"
    done
fi

printf '\n## issue 21 targets\n\n'
(cd / && "$PYTHON" - "$RAW" <<'PY'
import json, sys
from pathlib import Path

raw = Path(sys.argv[1])
print("| target | case | figure | met |\n| --- | --- | --- | --- |")
kernels = json.loads((raw / "kernels.json").read_text())["rows"] if (raw / "kernels.json").is_file() else []
for r in kernels:
    if (r["batch"], r["vocab"], r["sampling"]) != (256, 128256, "topp"):
        continue
    fused, floor, chain = r["fused_s"], r["floor_s"], r["torch_chain_s"]
    if not isinstance(fused, float):
        print(f"| fused sampler | B 256, V 128256, {r['dtype']}, top-p | {fused} | no |")
        continue
    print(f"| fused within 2x of the HBM floor | B 256, V 128256, {r['dtype']}, top-p | {fused / floor:.2f}x "
          f"| {'yes' if fused <= 2 * floor else 'no'} |")
    if isinstance(chain, float):
        print(f"| fused 5x faster than torch's sort top-p | B 256, V 128256, {r['dtype']}, top-p "
              f"| {chain / fused:.2f}x | {'yes' if chain >= 5 * fused else 'no'} |")
for path in sorted(raw.glob("throughput*.json")):
    report = json.loads(path.read_text())
    for r in report["rows"]:
        if r["batch"] == 64 and "ratio" in r:
            print(f"| constrained within 5% of unconstrained | batch 64, {Path(report['tokenizer']).name} "
                  f"tokenizer, {r['schema']} schema, {r['loops']['json']} loop | {r['ratio']:.3f} "
                  f"| {'yes' if r['ratio'] >= 0.95 else 'no'} |")
PY
) || echo "note: reading the results failed"

printf '\n## summary\n\n| step | result | time |\n| --- | --- | --- |\n'
printf '%s\n' "${STATUS[@]}"
printf '\nraw results: %s\n' "$RAW"
for line in "${STATUS[@]}"; do
    case $line in *"| ok |"*) ;; *) finish 1 ;; esac
done
finish 0
