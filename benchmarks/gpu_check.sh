#!/usr/bin/env bash
# The CUDA + bf16 path of stage two, checked in one go on a machine with one GPU (< 5 minutes):
#   1. every method (erm, multitask, maml, lightman) trains a LOSO of configs/ci.yaml on a small
#      synthetic CASME II + CK+ set on the GPU (bf16 autocast) and on the CPU: finite losses, UF1
#      close to the CPU run's; lightman also through a Dask worker on the GPU (--workers 1);
#   2. the CUDA column of benchmarks/bench_train.py (configs/lightman.yaml, 2 folds, extrapolated);
#   3. fold-batch speed at K = 1, 8, 68 on a 68-subject set, when mer-train has --fold-batch.
# It ends with a markdown table to paste into docs/performance.md (also written to WORK/gpu_check.md).
#
#   benchmarks/gpu_check.sh                  # on the GPU machine, from anywhere in the repository
#   benchmarks/gpu_check.sh --cpu-dry-run    # the same steps on the CPU with tiny sizes: tests the
#                                            # plumbing on a machine without a GPU; its figures mean nothing
# Options: --shards DIR (a folder holding casme2 and ckplus shard sets; default: made here with
# `mer-prep synth` + `mer-prep`), --work DIR (scratch, default benchmarks/results/gpu_check).
# Environment: PYTHON (default: the repository's .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BIN="$(dirname "$PY")"
WORK="$ROOT/benchmarks/results/gpu_check"
SHARDS=""
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-dry-run) DRY=1 ;;
        --shards) SHARDS="$(cd "$2" && pwd)"; shift ;;
        --work) WORK="$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
CORES="$(nproc)"
STEP_LIMIT=300  # seconds: no single step may hang the check

if [ "$DRY" = 1 ]; then
    DEVICE=cpu; SUBJECTS=4; CLIPS=3; BIG_SUBJECTS=6; KS="1 2 6"
    TRAIN_SET=(--set steps=2); BENCH=(--config "$ROOT/configs/ci.yaml" --folds 1 --set steps=2)
else
    DEVICE=cuda; SUBJECTS=6; CLIPS=4; BIG_SUBJECTS=68; KS="1 8 68"
    TRAIN_SET=(); BENCH=(--folds 2)
fi

say() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

say "environment"
"$PY" - "$DEVICE" <<'EOF'
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("gpu_check.sh: torch sees no CUDA device (check nvidia-smi and a CUDA build of torch); "
                 "--cpu-dry-run checks the script itself without a GPU")
    for i in range(torch.cuda.device_count()):
        print(f"GPU {i}: {torch.cuda.get_device_name(i)}, bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF
command -v nvidia-smi >/dev/null && [ "$DEVICE" = cuda ] && nvidia-smi -L || true

make_set() {  # make_set DATASET NAME SUBJECTS CLIPS -> prints the shard set's path
    local raw="$WORK/raw/$2" out="$WORK/shards/$2"
    if [ ! -f "$out/manifest.json" ]; then
        rm -rf "$raw"
        timeout "$STEP_LIMIT" "$BIN/mer-prep" synth "$1" "$raw" --subjects "$3" --clips-per-subject "$4" >&2
        timeout "$STEP_LIMIT" "$BIN/mer-prep" "$1" "$raw" "$out" --workers "$CORES" --shard-size 8 -q >&2
    fi
    echo "$out"
}

say "shard sets"
if [ -z "$SHARDS" ]; then
    mkdir -p "$WORK/sets/small"
    ln -sfn "$(make_set casme2 casme2-small "$SUBJECTS" "$CLIPS")" "$WORK/sets/small/casme2"
    ln -sfn "$(make_set ckplus ckplus-small 4 4)" "$WORK/sets/small/ckplus"
    SHARDS="$WORK/sets/small"
fi
ls "$SHARDS"

say "every method on $DEVICE and on the CPU (configs/ci.yaml)"
RUNS="$WORK/runs"
rm -rf "$RUNS"
mkdir -p "$RUNS"
train() {  # train NAME ARGS... : one mer-train run into RUNS/NAME, its wall time in RUNS/NAME.seconds
    local name="$1"; shift
    local start=$SECONDS
    timeout "$STEP_LIMIT" "$BIN/mer-train" --shards "$SHARDS" --config "$ROOT/configs/ci.yaml" --out "$RUNS/$name" \
        -q "${TRAIN_SET[@]}" "$@" | tail -n 1
    echo $((SECONDS - start)) > "$RUNS/$name.seconds"
}
for method in erm multitask maml lightman; do
    train "$method-cpu" --method "$method" --device cpu --workers "$(( CORES < 8 ? CORES : 8 ))"
    train "$method-$DEVICE-gpu" --method "$method" --device "$DEVICE" --scheduler synchronous
done
train "lightman-$DEVICE-gpu-worker" --method lightman --device "$DEVICE" --workers 1

say "bench_train, $DEVICE column"
timeout "$STEP_LIMIT" "$PY" "$ROOT/benchmarks/bench_train.py" --shards "$SHARDS" --device "$DEVICE" \
    --methods erm,lightman "${BENCH[@]}" --json "$WORK/bench_train_$DEVICE.json" | tail -n 4

say "fold-batch at K = $KS"
FOLD_BATCH="$WORK/fold_batch.tsv"
: > "$FOLD_BATCH"
if "$BIN/mer-train" train --help | grep -q -- "--fold-batch"; then
    mkdir -p "$WORK/sets/big"
    ln -sfn "$(make_set casme2 "casme2-$BIG_SUBJECTS" "$BIG_SUBJECTS" 2)" "$WORK/sets/big/casme2"
    ln -sfn "$WORK/shards/ckplus-small" "$WORK/sets/big/ckplus"
    for k in $KS; do
        start=$SECONDS
        timeout "$STEP_LIMIT" "$BIN/mer-train" --shards "$WORK/sets/big" --config "$ROOT/configs/ci.yaml" \
            --method lightman --device "$DEVICE" --scheduler synchronous --fold-batch "$k" \
            --out "$RUNS/fold-batch-$k" -q "${TRAIN_SET[@]}" | tail -n 1
        printf '%s\t%s\n' "$k" $((SECONDS - start)) >> "$FOLD_BATCH"
    done
else
    echo "mer-train has no --fold-batch in this tree: skipped"
fi

say "summary"
"$PY" - "$RUNS" "$DEVICE" "$WORK/bench_train_$DEVICE.json" "$FOLD_BATCH" "$DRY" <<'EOF' | tee "$WORK/gpu_check.md"
import json, math, sys
from pathlib import Path

runs, device, bench, fold_batch, dry = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5] == "1"
TOLERANCE = 0.10  # |UF1 GPU - UF1 CPU|: bf16 autocast changes the rounding, not the method

def run(name):
    metrics = json.loads((runs / name / "metrics.json").read_text())
    losses = [f["final_loss"] for f in metrics["folds"]]
    return metrics, all(math.isfinite(x) for x in losses), int((runs / f"{name}.seconds").read_text())

failed = []
print(("CPU DRY RUN (plumbing only; every 'GPU' column ran on the CPU)\n\n" if dry else "") +
      f"| method | device | UF1 CPU | UF1 {device} | abs diff | losses finite | wall CPU / {device} | check |")
print("|---|---|---|---|---|---|---|---|")
for method in ("erm", "multitask", "maml", "lightman"):
    (cpu, cpu_ok, cpu_s), (gpu, gpu_ok, gpu_s) = run(f"{method}-cpu"), run(f"{method}-{device}-gpu")
    diff = abs(gpu["overall"]["uf1"] - cpu["overall"]["uf1"])
    ok = cpu_ok and gpu_ok and diff <= TOLERANCE and gpu["device"].startswith(device)
    failed += [] if ok else [method]
    print(f"| {method} | {gpu['device']} | {cpu['overall']['uf1']:.3f} | {gpu['overall']['uf1']:.3f} | {diff:.3f} "
          f"| {'yes' if cpu_ok and gpu_ok else 'NO'} | {cpu_s} s / {gpu_s} s | {'ok' if ok else 'FAIL'} |")
worker, worker_ok, worker_s = run(f"lightman-{device}-gpu-worker")
same = worker["overall"]["uf1"] == run(f"lightman-{device}-gpu")[0]["overall"]["uf1"]
print(f"| lightman, Dask worker | {worker['device']} | | {worker['overall']['uf1']:.3f} | "
      f"{'same UF1 as in-process' if same else 'UF1 differs from in-process'} | {'yes' if worker_ok else 'NO'} "
      f"| {worker_s} s | {'ok' if worker_ok and worker['device'].startswith(device) else 'FAIL'} |")
failed += [] if worker_ok and worker["device"].startswith(device) else ["lightman on a Dask worker"]

rows = json.loads(bench.read_text())["rows"]
print(f"\nbench_train, {device} (configs/lightman.yaml unless the dry run says otherwise; est. from "
      f"{rows[0].get('folds_timed', '?')} folds)\n\n| method | LOSO wall | steps/s | ms/step |\n|---|---|---|---|")
for r in rows:
    if r.get("skipped"):
        print(f"| {r['method']} | {r['skipped']} | | |")
    else:
        print(f"| {r['method']} | {r['loso_wall_s']:.0f} s | {r['steps_per_s']:.2f} | {r['ms_per_step']:.0f} |")

lines = [line.split("\t") for line in fold_batch.read_text().splitlines() if line]
if lines:
    folds = len(json.loads((runs / f"fold-batch-{lines[0][0]}" / "metrics.json").read_text())["folds"])
    print(f"\nfold-batch, lightman, configs/ci.yaml, {folds} folds\n\n| K | LOSO wall | folds/s |\n|---|---|---|")
    for k, seconds in lines:
        print(f"| {k} | {seconds} s | {folds / max(int(seconds), 1):.2f} |")
else:
    print("\nfold-batch: not run (mer-train has no --fold-batch in this tree)")
print("\n" + ("FAILED: " + ", ".join(failed) if failed else "all checks passed"))
sys.exit(1 if failed else 0)
EOF
echo "total ${SECONDS} s; table in $WORK/gpu_check.md"
