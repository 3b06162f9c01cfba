"""Stage-one benchmark: mer-prep vs a peer-style reference vs the floor, side by side in one run.

On a synthetic CASME II-scale tree (26 subjects, ~255 clips, 640x480) it measures:
- ours: `mer_pipeline.prepare` with 1 and 2 local Dask workers (fresh output each time);
- reference: how published MER code usually does it: sequential, every frame of onset..offset
  read, dlib detection + landmarks on every frame, each frame cropped by its own face box,
  OpenCV TV-L1 with default parameters, one .npy per sample;
- floor: the unavoidable work with ours' own functions: decode onset and apex only, one detection,
  the same warp and head-motion removal (so TV-L1 gets the pair ours flows), one TV-L1, nothing else,
  in one fresh process; and the floor as two processes on half the clips each: the machine's own
  1 -> 2 process scaling on this work, the ceiling for ours.
For ours it also reports where the wall time goes (Dask's task stream: each worker's compute, its
wait before the first and after the last shard, the parent's CPU for scheduler and client).
Floor, ours 1w, ours 2w and the 2-process floor run in interleaved rounds (`--repeat`, default 3)
and each rate is the median over the rounds: on a shared machine single runs vary by ~10%.
It prints clips/s, speed-up over the reference, parallel efficiency 1 -> 2 workers, overhead over
the floor, and peak memory per worker; `--scale 4` repeats ours on 4x the clips to show memory per
worker does not grow with the dataset. It also reports the end-point error of TV-L1 settings
against the planted truth (`--tvl1-study`).

Usage: python benchmarks/bench_prep.py [--subjects 26 --clips-per-subject 10] [--repeat 3] [--scale 4]
       [--reference-clips 60 | --skip-reference] [--tvl1-study] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate_tree(work: Path, subjects: int, clips: int, seed: int = 0) -> Path:
    from mer_pipeline.synth import generate

    raw = work / f"raw-{subjects}x{clips}-s{seed}"
    if not (raw / "synth_truth.json").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        started = time.perf_counter()
        generate("casme2", raw, subjects=subjects, clips_per_subject=clips, seed=seed)
        print(f"generated {raw.name} in {time.perf_counter() - started:.1f} s")
    return raw


def run_ours(raw: Path, out: Path, workers: int, config, shard_size: int = 64) -> dict:
    from distributed import Client, LocalCluster, get_task_stream

    from mer_pipeline.runner import prepare

    shutil.rmtree(out, ignore_errors=True)
    # Start the cluster outside the clock; a user pays it once per run (~1-2 s), reported apart.
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        startup = time.perf_counter() - t0
        client.run(_warm_worker, config.backend)
        cpu_before, wall_before = os.times(), time.time()
        with get_task_stream(client) as stream:
            started = time.perf_counter()
            summary = prepare("casme2", raw, out, config=config, scheduler=cluster.scheduler_address,
                              shard_size=shard_size, progress=False)
            seconds = time.perf_counter() - started
        cpu_after = os.times()
        peaks = client.run(_peak_rss_mb)
    clips = summary.ok + summary.failed
    parent_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds, "startup_s": startup,
            "peak_rss_mb_per_worker": max(peaks.values()), "bytes": sum(p.stat().st_size for p in (out / "shards").iterdir()),
            "where_time_goes": time_breakdown(stream.data, wall_before, seconds, parent_cpu)}


def time_breakdown(tasks: list[dict], wall_start: float, seconds: float, parent_cpu_s: float) -> dict:
    """Where a run's wall time goes, from Dask's task stream: per worker, its tasks' compute time,
    the wait before its first task (tree scan, planning, submission) and after its last one (the
    other worker still busy: uneven tasks), and the CPU the parent process (scheduler, client,
    progress events) took from the same cores. `shards` lists every task (parts and writers)."""
    per_worker: dict[str, dict] = {}
    shards = []
    for task in tasks:
        for span in task.get("startstops", ()):
            if span["action"] != "compute":
                continue
            row = per_worker.setdefault(task["worker"], {"compute_s": 0.0, "first": span["start"], "last": span["stop"]})
            row["compute_s"] += span["stop"] - span["start"]
            row["first"], row["last"] = min(row["first"], span["start"]), max(row["last"], span["stop"])
            shards.append({"worker": task["worker"], "start_s": span["start"] - wall_start,
                           "seconds": span["stop"] - span["start"]})
    workers = [{"compute_s": r["compute_s"], "before_first_s": r["first"] - wall_start,
                "after_last_s": wall_start + seconds - r["last"],
                "gaps_s": (r["last"] - r["first"]) - r["compute_s"]} for r in per_worker.values()]
    return {"workers": workers, "shards": sorted(shards, key=lambda r: r["start_s"]), "parent_cpu_s": parent_cpu_s}


def run_ours_shard_tasks(raw: Path, out: Path, config, shard_size: int) -> dict:
    """Ours with 2 workers as it was scheduled before a shard's clips were split into parts: one
    Dask task per shard (the same bytes)."""
    from mer_pipeline import runner

    split = runner._part_size
    runner._part_size = lambda total, workers: max(total, 1)
    try:
        return run_ours(raw, out, 2, config, shard_size)
    finally:
        runner._part_size = split


def _warm_worker(backend: str) -> None:
    from mer_pipeline.face import get_backend

    get_backend(backend)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over fork + exec, so a worker spawned from a large parent reports the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clip_list(raw: Path):
    from mer_pipeline.datasets import get_adapter

    return sorted(get_adapter("casme2").scan(raw).samples, key=lambda s: s.sample_id)


def median_run(rows: list[dict]) -> dict:
    """The run with the median rate; peak memory is the largest seen in any run."""
    middle = dict(sorted(rows, key=lambda r: r["clips_per_s"])[len(rows) // 2])
    if "peak_rss_mb_per_worker" in middle:
        middle["peak_rss_mb_per_worker"] = max(r["peak_rss_mb_per_worker"] for r in rows)
    return middle


def run_reference(raw: Path, out: Path, limit: int | None = None) -> dict:
    """Peer style: everything per frame, sequential, defaults. `limit`: the first N clips only (it is
    slow; clips/s is a rate, so a subset measures it)."""
    import cv2
    import dlib

    from mer_pipeline.face import face_models_dir

    cv2.setNumThreads(1)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(face_models_dir() / "shape_predictor_68_face_landmarks.dat"))
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    samples = clip_list(raw)[:limit]
    started = time.perf_counter()
    for sample in samples:
        apex = sample.apex if sample.apex is not None else (sample.onset + sample.offset) // 2
        crops = {}
        for number in sorted(n for n in sample.frames if sample.onset <= n <= sample.offset):
            grey = cv2.cvtColor(cv2.imread(str(sample.frames[number])), cv2.COLOR_BGR2GRAY)
            boxes = detector(grey, 1)
            if not boxes:
                continue
            box = boxes[0]
            predictor(grey, box)  # landmarks on every frame, as peer code does for its crops
            top, bottom = max(box.top(), 0), min(box.bottom(), grey.shape[0])
            left, right = max(box.left(), 0), min(box.right(), grey.shape[1])
            crops[number] = cv2.resize(grey[top:bottom, left:right], (128, 128))
        first = crops.get(sample.nearest_frame(sample.onset))
        peak = crops.get(sample.nearest_frame(apex))
        if first is None or peak is None:
            continue
        flow = tvl1.calc(first, peak, None)
        np.save(out / f"{sample.subject}_{sample.clip}.npy", flow)
    seconds = time.perf_counter() - started
    return {"clips": len(samples), "seconds": seconds, "clips_per_s": len(samples) / seconds}


def run_floor(raw: Path, config, part: int = 0, parts: int = 1) -> dict:
    """The unavoidable work of one clip with ours' own code: decode the onset and apex frames
    (`read_grey`), one detection (the same half-resolution-first pass), the same warp into the
    aligned crop, the head-motion removal that makes the pair ours flows (without it TV-L1 works
    on a larger motion and takes longer than ours does), one TV-L1; nothing else (no frame guard,
    strain, shard writing, Dask). With `parts`, only every parts-th clip from `part`."""
    import cv2

    from mer_pipeline import align
    from mer_pipeline.face import get_backend
    from mer_pipeline.flow import compute_flow
    from mer_pipeline.frames import read_grey

    cv2.setNumThreads(1)
    backend = get_backend(config.backend)
    samples = clip_list(raw)[part::parts]
    wall, started = time.time(), time.perf_counter()
    for sample in samples:
        apex = sample.apex if sample.apex is not None else (sample.onset + sample.offset) // 2
        onset = read_grey(sample.frames[sample.nearest_frame(sample.onset)])
        peak = read_grey(sample.frames[sample.nearest_frame(apex)])
        face = backend.detect(onset)
        matrix = align.alignment_transform(face.anchors, config.size)
        onset, peak = align.warp(onset, matrix, config.size), align.warp(peak, matrix, config.size)
        if config.stabilize:
            region = align.face_mask(align.transform_points(face.landmarks, matrix), config.size)
            peak = align.remove_head_motion(peak, align.estimate_head_motion(onset, peak, region))
        compute_flow(onset, peak, config.flow, config.tvl1)
    seconds = time.perf_counter() - started
    return {"clips": len(samples), "seconds": seconds, "clips_per_s": len(samples) / seconds,
            "wall_start": wall, "wall_end": wall + seconds}


def run_floor_processes(raw: Path, config, processes: int) -> dict:
    """The floor in `processes` fresh processes (spawned, like Dask's workers), 1/processes of the
    clips each. One process is the floor proper; two are what this machine itself gives from 1 to 2
    processes on this work (shared caches and memory bandwidth, other jobs), the ceiling for ours."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(run_floor, [raw] * processes, [config] * processes, range(processes),
                              [processes] * processes))
    clips = sum(p["clips"] for p in parts)
    seconds = max(p["wall_end"] for p in parts) - min(p["wall_start"] for p in parts)
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds}


def tvl1_study(raw: Path, limit: int = 40) -> list[dict]:
    """End-point error of flow settings against the planted truth, on aligned crops (no head motion
    in the comparison: the truth is mapped into aligned coordinates; head motion is removed first)."""
    import cv2

    from mer_pipeline import align
    from mer_pipeline.face import detect_face
    from mer_pipeline.flow import TVL1Params, compute_flow
    from mer_pipeline.frames import read_grey
    from mer_pipeline.synth import truth_field

    cv2.setNumThreads(1)
    truth = json.loads((raw / "synth_truth.json").read_text())
    entries = {c["sample_id"]: c for c in truth["clips"]}
    settings = {
        "tvl1 defaults": ("tvl1", TVL1Params()),
        "tvl1 nscales=3 warps=3 step=0.5": ("tvl1", TVL1Params(nscales=3, warps=3, scale_step=0.5)),
        "tvl1 nscales=3 warps=3 step=0.5 inner=10": ("tvl1", TVL1Params(nscales=3, warps=3, scale_step=0.5, inner_iterations=10)),
        "farneback": ("farneback", TVL1Params()),
        "dis medium": ("dis", TVL1Params()),
    }
    pairs = []
    for sample in clip_list(raw)[:limit]:
        entry = entries.get(sample.sample_id)
        if entry is None:
            continue
        onset_raw = read_grey(sample.frames[sample.nearest_frame(entry["onset"])])
        apex_raw = read_grey(sample.frames[sample.nearest_frame(entry["apex"])])
        matrix = align.alignment_transform(detect_face(onset_raw).anchors, 128)
        onset = align.warp(onset_raw, matrix, 128)
        apex = align.warp(apex_raw, matrix, 128)
        apex = align.remove_head_motion(apex, align.estimate_head_motion(onset, apex))
        field = truth_field(entry)
        aligned = np.stack([cv2.warpAffine(c, matrix, (128, 128)) for c in field])
        aligned = np.einsum("ij,jhw->ihw", matrix[:, :2], aligned)
        pairs.append((onset, apex, aligned))
    pairs = [p for p in pairs if (np.hypot(*p[2]) > 0.05).any()]
    rows = []
    for name, (method, params) in settings.items():
        errors, strong, cosines, times = [], [], [], []
        for onset, apex, aligned in pairs:
            t0 = time.perf_counter()
            flow = compute_flow(onset, apex, method, params)
            times.append(time.perf_counter() - t0)
            magnitude = np.hypot(aligned[0], aligned[1])
            moving, peak = magnitude > 0.05, magnitude > 0.5 * magnitude.max()
            errors.append(float(np.hypot(*(flow - aligned))[moving].mean()))
            strong.append(float(np.hypot(*(flow - aligned))[peak].mean()))
            cosines.append(float(((flow * aligned).sum(0) / (np.hypot(*flow) * magnitude + 1e-9))[peak].mean()))
        rows.append({"setting": name, "epe_moving_px": float(np.mean(errors)), "epe_peak_px": float(np.mean(strong)),
                     "cosine_peak": float(np.mean(cosines)), "ms_per_pair": 1000 * float(np.median(times))})
    zero = [(float(np.hypot(*a)[np.hypot(*a) > 0.05].mean()), float(np.hypot(*a)[np.hypot(*a) > 0.5 * np.hypot(*a).max()].mean()))
            for _, _, a in pairs]
    rows.append({"setting": "zero flow (reference)", "epe_moving_px": float(np.mean([z[0] for z in zero])),
                 "epe_peak_px": float(np.mean([z[1] for z in zero])), "cosine_peak": 0.0, "ms_per_pair": 0.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=26)
    parser.add_argument("--clips-per-subject", type=int, default=10)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--scale", type=int, default=0, help="also run ours on SCALE x the clips (memory check)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--reference-clips", type=int, default=60, help="clips timed for the (slow) reference")
    parser.add_argument("--tvl1-study", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of floor / ours 1w / ours 2w (medians reported)")
    parser.add_argument("--shard-size", type=int, default=64, help="mer-prep's --shard-size for ours (default: its default)")
    parser.add_argument("--shard-tasks", action="store_true",
                        help="also ours with 2 workers and one task per shard (the former scheduling), for comparison")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    from mer_pipeline.config import PrepConfig

    config = PrepConfig()
    args.work.mkdir(parents=True, exist_ok=True)
    raw = generate_tree(args.work, args.subjects, args.clips_per_subject)
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                "load_average_at_start": os.getloadavg()}, "config": config.as_dict(),
                    "shard_size": args.shard_size}
    if args.tvl1_study:
        report["tvl1_study"] = tvl1_study(raw)
        for row in report["tvl1_study"]:
            print(f"  {row['setting']:45s} EPE {row['epe_moving_px']:.3f} px, at peaks {row['epe_peak_px']:.3f} px, "
                  f"cosine {row['cosine_peak']:.2f}, {row['ms_per_pair']:.1f} ms")
    # Rounds of floor, ours 1w, ours 2w, floor in 2 processes, interleaved so that a slow spell of
    # the shared machine hits every column; each rate is the median over the rounds.
    runs: dict[str, list[dict]] = {"floor": [], "ours_1w": [], "ours_2w": [], "floor_2p": []}
    if args.shard_tasks:
        runs["ours_2w_shard_tasks"] = []
    for round_ in range(1, args.repeat + 1):
        runs["floor"].append(run_floor_processes(raw, config, 1))
        for workers in (1, 2):
            runs[f"ours_{workers}w"].append(run_ours(raw, args.work / f"out-{workers}w", workers, config, args.shard_size))
        if args.shard_tasks:
            runs["ours_2w_shard_tasks"].append(run_ours_shard_tasks(raw, args.work / "out-2w-shard-tasks", config,
                                                                    args.shard_size))
        runs["floor_2p"].append(run_floor_processes(raw, config, 2))
        print(f"round {round_}: " + ", ".join(f"{name} {rows[-1]['clips_per_s']:.2f}" for name, rows in runs.items())
              + " clips/s", flush=True)
    for name, rows in runs.items():
        report[name] = median_run(rows)
        report[name]["rounds_clips_per_s"] = [r["clips_per_s"] for r in rows]
    for workers in (1, 2):
        r = report[f"ours_{workers}w"]
        print(f"ours {workers}w:   {r['clips_per_s']:.2f} clips/s (median), peak {r['peak_rss_mb_per_worker']:.0f} MB/worker")
    print(f"floor:     {report['floor']['clips_per_s']:.2f} clips/s; in 2 processes {report['floor_2p']['clips_per_s']:.2f}")
    if not args.skip_reference:
        report["reference"] = run_reference(raw, args.work / "out-reference", args.reference_clips)
        print(f"reference: {report['reference']['clips_per_s']:.2f} clips/s")
    if args.scale > 1:
        big = generate_tree(args.work, args.subjects, args.clips_per_subject * args.scale, seed=1)
        for workers in (1, 2):  # fixed costs (scan, warm-up, the last shard) weigh less on more clips
            r = report[f"ours_{workers}w_x{args.scale}"] = run_ours(big, args.work / "out-scale", workers, config)
            print(f"ours {workers}w x{args.scale}: {r['clips']} clips, {r['clips_per_s']:.2f} clips/s, "
                  f"peak {r['peak_rss_mb_per_worker']:.0f} MB/worker", flush=True)

    one, two, floor = report["ours_1w"], report["ours_2w"], report["floor"]
    summary = {
        "parallel_efficiency_1_to_2": two["clips_per_s"] / (2 * one["clips_per_s"]),
        "machine_efficiency_1_to_2": report["floor_2p"]["clips_per_s"] / (2 * floor["clips_per_s"]),
        "overhead_over_floor_1w": floor["clips_per_s"] / one["clips_per_s"],
        "overhead_over_floor_2w": report["floor_2p"]["clips_per_s"] / two["clips_per_s"],
    }
    if args.scale > 1:
        summary[f"parallel_efficiency_1_to_2_x{args.scale}"] = (
            report[f"ours_2w_x{args.scale}"]["clips_per_s"] / (2 * report[f"ours_1w_x{args.scale}"]["clips_per_s"]))
    if "reference" in report:
        summary["speedup_over_reference_1w"] = one["clips_per_s"] / report["reference"]["clips_per_s"]
        summary["speedup_over_reference_2w"] = two["clips_per_s"] / report["reference"]["clips_per_s"]
    report["summary"] = summary
    report["machine"]["load_average_at_end"] = os.getloadavg()
    for key, value in summary.items():
        print(f"{key}: {value:.2f}")
    if "ours_2w_shard_tasks" in report:
        summary["overhead_over_floor_2w_shard_tasks"] = (report["floor_2p"]["clips_per_s"]
                                                         / report["ours_2w_shard_tasks"]["clips_per_s"])
        print(f"overhead_over_floor_2w_shard_tasks: {summary['overhead_over_floor_2w_shard_tasks']:.2f}")
    for name in (n for n in ("ours_1w", "ours_2w", "ours_2w_shard_tasks") if n in report):
        where = report[name]["where_time_goes"]
        print(f"{name}, median run, {report[name]['seconds']:.2f} s: parent CPU {where['parent_cpu_s']:.2f} s; "
              f"{len(where['shards'])} tasks; per worker " + "; ".join(
                  f"compute {w['compute_s']:.2f} s, before its first task {w['before_first_s']:.2f} s, after its "
                  f"last {w['after_last_s']:.2f} s, between tasks {w['gaps_s']:.2f} s" for w in where["workers"]))
    (args.work / "bench_prep.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.work / 'bench_prep.json'}")


if __name__ == "__main__":
    main()
