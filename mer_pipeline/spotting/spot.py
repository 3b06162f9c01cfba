"""Spotting in long videos: face once, per-frame alignment and head-motion removal, a per-region
motion signal at two time scales, the MEGC baseline's local-contrast peak rule, then one shard
sample per spotted interval (TV-L1 onset -> apex, as for any clip).

The method (docs/spotting.md states it with its sources):

1. Face and landmarks on the first frame that shows one (`face.detect_face`); every frame is warped
   into the aligned `scan_size` crop with that transform, and its rigid head motion relative to the
   first aligned frame is tracked and removed (`align.estimate_head_motion`, started from the
   previous frame's estimate). Frames are scanned at `scan_fps` (every frame at 30 fps).
2. Motion at frame i for a half-window k: the fast flow (DIS) from frame i to frame i-k and to
   frame i+k, summed. A movement that comes and goes around i moves both neighbours the same way
   and adds up; linear drift, a slow head turn or a lighting ramp cancels. This is a flow version
   of the feature difference of the MEGC baseline (Moilanen et al. 2014; Li et al. 2018, 2019),
   which compares frame i with the average of frames i-k and i+k.
3. Per region (brows, cheeks, nose, mouth, chin; eyes apart), the mean magnitude, normalised by the
   region's own median and spread over the video (a robust z score); the frame's feature F is the
   mean of the `top_regions` largest regions (the baseline keeps the most active third of blocks).
4. Contrast C(i) = F(i) - (F(i-k) + F(i+k)) / 2, negatives set to 0; peaks of C above
   T = mean(C) + p (max(C) - mean(C)) (the baseline's threshold) and above `min_score`, at
   least k apart. k = 0.2 s finds micro-expressions, k = 0.6 s macro-expressions.
5. An interval around each peak: F's width at half its height, doubled (a raised-cosine movement is
   above half its height for half its duration), at most `max_extent` k on each side. It is micro
   when it lasts at most `micro_max_s` (0.5 s, the MEGC rule), else macro. Peaks whose eyes moved
   more than `blink_ratio` times any other region are blinks and dropped; overlapping intervals of
   the two scales keep the higher score.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from .. import align as al
from ..errors import FrameError, MerError, NoFaceFound
from ..face import detect_face, get_backend, landmark_count
from ..flow import TVL1Params, check_flow_available, compute_flow, optical_strain
from ..sample import Failure, sample_id
from ..shards import (FAILURES, MANIFEST, SHARD_DIR, config_hash, shard_name, write_jsonl_atomic, write_manifest,
                      write_shard, write_text_atomic)
from .longvideo import LongVideo, find_long_videos
from .metric import Interval

log = logging.getLogger(__name__)

INTERVALS = "intervals.csv"
GROUND_TRUTH = "ground_truth.csv"
VIDEOS = "videos.csv"
INTERVAL_COLUMNS = ("video", "onset", "apex", "offset", "kind", "score", "sample_id")

# Regions of the aligned face, (x0, y0, x1, y1) in fractions of the crop (align.TEMPLATE: eyes at
# y 0.34, nose tip 0.57, mouth corners 0.744). The subject's right side is on the image left.
REGIONS = {
    "brow_right": (0.14, 0.10, 0.46, 0.25),
    "brow_left": (0.54, 0.10, 0.86, 0.25),
    "eye_right": (0.20, 0.27, 0.42, 0.41),
    "eye_left": (0.58, 0.27, 0.80, 0.41),
    "cheek_right": (0.14, 0.44, 0.38, 0.68),
    "cheek_left": (0.62, 0.44, 0.86, 0.68),
    "nose": (0.40, 0.40, 0.60, 0.60),
    "mouth": (0.28, 0.66, 0.72, 0.86),
    "chin": (0.36, 0.86, 0.64, 0.98),
}
EYES = ("eye_right", "eye_left")
MOUTH = ("mouth", "chin")


@dataclass(frozen=True)
class SpotConfig:
    """Every parameter of spotting and of the shards of spotted intervals (hashed into the manifest)."""

    backend: str = "dlib"
    scan_size: int = 96  # side of the aligned crop scanned (px)
    scan_flow: str = "dis"  # fast flow of the scan: dis | farneback
    scan_fps: float = 30.0  # frames scanned per second of video (every frame at 30 fps, 1 in 7 at 200 fps)
    scales_s: tuple[float, ...] = (0.2, 0.6)  # half-windows k (s): micro, macro
    p: float = 0.1  # threshold T = mean(C) + p (max(C) - mean(C))
    min_score: float = 6.0  # and C >= min_score (robust z units)
    top_regions: int = 3
    blink_ratio: float = 1.5
    talk_window_s: float = 1.5  # a mouth-led peak with talk_peaks mouth peaks within +-talk_window_s is talking
    talk_peaks: int = 3
    talk_ratio: float = 4.0  # a talking peak: the mouth moves talk_ratio times more than the median other region
    max_extent: float = 2.0  # an interval reaches at most max_extent * k on each side of its peak
    micro_max_s: float = 0.5
    # shards of the spotted intervals, as PrepConfig makes them for clips
    size: int = 128
    flow: str = "tvl1"
    stabilize: bool = True
    tvl1: TVL1Params = field(default_factory=lambda: TVL1Params(nscales=3, warps=3, scale_step=0.5,
                                                                inner_iterations=10))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Signals:
    """The scan of one video: per scale, per scored frame, the region scores (raw magnitudes)."""

    positions: np.ndarray  # (T,) indices into the video's frame numbers
    stride: int
    regions: dict[int, np.ndarray]  # k (frames) -> (T, R) mean magnitude per region
    fps: float
    seconds: float = 0.0
    frames_read: int = 0


# ---------------------------------------------------------------------------------------------
# scan

def region_masks(size: int) -> dict[str, np.ndarray]:
    masks = {}
    for name, (x0, y0, x1, y1) in REGIONS.items():
        mask = np.zeros((size, size), bool)
        mask[int(y0 * size):int(np.ceil(y1 * size)), int(x0 * size):int(np.ceil(x1 * size))] = True
        masks[name] = mask
    return masks


def scan_video(video: LongVideo, config: SpotConfig, progress=None) -> Signals:
    """Align, stabilise and score every scanned frame of `video` (see the module doc, steps 1-3)."""
    started = time.perf_counter()
    fps = video.fps
    stride = max(1, int(round(fps / config.scan_fps)))
    ks = sorted({max(stride, int(round(k * fps / stride)) * stride) for k in config.scales_s})
    reach = max(ks)
    size = config.scan_size
    masks = list(region_masks(size).values())
    matrix = reference = face = None
    motion = np.eye(2, 3)
    window: dict[int, np.ndarray] = {}  # position -> stabilised aligned frame
    pending: deque[int] = deque()  # scanned positions whose i+reach frame has not come yet
    positions, rows = [], {k: [] for k in ks}
    read = 0
    for position, (_, grey) in enumerate(video.iter_grey()):
        read += 1
        if progress:
            progress(1)
        if position % stride or grey is None:
            continue
        if matrix is None:
            try:
                found = detect_face(grey, config.backend)
            except NoFaceFound:
                continue
            matrix = al.alignment_transform(found.anchors, size)
            reference = al.warp(grey, matrix, size)
            face = al.face_mask(al.transform_points(found.landmarks, matrix), size)
        aligned = al.warp(grey, matrix, size)
        step = al.estimate_head_motion(reference, al.remove_head_motion(aligned, motion), face)
        motion = al.compose(motion, step)
        window[position] = al.remove_head_motion(aligned, motion)
        pending.append(position)
        while pending and pending[0] + reach <= position:
            _score(pending.popleft(), window, ks, masks, config, positions, rows)
        for old in [p for p in window if p < position - 2 * reach]:
            del window[old]
    while pending:
        _score(pending.popleft(), window, ks, masks, config, positions, rows)
    if matrix is None:
        raise NoFaceFound(f"{video.path}: no face found on any frame ({config.backend}); check that the video shows "
                          "a frontal face, or try --backend mediapipe")
    regions = {k: np.array(v, np.float32).reshape(len(positions), len(masks)) for k, v in rows.items()}
    return Signals(np.array(positions, int), stride, regions, fps, time.perf_counter() - started, read)


def _score(i: int, window, ks, masks, config, positions, rows) -> None:
    """Region magnitudes of |flow(i -> i-k) + flow(i -> i+k)| / 2 for every k; edges count as still."""
    current = window[i]
    positions.append(i)
    for k in ks:
        before, after = window.get(i - k), window.get(i + k)
        if before is None or after is None:
            rows[k].append(np.zeros(len(masks), np.float32))
            continue
        flow = compute_flow(current, before, config.scan_flow) + compute_flow(current, after, config.scan_flow)
        magnitude = 0.5 * np.hypot(flow[0], flow[1])
        rows[k].append(np.array([magnitude[m].mean() for m in masks], np.float32))


# ---------------------------------------------------------------------------------------------
# peaks -> intervals

def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) per column; columns without spread get a spread of 1e-3."""
    median = np.median(values, axis=0)
    spread = 1.4826 * np.median(np.abs(values - median), axis=0)
    return (values - median) / np.maximum(spread, 1e-3)


def find_intervals(video: LongVideo, signals: Signals, config: SpotConfig) -> list[Interval]:
    """Intervals of one scanned video (module doc, steps 3-5), frame numbers as the video numbers them."""
    names = list(REGIONS)
    eye = np.array([n in EYES for n in names])
    numbers = video.numbers
    talking = _talking(signals, config, names)
    candidates = []
    for k, values in sorted(signals.regions.items()):
        if not len(values):
            continue
        z = robust_z(values)  # (T, R)
        face_z = np.sort(z[:, ~eye], axis=1)[:, ::-1]
        feature = face_z[:, :config.top_regions].mean(axis=1)  # F, (T,)
        steps = k // signals.stride
        contrast = feature - 0.5 * (_shift(feature, steps) + _shift(feature, -steps))
        contrast = np.maximum(contrast, 0.0)
        threshold = max(contrast.mean() + config.p * (contrast.max() - contrast.mean()), config.min_score)
        for t in _peaks(contrast, threshold, steps):
            if z[t, eye].max() > config.blink_ratio * max(z[t, ~eye].max(), 1e-6):
                log.debug("%s: peak at %d dropped as a blink", video.name, numbers[signals.positions[t]])
                continue
            if talking[t] and names[int(np.argmax(np.where(eye, -np.inf, z[t])))] in MOUTH:
                log.debug("%s: peak at %d dropped as talking", video.name, numbers[signals.positions[t]])
                continue
            left, right = _extent(feature, t, steps, config.max_extent)
            onset = signals.positions[max(t - left, 0)]
            offset = signals.positions[min(t + right, len(feature) - 1)]
            apex = signals.positions[t]
            seconds = (offset - onset + 1) / video.fps
            kind = "micro" if seconds <= config.micro_max_s else "macro"
            candidates.append((k, Interval(video.name, int(numbers[onset]), int(numbers[offset]), kind,
                                           int(numbers[apex]), round(float(contrast[t]), 3))))
    return _suppress(candidates)


def _talking(signals: Signals, config: SpotConfig, names: list[str]) -> np.ndarray:
    """Per scored frame: do `talk_peaks` or more mouth-only peaks fall within +-`talk_window_s`?
    A mouth-only peak is a peak of the mouth's contrast at the shortest scale, above `min_score`,
    where the mouth moves `talk_ratio` times more than the median other region. Speech moves the
    mouth alone, again and again; an expression moves it once, and other regions with it."""
    k = min(signals.regions)
    values = signals.regions[k]
    flags = np.zeros(len(values), bool)
    if not len(values):
        return flags
    steps = max(1, k // signals.stride)
    z = robust_z(values)
    mouth = z[:, [names.index(n) for n in MOUTH]].max(axis=1)
    others = np.median(z[:, [i for i, n in enumerate(names) if n not in MOUTH and n not in EYES]], axis=1)
    contrast = mouth - 0.5 * (_shift(mouth, steps) + _shift(mouth, -steps))  # no side lobes, as in find_intervals
    peaks = np.array([t for t in _peaks(contrast, config.min_score, steps)
                      if mouth[t] >= config.talk_ratio * max(others[t], 1.0)], int)
    reach = config.talk_window_s * signals.fps / signals.stride
    for t in range(len(values)):
        flags[t] = np.sum(np.abs(peaks - t) <= reach) >= config.talk_peaks
    return flags


def _shift(values: np.ndarray, steps: int) -> np.ndarray:
    """values[t - steps] at t (edge values repeated)."""
    index = np.clip(np.arange(len(values)) - steps, 0, len(values) - 1)
    return values[index]


def _peaks(contrast: np.ndarray, threshold: float, spacing: int) -> list[int]:
    """Local maxima above `threshold`, strongest first, at least `spacing` apart."""
    order = [t for t in np.argsort(-contrast, kind="stable") if contrast[t] >= threshold]
    kept: list[int] = []
    for t in order:
        if all(abs(t - s) >= max(spacing, 1) for s in kept):
            kept.append(int(t))
    return sorted(kept)


def _extent(feature: np.ndarray, t: int, steps: int, max_extent: float) -> tuple[int, int]:
    """Steps left and right of peak t: twice the half-height width of F, capped at max_extent * k."""
    half = feature[t] / 2
    cap = max(1, int(round(max_extent * steps)))
    left = right = 0
    while left < cap and t - left - 1 >= 0 and feature[t - left - 1] > half:
        left += 1
    while right < cap and t + right + 1 < len(feature) and feature[t + right + 1] > half:
        right += 1
    return min(cap, 2 * left + 1), min(cap, 2 * right + 1)


def _suppress(candidates: list[tuple[int, Interval]]) -> list[Interval]:
    """Longest scale first, then highest score; an interval that overlaps a kept one is dropped.
    The longest scale measures both kinds' extent (a short window cuts a macro-expression into its
    rise and fall), so where scales overlap its interval is kept."""
    kept: list[Interval] = []
    for _, c in sorted(candidates, key=lambda kc: (-kc[0], -kc[1].score, kc[1].onset)):
        if all(c.offset < k.onset or c.onset > k.offset for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.onset)


# ---------------------------------------------------------------------------------------------
# shard records of spotted intervals

def interval_sample_id(video: LongVideo, interval: Interval) -> str:
    return sample_id(video.dataset, video.subject, f"{Path(video.name).name}_{interval.onset:06d}")


def interval_record(video: LongVideo, interval: Interval, onset_raw: np.ndarray, apex_raw: np.ndarray,
                    config: SpotConfig) -> dict:
    """The shard record of a spotted interval, built as `clip.process_clip` builds a clip's: face on
    the onset frame, alignment, head motion removed from the apex, flow onset -> apex, strain."""
    size = config.size
    found = detect_face(onset_raw, config.backend)
    matrix = al.alignment_transform(found.anchors, size)
    onset = al.warp(onset_raw, matrix, size)
    landmarks = al.transform_points(found.landmarks, matrix)
    apex = al.warp(apex_raw, matrix, size)
    if config.stabilize:
        apex = al.remove_head_motion(apex, al.estimate_head_motion(onset, apex, al.face_mask(landmarks, size)))
    flow = compute_flow(onset, apex, config.flow, config.tvl1)
    return {
        "onset": onset, "apex": apex, "flow": flow, "strain": optical_strain(flow), "landmarks": landmarks,
        "meta": {"sample_id": interval_sample_id(video, interval), "dataset": video.dataset, "subject": video.subject,
                 "clip": f"{Path(video.name).name}_{interval.onset:06d}", "emotion": "", "action_units": "",
                 "kind": interval.kind, "apex_source": "spotted", "onset_frame": interval.onset,
                 "apex_frame": interval.apex, "offset_frame": interval.offset, "fps": video.fps},
    }


def prep_config(config: SpotConfig):
    """The `PrepConfig` that made the shards' content, in the manifest like any shard set's `prep`
    (readers such as `mer-train predict` check size, flow, backend and stabilize there)."""
    from ..config import PrepConfig

    return PrepConfig(backend=config.backend, size=config.size, flow=config.flow, stabilize=config.stabilize,
                      keep_frames=0, tvl1=config.tvl1)


# ---------------------------------------------------------------------------------------------
# the whole run

@dataclass
class SpotSummary:
    """What `spot` found and wrote: videos scanned, intervals (micro, macro), frames scanned and how fast,
    videos that failed; str() is the line mer-prep spot prints."""

    out: Path
    videos: int
    intervals: int
    micro: int
    macro: int
    frames: int
    failed: int
    seconds: float
    scan_seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.scan_seconds if self.scan_seconds else 0.0

    def __str__(self) -> str:
        return (f"{self.intervals} intervals ({self.micro} micro, {self.macro} macro) in {self.videos} videos, "
                f"{self.frames} frames scanned at {self.frames_per_second:.0f} frames/s, {self.failed} failed, "
                f"{self.seconds:.1f} s -> {self.out}")


def spot(dataset: str, raw: Path, out: Path, *, config: SpotConfig = SpotConfig(), annotations: Path | None = None,
         fps: float | None = None, shard_size: int = 64, limit: int | None = None, workers: int | None = None,
         scheduler: str | None = None, progress: bool = False) -> SpotSummary:
    """Spot intervals in every long video of `raw` (dataset `videos`, `cas2` or `samm-lv`) and write
    OUT/intervals.csv, OUT/videos.csv, OUT/ground_truth.csv (when the dataset has truth), and a shard
    set of the spotted intervals (OUT/manifest.json, OUT/shards/, OUT/failures.jsonl).

    One task per video: in this process when there is one video, `workers` is 1 or `scheduler` is
    "synchronous"; else on a local Dask cluster of `workers` processes (default: all cores, at most
    one per video), or on the dask.distributed scheduler at address `scheduler`. The results do not
    depend on where a video ran.
    """
    started = time.perf_counter()
    check_flow_available(config.flow)
    if config.scan_flow not in ("dis", "farneback"):
        raise MerError(f"scan_flow {config.scan_flow!r}: the scan needs a fast flow, dis or farneback")
    out = Path(out)
    _check_out(out)
    videos = sorted(find_long_videos(dataset, raw, annotations, fps), key=lambda v: v.name)
    if limit is not None:
        videos = videos[:limit]
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    n = min(workers or os.cpu_count() or 1, len(videos))
    if scheduler == "synchronous" or (scheduler is None and n <= 1):
        results = _run_here(videos, config, progress)
    else:
        results = _run_dask(videos, config, n, scheduler, progress)
    found = [(video, i) for video, r in zip(videos, results) for i in r["intervals"]]
    failures = sorted((f for r in results for f in r["failures"]), key=lambda f: (f["sample_id"], f["stage"]))
    _write_outputs(out, dataset, videos, found, [r["row"] for r in results], [x for r in results for x in r["records"]],
                   failures, config, shard_size, annotations)
    micro = sum(i.kind == "micro" for _, i in found)
    return SpotSummary(out, len(videos), len(found), micro, len(found) - micro, sum(r["frames"] for r in results),
                       len(failures), time.perf_counter() - started, sum(r["row"]["scan_seconds"] for r in results))


def _check_out(out: Path) -> None:
    """Refuse to write over a shard set that `mer-prep spot` did not make (its shards would go)."""
    from ..shards import load_manifest

    if (out / MANIFEST).is_file() and "spot" not in load_manifest(out).get("config", {}):
        raise MerError(f"{out} holds a shard set made by `mer-prep {load_manifest(out).get('dataset')}`, which spot "
                       "would replace; choose another OUT")


def spot_video(video: LongVideo, config: SpotConfig, progress=None) -> dict:
    """Scan one video, find its intervals and build their shard records (one task; picklable in and
    out). A video without a face is a failure of stage `face`, not an error."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one process per core; results independent of the thread count
    try:
        try:
            if video.error:
                raise FrameError(video.error)
            signals = scan_video(video, config, progress)
        except MerError as error:
            stage = "read" if isinstance(error, FrameError) else "face"
            failure = Failure(f"{video.dataset}/{video.name}", stage, type(error).__name__, str(error))
            return {"row": _video_row(video, None, "failed"), "intervals": [], "records": [],
                    "failures": [failure.to_json()], "frames": 0}
        intervals = find_intervals(video, signals, config)
        failures: list[dict] = []
        records = _records(video, intervals, config, failures)
        return {"row": _video_row(video, signals, "ok"), "intervals": intervals, "records": records,
                "failures": failures, "frames": signals.frames_read}
    finally:
        cv2.setNumThreads(threads)


def _run_here(videos: list[LongVideo], config: SpotConfig, progress: bool) -> list[dict]:
    from tqdm import tqdm

    get_backend(config.backend)  # load the models once, before the first video's clock
    results = []
    for video in videos:
        with tqdm(total=len(video.numbers), unit="frame", desc=f"spot {video.name}", disable=not progress,
                  leave=False) as bar:
            results.append(spot_video(video, config, bar.update))
    return results


def _run_dask(videos: list[LongVideo], config: SpotConfig, workers: int, scheduler: str | None,
              progress: bool) -> list[dict]:
    import contextlib

    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                       silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        futures = {client.submit(spot_video, video, config, pure=False, key=f"mer-spot-{i:05d}"): i
                   for i, video in enumerate(videos)}
        results: dict[int, dict] = {}
        with tqdm(total=len(videos), unit="video", desc="spot", disable=not progress, leave=False) as bar:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    return [results[i] for i in range(len(videos))]


def _records(video: LongVideo, intervals: list[Interval], config: SpotConfig, failures: list) -> list:
    frames = video.read_many({n for i in intervals for n in (i.onset, i.apex)}) if intervals else {}
    records = []
    for interval in intervals:
        sample_id = interval_sample_id(video, interval)
        try:
            records.append(interval_record(video, interval, frames[interval.onset], frames[interval.apex], config))
        except (MerError, KeyError) as error:
            stage = "face" if isinstance(error, NoFaceFound) else "read"
            failures.append(Failure(sample_id, stage, type(error).__name__,
                                    f"{video.path} frame {interval.onset}: {error}").to_json())
    return records


def _video_row(video: LongVideo, signals: Signals | None, status: str) -> dict:
    return {"video": video.name, "subject": video.subject, "fps": video.fps, "frames": len(video.numbers),
            "seconds": round(video.seconds, 3), "status": status, "truth_intervals": len(video.truth),
            "scan_seconds": round(signals.seconds, 3) if signals else 0.0}


def _csv(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_outputs(out, dataset, videos, found, table, records, failures, config, shard_size, annotations) -> None:
    rows = [{"video": i.video, "onset": i.onset, "apex": i.apex, "offset": i.offset, "kind": i.kind, "score": i.score,
             "sample_id": interval_sample_id(v, i)} for v, i in found]
    write_text_atomic(out / INTERVALS, _csv(rows, INTERVAL_COLUMNS))
    write_text_atomic(out / VIDEOS, _csv(table, list(table[0]) if table else ["video"]))
    truth = [t for v in videos for t in v.truth]
    if truth or any(v.truth_known for v in videos):  # a sheet without intervals: nothing to find
        write_text_atomic(out / GROUND_TRUTH, _csv([{"video": t.video, "onset": t.onset, "apex": t.apex, "offset": t.offset,
                                               "kind": t.kind, "emotion": t.label} for t in truth],
                                             ("video", "onset", "apex", "offset", "kind", "emotion")))
    else:
        (out / GROUND_TRUTH).unlink(missing_ok=True)
    recipe = {"dataset": dataset, "prep": prep_config(config).as_dict(), "spot": config.as_dict(),
              "shard_size": shard_size, "annotations": Path(annotations).name if annotations else None}
    digest = config_hash(recipe)
    (out / MANIFEST).unlink(missing_ok=True)  # written last: until then the set counts as incomplete
    for old in (out / SHARD_DIR).glob("*.h5"):
        old.unlink()
    records.sort(key=lambda r: r["meta"]["sample_id"])
    shards = []
    landmarks = landmark_count(config.backend)
    for index in range(0, max(len(records), 1), shard_size):
        chunk = records[index:index + shard_size]
        path = out / SHARD_DIR / shard_name(dataset, index // shard_size)
        sha = write_shard(path, chunk, size=config.size, landmarks=landmarks, config_hash=digest)
        shards.append({"file": path.name, "n": len(chunk), "sha256": sha})
    write_jsonl_atomic(out / FAILURES, failures)
    write_manifest(out, dataset=dataset, config=recipe, shards=shards, failed=len(failures), class_counts={},
                   pipeline_version=__version__)


__all__ = ["SpotConfig", "SpotSummary", "Signals", "scan_video", "find_intervals", "spot", "spot_video", "REGIONS"]
