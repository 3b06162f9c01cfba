"""Stage one orchestration (`mer_pipeline.prepare`): adapter -> plan of shards -> Dask tasks (a
shard's clips in parts, then its writer) -> manifest.

Resume is the default: a shard file that exists, carries this run's config hash and holds exactly
the planned samples is kept. Shards are written under a temporary name and renamed when complete;
the manifest is written last, so a set without manifest.json is never taken for a complete one.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import __version__
from .clip import ClipError, process_clip
from .config import PrepConfig
from .datasets import get_adapter
from .errors import MerError, OutputLocked
from .face import get_backend, landmark_count
from .flow import check_flow_available
from .sample import Failure, Sample
from .shards import (FAILURES, MANIFEST, SHARD_DIR, config_hash, load_manifest, read_shard_meta, shard_name,
                     write_jsonl_atomic, write_manifest, write_shard)

log = logging.getLogger(__name__)
PROGRESS_TOPIC = "mer-prep-progress"


@dataclass
class PrepareSummary:
    """What `prepare` did: samples written and skipped, shards written (`reused` of them kept from a
    previous run), wall time; str() is the line mer-prep prints."""

    out: Path
    ok: int
    failed: int
    shards: int
    reused: int
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"{self.ok} samples ok, {self.failed} failed, {self.shards} shards ({self.reused} reused) in "
                f"{self.seconds:.1f} s ({self.clips_per_second:.2f} clips/s) -> {self.out}")


class UnexpectedClipErrors(MerError):
    """No clip of a run succeeded and at least one failed with an unexpected exception: a bug in
    mer-toolkit, not a problem of the data."""


@dataclass(frozen=True)
class ShardJob:
    """What every shard task of one run shares; it travels to the Dask workers with each task."""

    out: str
    dataset: str
    config: PrepConfig
    digest: str  # the run's config hash, stored in every shard
    fail_fast: bool = False

    def path(self, index: int) -> Path:
        return Path(self.out) / SHARD_DIR / shard_name(self.dataset, index)


@dataclass
class Plan:
    """One run of `prepare`: the samples of each shard (sorted by id, cut by shard_size), the job
    every shard task shares, and how the tasks run."""

    job: ShardJob
    shards: list[list[Sample]]
    workers: int | None = None
    scheduler: str | None = None
    progress: bool = True
    overwrite: bool = False
    recorded: dict[str, str] = field(default_factory=dict)  # sha256 per shard file in the previous manifest


def build_shard(index: int, samples: list[Sample], job: ShardJob) -> dict:
    """Process the clips of one shard and write it, in one process (the synchronous path)."""
    return write_records(index, [clip_records(index, samples, job)], job)


def clip_records(index: int, samples: list[Sample], job: ShardJob) -> dict:
    """The records and failures of `samples`, clips of shard `index` (all of them, or a part when
    the shard's clips are spread over several workers). Runs in a Dask worker (or in-process).

    A clip that raises one of clip.EXPECTED_ERRORS is a failure of its stage. Any other exception
    is a bug: with fail_fast it propagates; else the clip is recorded as an unexpected failure and
    the first traceback is returned (`bug`), for `prepare` to show when no clip succeeded."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one process per core; also keeps results identical across schedulers
    try:
        records, failures, bug = [], [], None
        for sample in samples:
            try:
                records.append(process_clip(sample, job.config))
            except ClipError as error:
                failure = Failure(sample.sample_id, error.stage, type(error.cause).__name__, _message(sample, error))
                if job.fail_fast:
                    raise MerError(f"{failure.sample_id}: {failure.stage} failed: {failure.message}") from error
                failures.append(failure.to_json())
            except Exception as error:  # noqa: BLE001 - a bug: recorded as such, one clip must not stop a dataset
                if job.fail_fast:
                    raise
                failures.append(_unexpected(sample, error).to_json())
                bug = bug or f"{sample.sample_id}:\n{traceback.format_exc()}"
            _report_progress()
        return {"records": records, "failures": failures, "bug": bug}
    finally:
        cv2.setNumThreads(threads)


def write_records(index: int, parts: list[dict], job: ShardJob) -> dict:
    """Write shard `index` from the `clip_records` of its clips, in sample-id order."""
    records = [r for part in parts for r in part["records"]]
    failures = [f for part in parts for f in part["failures"]]
    bug = next((part["bug"] for part in parts if part["bug"]), None)
    path = job.path(index)
    sha = write_shard(path, records, size=job.config.size, landmarks=landmark_count(job.config.backend),
                      config_hash=job.digest, keep_frames=job.config.keep_frames, failures=failures)
    return {"file": path.name, "n": len(records), "sha256": sha, "failures": failures,
            "emotions": [r["meta"]["emotion"] for r in records], "reused": False, "bug": bug}


def _unexpected(sample: Sample, error: Exception) -> Failure:
    message = (f"{error} (unexpected {type(error).__name__}: a bug in mer-toolkit, not a problem of this clip; "
               "rerun with --fail-fast (fail_fast=True) to see its traceback, and report it)")
    return Failure(sample.sample_id, "clip", type(error).__name__, message, unexpected=True)


def _message(sample: Sample, error: ClipError) -> str:
    text = str(error.cause) or type(error.cause).__name__
    where = ""
    if error.stage in ("read", "face"):
        where = f" (onset frame {sample.frames.get(sample.nearest_frame(sample.onset), '?')})" if sample.frames else ""
    return text + where


def _report_progress() -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(PROGRESS_TOPIC, 1)
    except (ImportError, ValueError):  # not in a Dask worker: the synchronous path counts whole shards
        pass


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on OUT: a second mer-prep on the same folder refuses to start."""
    path = out / ".mer-prep.lock"
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise _unwritable(out, error) from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise OutputLocked(f"{out}: another mer-prep process is writing here; wait for it to finish "
                           "or choose another output folder") from error
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _unwritable(out: Path, error: OSError) -> MerError:
    return MerError(f"{out}: cannot write to the output folder ({error.strerror or error}); choose a writable "
                    "output folder or fix its permissions")


def prepare(dataset: str, raw: Path | None, out: Path, *, annotations: Path | None = None,
            config: PrepConfig = PrepConfig(), workers: int | None = None, scheduler: str | None = None,
            shard_size: int = 64, limit: int | None = None, overwrite: bool = False, fail_fast: bool = False,
            progress: bool = True, options: dict | None = None) -> PrepareSummary:
    """Prepare `dataset` from the raw tree `raw` into the shard set `out`.

    `scheduler`: None for a local Dask cluster of `workers` processes (default: all cores),
    "synchronous" to run in this process, or the address of an existing dask.distributed scheduler.
    """
    started = time.perf_counter()
    check_flow_available(config.flow)
    if shard_size < 1:  # the CLI's --shard-size cannot be below 1
        raise MerError(f"shard_size must be at least 1, not {shard_size}", param="shard_size")
    adapter = get_adapter(dataset)
    options = dict(options or {})
    scan = adapter.scan(raw, annotations, **options) if adapter.takes_raw else adapter.scan(annotations=annotations, **options)
    samples = sorted(scan.samples, key=lambda s: s.sample_id)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise MerError(f"{raw}: no usable samples found for {dataset} ({len(scan.failures)} rows rejected; "
                       f"first: {scan.failures[0].message if scan.failures else 'none'})")

    out = Path(out)
    try:
        (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(out, error) from error
    recipe = {
        "dataset": dataset,
        "prep": config.as_dict(),
        "shard_size": shard_size,
        "limit": limit,
        "options": adapter.recorded_options(options),
        "annotations": Path(annotations).name if annotations else None,
    }
    digest = config_hash(recipe)
    with output_lock(out):
        plan = Plan(ShardJob(str(out), dataset, config, digest, fail_fast),
                    [samples[i:i + shard_size] for i in range(0, len(samples), shard_size)],
                    workers=workers, scheduler=scheduler, progress=progress, overwrite=overwrite,
                    recorded=_check_existing(out, digest, overwrite))
        results = _run(plan)
        written = [r for r in results if r["file"]]  # a shard whose worker kept dying has no file
        _remove_stale(out, {r["file"] for r in written})

        failures = [f.to_json() for f in scan.failures] + [f for r in results for f in r["failures"]]
        failures.sort(key=lambda f: (f["sample_id"], f["stage"]))
        for failure in failures:
            log.warning("skipped %s (%s: %s) %s", failure["sample_id"], failure["stage"], failure["error"], failure["message"])
        write_jsonl_atomic(out / FAILURES, failures)
        _fail_on_bugs(out, results)
        classes = Counter(e for r in results for e in r["emotions"])
        write_manifest(out, dataset=dataset, config=recipe, failed=len(failures), class_counts=dict(classes),
                       pipeline_version=__version__,
                       shards=[{"file": r["file"], "n": r["n"], "sha256": r["sha256"]} for r in written])
    return PrepareSummary(out, sum(r["n"] for r in results), len(failures), len(written),
                          sum(r["reused"] for r in results), time.perf_counter() - started)


def _fail_on_bugs(out: Path, results: list[dict]) -> None:
    """A run in which no clip succeeded and a clip hit a bug stops here, loudly, before the
    manifest would mark the set complete: it shows the first traceback."""
    bug = next((r["bug"] for r in results if r.get("bug")), None)
    if bug and not any(r["n"] for r in results):
        raise UnexpectedClipErrors(
            f"no clip succeeded, and clips failed with an unexpected exception: a bug in mer-toolkit, not a problem "
            f"of the data (every failure is in {out / FAILURES}). Please report it with the first traceback:\n{bug}")


def _check_existing(out: Path, digest: str, overwrite: bool) -> dict[str, str]:
    """Clear OUT for --overwrite, or check that a previous set may be resumed. Returns the sha256 its
    manifest recorded per shard file (empty when there is none): a reused shard must still match it."""
    manifest_path = out / MANIFEST
    if overwrite:
        for path in [manifest_path, out / FAILURES, *(out / SHARD_DIR).glob("*.h5")]:
            path.unlink(missing_ok=True)
        return {}
    if not manifest_path.is_file():
        return {}
    previous = load_manifest(out)  # an unreadable manifest or unknown schema: its own message
    if previous.get("config_hash") != digest:
        raise MerError(f"{out} holds shards made with another configuration; use --overwrite to replace "
                       "them, or choose another output folder")
    recorded = {entry["file"]: entry["sha256"] for entry in previous.get("shards", [])}
    manifest_path.unlink()  # rewritten last; until then the set counts as incomplete
    return recorded


def _reusable(plan: Plan, index: int) -> dict | None:
    path, samples = plan.job.path(index), plan.shards[index]
    if not path.is_file():
        return None
    try:
        meta = read_shard_meta(path)
    except (OSError, KeyError):
        log.info("%s: unreadable, rebuilding", path)
        return None
    failed = {f["sample_id"] for f in meta["failures"]}
    planned = [s.sample_id for s in samples]
    if meta["config_hash"] != plan.job.digest or [s for s in planned if s not in failed] != meta["sample_ids"]:
        return None
    if any(f.get("unexpected") for f in meta["failures"]):  # clips that hit a bug are retried
        return None
    from .shards import sha256_file

    sha = sha256_file(path)
    if plan.recorded.get(path.name, sha) != sha:
        log.warning("%s: sha256 differs from the previous manifest (corrupt or modified); rebuilding", path)
        return None
    return {"file": path.name, "n": len(meta["sample_ids"]), "sha256": sha,
            "failures": meta["failures"], "emotions": meta["emotions"], "reused": True}


def _run(plan: Plan) -> list[dict]:
    """The result of every shard of `plan`, by index: reused when it may be, else built."""
    from tqdm import tqdm

    results: dict[int, dict] = {}
    todo = []
    for index in range(len(plan.shards)):
        reused = None if plan.overwrite else _reusable(plan, index)
        if reused:
            results[index] = reused
        else:
            todo.append(index)
    total = sum(len(s) for s in plan.shards)
    bar = tqdm(total=total, unit="clip", desc=f"mer-prep {plan.job.dataset}", disable=not plan.progress,
               initial=sum(len(plan.shards[i]) for i in results))
    try:
        if not todo:
            pass
        elif plan.scheduler == "synchronous":
            get_backend(plan.job.config.backend)  # load models once, before the clock of the first clip
            for index in todo:
                results[index] = build_shard(index, plan.shards[index], plan.job)
                bar.update(len(plan.shards[index]))
        else:
            results.update(_run_dask(plan, todo, bar))
    finally:
        bar.close()
    return [results[i] for i in range(len(plan.shards))]


def _run_dask(plan: Plan, todo: list[int], bar) -> dict[int, dict]:
    import dask
    from distributed import Client, KilledWorker, LocalCluster, as_completed

    job, shards = plan.job, plan.shards
    with contextlib.ExitStack() as stack:
        if plan.scheduler:
            client = stack.enter_context(Client(plan.scheduler))
        else:
            n = plan.workers or os.cpu_count() or 1
            # Loopback only; the scheduler's HTTP routes on any free port (None would still take 8787).
            # One task per worker at a time: a worker that dies (a crash in native code, out of memory)
            # then takes only the part of a shard it was running with it, not one queued behind it.
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                cluster = stack.enter_context(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                           host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                           silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bar.update(1))
        workers = len(client.scheduler_info()["workers"])
        part = _part_size(sum(len(shards[i]) for i in todo), workers)
        futures = {}
        for i in todo:  # a shard's parts, then its writer: Dask runs them about in that order, so
            key = f"mer-prep-{job.dataset}-{job.digest[:8]}-{i:05d}"  # a worker holds ~one shard's records
            parts = [client.submit(clip_records, i, shards[i][at:at + part], job, key=f"{key}-clips-{at:05d}",
                                   pure=False, retries=2) for at in range(0, len(shards[i]), part)]
            futures[client.submit(write_records, i, parts, job, key=key, pure=False, retries=2)] = i
        results, start = {}, bar.n
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except MerError:
                for other in futures:
                    other.cancel()
                raise
            except KilledWorker as error:  # the scheduler gave up after several dead workers
                results[index] = _lost_shard(index, shards[index], error)
                if job.fail_fast:
                    for other in futures:
                        other.cancel()
                    raise MerError(results[index]["failures"][0]["message"]) from error
            done = start + sum(len(shards[i]) for i in results)
            if bar.n < done:  # events can arrive late; keep the bar honest
                bar.update(done - bar.n)
        client.unsubscribe_topic(PROGRESS_TOPIC)
        return results


# Clips per Dask task: a shard's clips are spread over the workers in parts of about total /
# (PARTS_PER_WORKER x workers) clips (at least MIN_PART), so that the workers finish together
# whatever the shard size (one task per shard left a worker idle while the other did the last, or
# the only, shard) and a task stays long against Dask's few ms per task. One worker: one part per shard.
PARTS_PER_WORKER = 8
MIN_PART = 4


def _part_size(total: int, workers: int) -> int:
    if workers < 2:
        return max(total, 1)
    return max(MIN_PART, -(-total // (PARTS_PER_WORKER * workers)))


def _lost_shard(index: int, samples: list[Sample], error: Exception) -> dict:
    """The result of a shard whose worker process died on every attempt: its clips are failures."""
    ids = ", ".join(s.sample_id for s in samples)
    message = (f"the Dask worker process died on every attempt at shard {index} ({ids}): a crash in native code "
               "or out of memory. Rerun mer-prep to retry these clips; to find the one at fault, run them with "
               f"--scheduler synchronous ({type(error).__name__})")
    failures = [Failure(s.sample_id, "worker", "KilledWorker", message).to_json() for s in samples]
    return {"file": None, "n": 0, "sha256": None, "failures": failures, "emotions": [], "reused": False}


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove what an interrupted run left: temporary files, and shards outside this run's plan."""
    for name in (MANIFEST, FAILURES):
        for path in out.glob(f".{name}.tmp-*"):
            path.unlink(missing_ok=True)
    for path in (out / SHARD_DIR).iterdir():
        if path.name.startswith(".") and ".tmp-" in path.name:
            path.unlink(missing_ok=True)
        elif path.suffix == ".h5" and path.name not in keep:
            log.info("removing %s: not part of this run's plan", path)
            path.unlink()


__all__ = ["prepare", "PrepConfig", "PrepareSummary"]
