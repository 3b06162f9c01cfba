"""Stage-two benchmark: wall time of one full LOSO run per method, on the CPU and on a GPU when present.

Data: synthetic CASME II + CK+ made by the project's own pipeline (`mer-prep synth casme2 RAW` +
`mer-prep casme2 RAW OUT`, the same for ckplus, default sizes: 12 subjects / 70 micro samples and
17 macro samples), cached under benchmarks/results/bench_train/ (or `--shards DIR`, a folder holding
both shard sets, e.g. demo/shards). For each method (erm, multitask, maml, lightman) and device it
runs `mer_train.train` with the config (only `method` changes, as in `mer-train compare`) and
reports the LOSO wall time, the process CPU time, outer steps per second over the training loops,
UF1, and the 1-minute load average before and after: on a shared machine wall time is CPU time
stretched by the load, so read them together.

`--tasks both` times the bi-level methods with the meta-batch batched by torch.func.vmap (the
default, `vmap`) and run one task at a time (`loop`, `mer_train.trainer.VMAP_TASKS = False`); `--folds N` times the first N folds only and extrapolates to the full LOSO.
On CUDA the trainer runs under bf16 autocast (`--device auto|cuda` in mer-train); without a GPU the
CUDA row says "no GPU".

`--parallel 1,2` instead times one full LOSO of the first method as Dask tasks
(`mer_train.train(..., scheduler=ADDRESS)`) on a local cluster of 1, then 2 worker processes (one
torch thread each), the cluster started before the clock; parallel efficiency = T(1) / (n * T(n)), and the workers' busy share = (sum of fold times) / (n * T(n)).
`--repeat R` runs R LOSOs (seeds s, s+1, ...) on each cluster and records each worker's resident
memory (VmRSS) and peak (VmHWM) after each: memory per worker must not grow with the folds it has
trained. The first LOSO on a cluster includes the workers' imports and their one load of the shards.

`--fold-batch 1,4,8` instead times one full LOSO of the first method in this process for each K
(`mer_train.train(..., fold_batch=K)`: K folds trained at once, vmapped over folds), on the chosen
device: folds/s, and the largest difference of a predicted probability from the K = 1 run.
`--subjects N` makes the synthetic CASME II set with N subjects (default: mer-prep's 12).

Usage: python benchmarks/bench_train.py [--config configs/lightman.yaml] [--methods erm,lightman]
       [--shards demo/shards] [--device cpu|cuda|all] [--threads 1] [--tasks vmap|loop|both] [--folds N]
       python benchmarks/bench_train.py --parallel 1,2 [--repeat 2] [--methods lightman]
       python benchmarks/bench_train.py --fold-batch 1,4,8 --config configs/ci.yaml --methods lightman --subjects 16
Writes benchmarks/results/bench_train.json (or --json; bench_train_parallel.json with --parallel,
bench_train_fold_batch.json with --fold-batch).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from synth_sets import synth_set

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("erm", "multitask", "maml", "lightman")


def make_shards(work: Path, subjects: int | None = None) -> Path:
    """work/shards/{casme2,ckplus} from synthetic raw trees, made once with the mer-prep CLI (with
    `subjects`: a CASME II of that many subjects, under work/subjects-N/)."""
    if subjects:
        work = work / f"subjects-{subjects}"
    for dataset in ("casme2", "ckplus"):
        many = ("--subjects", str(subjects)) if subjects and dataset == "casme2" else ()
        synth_set(dataset, work / "raw" / dataset, work / "shards" / dataset, ("-q", *many), ("-q",))
    return work / "shards"


def load_average() -> float:
    return os.getloadavg()[0]


def time_loso(config, data, folds: int | None) -> dict:
    """One LOSO run of `config` -> timings and metrics. With `folds`, only the first `folds` folds
    are trained (`train_fold`, on the full data) and the times are scaled to all folds."""
    import torch

    import mer_train
    from mer_train import loso, trainer

    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    if folds:
        device = loso.resolve_device(config.device)
        with loso.cpu_threads(config.threads):
            moved = data.to(device)
            fold_s = [trainer.train_fold(config, moved, fold, subject, device)["seconds"]
                      for fold, subject in enumerate(data.subjects[:folds])]
        metrics = None
    else:
        with tempfile.TemporaryDirectory(prefix="bench_train-") as out:
            metrics = mer_train.train(config.replace(out=out), data=data).metrics
        fold_s = [f["seconds"] for f in metrics["folds"]]
    if config.device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = len(data.subjects) / len(fold_s)  # extrapolation to the full LOSO (1 when complete)
    steps = len(fold_s) * config.steps
    return {"method": config.method, "device": config.device, "tasks": "vmap" if trainer.VMAP_TASKS else "loop",
            "folds_timed": len(fold_s), "folds": len(data.subjects), "steps_per_fold": config.steps,
            "loso_wall_s": wall * scale, "loso_cpu_s": cpu * scale, "train_s": sum(fold_s) * scale,
            "steps_per_s": steps / sum(fold_s), "ms_per_step": 1000 * sum(fold_s) / steps,
            "uf1": metrics and metrics["overall"]["uf1"], "uar": metrics and metrics["overall"]["uar"],
            "load_before": load_before, "load_after": load_average()}


def time_fold_batch(config, data, ks: list[int]) -> list[dict]:
    """One full LOSO of `config` in this process for each fold batch K: wall and CPU time, folds/s,
    and the largest |probability - the K = 1 run's| over every sample and class."""
    import csv

    import numpy as np
    import torch

    import mer_train
    from mer_train import loso

    rows, reference = [], None
    for k in ks:
        load_before = load_average()
        with tempfile.TemporaryDirectory(prefix="bench_train-") as out, loso.cpu_threads(config.threads):
            wall, cpu = time.perf_counter(), time.process_time()
            metrics = mer_train.train(config.replace(out=out), data=data, fold_batch=k).metrics
            if config.device == "cuda":
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            with open(Path(out) / "predictions.csv", newline="") as handle:
                probs = np.array([[float(v) for c, v in row.items() if c.startswith("p_")] for row in csv.DictReader(handle)])
        reference = probs if reference is None else reference
        folds = len(metrics["folds"])
        rows.append({"method": config.method, "device": config.device, "fold_batch": k, "folds": folds,
                     "steps_per_fold": config.steps, "loso_wall_s": wall, "loso_cpu_s": cpu, "folds_per_s": folds / wall,
                     "max_abs_prob_diff_vs_first": float(np.abs(probs - reference).max()),
                     "uf1": metrics["overall"]["uf1"], "load_before": load_before, "load_after": load_average()})
        print(fold_batch_table(rows[-1:]).splitlines()[-1], flush=True)
    for row in rows:
        row["speedup"] = row["folds_per_s"] / rows[0]["folds_per_s"]
    return rows


def fold_batch_table(rows: list[dict]) -> str:
    lines = ["| method | device | K | folds | LOSO wall | CPU time | folds/s | speed-up | max abs diff of p vs K = "
             f"{rows[0]['fold_batch']} | UF1 | load (before-after) |", "|---" * 11 + "|"]
    for r in rows:
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        lines.append(f"| {r['method']} | {r['device']} | {r['fold_batch']} | {r['folds']} | {r['loso_wall_s']:.0f} s "
                     f"| {r['loso_cpu_s']:.0f} s | {r['folds_per_s']:.3f} | {speedup} "
                     f"| {r['max_abs_prob_diff_vs_first']:.1e} | {r['uf1']:.3f} "
                     f"| {r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def worker_memory() -> dict:
    """This process's resident and peak memory in MiB (run on every worker by client.run)."""
    from mer_train.distributed import cache_info

    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    mib = {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}
    return {"rss_mib": round(mib["VmRSS"], 1), "peak_mib": round(mib["VmHWM"], 1), **cache_info()}


def time_parallel(config, worker_counts: list[int], repeat: int) -> list[dict]:
    """One LOSO of `config` as Dask tasks on local clusters of each size, `repeat` times per cluster."""
    from distributed import Client

    import mer_train
    from mer_train import distributed

    distributed.quiet_dask()
    rows = []
    for workers in worker_counts:
        start = time.perf_counter()
        with distributed.local_cluster(workers) as cluster, Client(cluster) as client:
            client.wait_for_workers(workers)
            cluster_s = time.perf_counter() - start
            for i in range(repeat):
                run = config.replace(seed=config.seed + i)
                load_before = load_average()
                wall = time.perf_counter()
                with tempfile.TemporaryDirectory(prefix="bench_train-") as out:
                    metrics = mer_train.train(run.replace(out=out), scheduler=cluster.scheduler_address).metrics
                wall = time.perf_counter() - wall
                memory = sorted(client.run(worker_memory).values(), key=lambda m: m["pid"])
                rows.append({"method": run.method, "workers": workers, "loso": i + 1, "seed": run.seed,
                             "folds": len(metrics["folds"]), "loso_wall_s": wall, "cluster_start_s": cluster_s,
                             "fold_s": sum(f["seconds"] for f in metrics["folds"]), "uf1": metrics["overall"]["uf1"],
                             "workers_memory": memory, "load_before": load_before, "load_after": load_average()})
                print(parallel_table(rows[-1:]).splitlines()[-1], flush=True)
    for row in rows:
        base = next((r for r in rows if r["workers"] == 1 and r["loso"] == row["loso"]), None)
        row["efficiency"] = base and base["loso_wall_s"] / (row["workers"] * row["loso_wall_s"])
        # the share of the workers' time spent in folds: what the orchestration loses, apart from
        # folds that run slower side by side (a shared machine, memory bandwidth)
        row["busy"] = row["fold_s"] / (row["workers"] * row["loso_wall_s"])
    return rows


def parallel_table(rows: list[dict]) -> str:
    lines = ["| method | workers | LOSO # | folds | LOSO wall | sum of fold times | efficiency | workers busy | UF1 "
             "| worker RSS / peak (MiB) | shard loads | load (before-after) |", "|---" * 12 + "|"]
    for r in rows:
        memory = ", ".join(f"{m['rss_mib']:.0f} / {m['peak_mib']:.0f}" for m in r["workers_memory"])
        loads = ", ".join(str(m["loads"]) for m in r["workers_memory"])
        efficiency = "" if r.get("efficiency") is None else f"{100 * r['efficiency']:.0f}%"
        busy = "" if r.get("busy") is None else f"{100 * r['busy']:.0f}%"
        lines.append(f"| {r['method']} | {r['workers']} | {r['loso']} | {r['folds']} | {r['loso_wall_s']:.0f} s "
                     f"| {r['fold_s']:.0f} s | {efficiency} | {busy} | {r['uf1']:.3f} | {memory} | {loads} "
                     f"| {r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = ["| method | device | meta-batch | LOSO wall | CPU time | steps/s | ms/step | UF1 | load (before-after) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['method']} | {r['device']} | | {r['skipped']} | | | | | |")
            continue
        est = "" if r["folds_timed"] == r["folds"] else f" (est. from {r['folds_timed']} folds)"
        uf1 = "" if r["uf1"] is None else f"{r['uf1']:.3f}"
        lines.append(f"| {r['method']} | {r['device']} | {r['tasks'] if r['method'] in ('maml', 'lightman') else ''} "
                     f"| {r['loso_wall_s']:.0f} s{est} | {r['loso_cpu_s']:.0f} s | {r['steps_per_s']:.2f} "
                     f"| {r['ms_per_step']:.0f} | {uf1} | {r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "lightman.yaml")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--shards", type=Path, help="a folder with casme2 and ckplus shard sets (default: made "
                        "by mer-prep under benchmarks/results/bench_train/)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="all: the CPU, then CUDA when present")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the fastest for these models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=0, help="time the first N folds only and extrapolate")
    parser.add_argument("--tasks", choices=("vmap", "loop", "both"), default="vmap",
                        help="bi-level methods: the meta-batch as one vmap batch, one task at a time, or both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--parallel", metavar="N,M", help="time one LOSO of the first method on local Dask "
                        "clusters of N, M, ... worker processes (parallel efficiency against 1 worker)")
    parser.add_argument("--repeat", type=int, default=1, help="--parallel: LOSO runs per cluster (memory check)")
    parser.add_argument("--fold-batch", metavar="K,L", help="time one LOSO of the first method for each fold "
                        "batch K, L, ... (K folds trained at once; the first K is the reference), e.g. 1,4,8")
    parser.add_argument("--subjects", type=int, help="subjects of the synthetic CASME II made here (default: 12)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    suffix = "_parallel" if args.parallel else "_fold_batch" if args.fold_batch else ""
    args.json = args.json or RESULTS / f"bench_train{suffix}.json"

    import torch

    from mer_train import loso, trainer
    from mer_train.config import load_config, parse_assignment
    from mer_train.data import load_data

    shards = args.shards or make_shards(RESULTS / "bench_train", args.subjects)
    overrides = dict(parse_assignment(a) for a in args.set)
    config = load_config(args.config, {**overrides, "shards": [str(shards)], "threads": args.threads, "seed": args.seed})
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    with loso.cpu_threads(config.threads):
        data = load_data(config)
    print(f"{args.config.name}: {len(data.y)} micro samples, {len(data.subjects)} subjects, {len(data.macro_y)} macro; "
          f"input {config.input_size}, {config.model}, {config.steps} steps, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {config.threads} thread(s)", flush=True)

    if args.parallel:
        counts = [int(n) for n in args.parallel.split(",")]
        if 1 not in counts or min(counts) < 1:
            parser.error("--parallel: the worker counts must include 1 (the baseline), e.g. --parallel 1,2")
        run = config.replace(method=args.methods.split(",")[0], device="cpu")
        rows = time_parallel(run, sorted(counts), args.repeat)
        print()
        print(parallel_table(rows))
        report = {"config": str(args.config), "resolved": {k: v for k, v in run.to_dict().items() if k not in ("shards", "out")},
                  "shards": str(shards), "machine": {"cpus": os.cpu_count(), "torch": torch.__version__}, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\n-> {args.json}")
        return

    if args.fold_batch:
        run = config.replace(method=args.methods.split(",")[0], device=devices[0])
        rows = time_fold_batch(run, data, [int(k) for k in args.fold_batch.split(",")])
        print()
        print(fold_batch_table(rows))
        report = {"config": str(args.config), "resolved": {k: v for k, v in run.to_dict().items() if k not in ("shards", "out")},
                  "shards": str(shards), "subjects": len(data.subjects), "samples": len(data.y),
                  "machine": {"cpus": os.cpu_count(), "torch": torch.__version__}, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\n-> {args.json}")
        return

    rows = []
    for device in devices:
        for method in args.methods.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                rows.append({"method": method, "device": "cuda", "skipped": "no GPU"})
                continue
            run = config.replace(method=method, device=device)
            paths = {"vmap": [True], "loop": [False], "both": [True, False]}[args.tasks]
            for vmap in (paths if method in ("maml", "lightman") else [True]):
                trainer.VMAP_TASKS = vmap
                rows.append(time_loso(run, data, args.folds or None))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
            trainer.VMAP_TASKS = True

    print()
    print(table(rows))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    report = {"config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
              "resolved": {k: v for k, v in config.to_dict().items() if k not in ("shards", "out")},
              "shards": str(shards), "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                                                 "torch": torch.__version__, "gpu": gpu},
              "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\n-> {args.json}")


if __name__ == "__main__":
    main()
