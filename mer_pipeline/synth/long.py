"""Synthetic long videos for spotting: seconds to minutes of one face with planted micro- and
macro-expressions among distractors, in the CAS(ME)^2 long-video layout or as video files.

    generate_long("cas2", Path("raw/cas2-long"))     # rawpic/s15/15_0101disgustingteeth/img001.jpg + sheet
    generate_long("videos", Path("raw/rec-long"))    # videos/rec01.mp4 + spot_truth.csv

Each video is one subject (made by `synth.faces.make_subject` from a real photo) rendered by the
generator's own renderer (`synth.motion.Renderer`): slow head drift, sensor noise, compression, and
on a timeline without overlaps

* expressions: micro (0.2-0.45 s) and macro (0.8-2.5 s) ones, each the action units of an emotion
  (`synth.aus`) with a raised-cosine rise to the apex and fall to the offset;
* distractors, which a spotter must not report: blinks (the upper lids close and open in 0.15-0.3 s),
  talking (a burst of 0.2-0.3 s jaw-drop syllables over 2-3 s), a head turn (a rigid shift and
  roll of the head and back, about 1 s) and a lighting change (a gradient across the face, 1-2 s);
  one talking burst, head turn and lighting change per 30 s of video.

The last video of a set (`distractor_video`) has distractors only: what a spotter reports there is
a false positive by construction. The truth is in the layout's own sheet (CAS(ME)^2: the
CASFEcode_final sheet with micro- and macro-expression rows; videos: `spot_truth.csv`) and, with every
distractor, in `synth_long_truth.json`. Same arguments, same bytes (JPEG frames; the mp4 encoder of
the installed OpenCV decides the bytes of video files).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from . import aus, motion
from . import faces as facelib
from .errors import SynthError

TRUTH_FILE = "synth_long_truth.json"
TRUTH_SCHEMA = "mer-synth-long/1"
VIDEO_TRUTH = "spot_truth.csv"  # the truth of `videos` sets, read by `mer-prep spot videos`
LONG_DATASETS = ("cas2", "videos")
# CAS(ME)^2 sheet categories and the emotions whose action units are planted for them
CATEGORIES = {"negative": ("disgust", "anger", "sadness"), "positive": ("happiness",), "surprise": ("surprise",),
              "others": ("others",)}


@dataclass(frozen=True)
class LongSpec:
    """What a synthetic long-video set holds. Amplitudes are the largest displacement at the apex in
    raw pixels, for a face `face_width` px wide (jaw, landmark 0 to 16); times in seconds."""

    videos: int = 2  # videos with expressions; the distractor-only video comes on top
    seconds: float = 30.0
    fps: float = 30.0
    frame_size: tuple[int, int] = (320, 240)  # (W, H); the real CAS(ME)^2 is 640x480
    face_width: float = 110.0
    micro_per_video: int = 3
    macro_per_video: int = 2
    distractor_video: bool = True
    micro_duration_s: tuple[float, float] = (0.25, 0.45)
    macro_duration_s: tuple[float, float] = (0.8, 2.5)
    micro_amplitude: tuple[float, float] = (0.8, 1.6)
    macro_amplitude: tuple[float, float] = (2.5, 4.5)
    blinks_per_minute: float = 10.0
    blink_amplitude: tuple[float, float] = (2.5, 3.5)
    talking_s: tuple[float, float] = (2.0, 3.0)
    talking_amplitude: tuple[float, float] = (1.5, 3.0)
    head_turn_shift: tuple[float, float] = (5.0, 9.0)  # px
    head_turn_roll_deg: tuple[float, float] = (2.0, 4.0)
    light_strength: tuple[float, float] = (0.12, 0.25)
    head_drift: tuple[float, float] = (0.3, 1.0)  # amplitude of each slow drift sinusoid (px)
    noise_sigma: float = 1.2
    jpeg_quality: int = 92

    def frames(self) -> int:
        return int(round(self.seconds * self.fps))


def _rng(seed: int, *key) -> np.random.Generator:
    parts = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
    return np.random.default_rng(np.random.SeedSequence(parts))


# ---------------------------------------------------------------------------------------------
# the timeline of one video

def _place(rng: np.random.Generator, busy: list[tuple[int, int]], length: int, first: int, last: int,
           gap: int) -> int | None:
    """A start frame for an event of `length` frames in [first, last] that keeps `gap` frames away
    from every busy span; None when none is found."""
    for _ in range(400):
        start = int(rng.integers(first, max(first + 1, last - length)))
        if all(start + length + gap <= a or start >= b + gap for a, b in busy):
            return start
    return None


def plan_events(rng: np.random.Generator, spec: LongSpec, expressions: bool) -> list[dict]:
    """Events of one video, sorted by onset: expressions (kind micro|macro) and distractors (kind
    blink|talking|head_turn|light). The first second stays still (a calm reference for the face)."""
    fps, n = spec.fps, spec.frames()
    each = max(1, int(round(spec.seconds / 30)))  # talking, head turns, lighting: one of each per 30 s
    wanted: list[tuple[str, float]] = [("talking", rng.uniform(*spec.talking_s)) for _ in range(each)]
    if expressions:
        wanted += [("macro", rng.uniform(*spec.macro_duration_s)) for _ in range(spec.macro_per_video)]
    for _ in range(each):
        wanted += [("head_turn", rng.uniform(0.8, 1.4)), ("light", rng.uniform(1.0, 2.0))]
    if expressions:
        wanted += [("micro", rng.uniform(*spec.micro_duration_s)) for _ in range(spec.micro_per_video)]
    wanted += [("blink", rng.uniform(0.15, 0.3)) for _ in range(int(round(spec.blinks_per_minute * spec.seconds / 60)))]
    busy, events = [], []
    for kind, seconds in wanted:  # long events first, while there is room
        length = max(int(round(seconds * fps)), 4)
        start = _place(rng, busy, length, int(fps), n - int(0.5 * fps), int(0.6 * fps))
        if start is None:
            if kind in ("micro", "macro"):
                raise SynthError(f"{spec.seconds:.0f} s cannot hold {spec.micro_per_video} micro- and "
                                 f"{spec.macro_per_video} macro-expressions among the distractors; "
                                 "use longer videos or fewer expressions")
            continue
        busy.append((start, start + length - 1))
        onset, offset = start, start + length - 1
        apex = int(np.clip(onset + round(rng.uniform(0.35, 0.6) * (offset - onset)), onset + 1, offset - 1))
        events.append({"kind": kind, "onset": onset, "apex": apex, "offset": offset})
    return sorted(events, key=lambda e: e["onset"])


# ---------------------------------------------------------------------------------------------
# motion of each event

def _expression_bumps(rng, spec: LongSpec, kind: str, tokens, landmarks, shape) -> list[dict]:
    raw = aus.bumps_for(tokens, landmarks, rng)
    if kind == "macro":
        raw = [{**b, "sigma": b["sigma"] * 1.5} for b in raw]  # macro movements spread wider
    amplitude = rng.uniform(*(spec.macro_amplitude if kind == "macro" else spec.micro_amplitude))
    return _smooth(raw, amplitude, shape)


def _smooth(raw: list[dict], amplitude: float, shape) -> list[dict]:
    """Scaled to `amplitude`, shrunk where the warp would fold (as the clip generator does)."""
    bumps = aus.scale_bumps(raw, amplitude, shape)
    slope = motion.max_gradient(bumps, shape)
    return aus.scale_bumps(raw, amplitude * 0.45 / slope, shape) if slope > 0.45 else bumps


def _blink_bumps(rng, spec: LongSpec, landmarks, shape) -> list[dict]:
    """Both upper lids move down (towards the chin) and back."""
    _, _, ey, iod = aus.face_frame(landmarks)
    raw = [{"x": float(c[0]), "y": float(c[1]), "sigma": 0.11 * iod, "u": float(ey[0]), "v": float(ey[1])}
           for c in (landmarks[[37, 38]].mean(axis=0), landmarks[[43, 44]].mean(axis=0))]
    return _smooth(raw, rng.uniform(*spec.blink_amplitude), shape)


def _syllables(rng, spec: LongSpec, event: dict) -> list[tuple[int, int, int]]:
    """(onset, apex, offset) of the jaw-drop syllables of a talking burst, back to back."""
    out, t = [], event["onset"]
    while True:
        length = max(int(round(rng.uniform(0.2, 0.3) * spec.fps)), 4)
        if t + length - 1 > event["offset"]:
            return out
        out.append((t, t + length // 2, t + length - 1))
        t += length + int(rng.integers(0, 3))


def _video_motion(rng, spec: LongSpec, subject: facelib.Subject, events: list[dict]):
    """The renderer's head dict and Expression list for a video, with the truth of every event."""
    shape = subject.base.shape[:2]
    landmarks = subject.landmarks.astype(np.float64)
    head = motion.draw_head_motion(rng, landmarks[30], spec.fps, spec.head_drift, (0.1, 0.4), origin=None)
    expressions, truth = [], []
    for event in events:
        kind = event["kind"]
        entry = dict(event)
        if kind in ("micro", "macro"):
            category = str(rng.choice(sorted(CATEGORIES)))
            prototype = str(rng.choice(CATEGORIES[category]))
            options = aus.EMOTION_AUS[prototype]
            tokens = tuple(options[int(rng.integers(len(options)))])
            bumps = _expression_bumps(rng, spec, kind, tokens, landmarks, shape)
            expressions.append(motion.Expression(event["onset"], event["apex"], event["offset"], bumps))
            entry.update(emotion=category, prototype=prototype, action_units=aus.au_label(tokens),
                         amplitude=round(_peak(bumps, shape), 4))
        elif kind == "blink":
            bumps = _blink_bumps(rng, spec, landmarks, shape)
            expressions.append(motion.Expression(event["onset"], event["apex"], event["offset"], bumps))
            entry.update(amplitude=round(_peak(bumps, shape), 4))
        elif kind == "talking":
            amplitude = rng.uniform(*spec.talking_amplitude)
            syllables = _syllables(rng, spec, event)
            for onset, apex, offset in syllables:
                bumps = _smooth(aus.bumps_for(("26",), landmarks, rng), amplitude * rng.uniform(0.7, 1.0), shape)
                expressions.append(motion.Expression(onset, apex, offset, bumps))
            entry.update(amplitude=round(amplitude, 4), syllables=[list(s) for s in syllables])
        elif kind == "head_turn":
            shift = rng.uniform(*spec.head_turn_shift)
            angle = rng.uniform(0, 2 * np.pi)
            roll = rng.uniform(*spec.head_turn_roll_deg) * rng.choice((-1.0, 1.0))
            motion.add_pulse(head, event["onset"], event["apex"], event["offset"], round(shift * np.cos(angle), 4),
                             round(shift * np.sin(angle), 4), round(float(roll), 4))
            entry.update(shift_px=round(shift, 4), roll_deg=round(float(roll), 4))
        elif kind == "light":
            light = {"angle_deg": round(float(rng.uniform(0, 360)), 3),
                     "strength": round(float(rng.uniform(*spec.light_strength)), 4),
                     "centre": [round(float(v), 3) for v in landmarks[30]],
                     "width": round(float(np.linalg.norm(landmarks[16] - landmarks[0])), 3)}
            still = [{"x": float(landmarks[30, 0]), "y": float(landmarks[30, 1]), "sigma": 2.0, "u": 0.0, "v": 0.0}]
            expressions.append(motion.Expression(event["onset"], event["apex"], event["offset"], still, light))
            entry.update(light=light)
        truth.append(entry)
    return head, expressions, truth


def _peak(bumps, shape) -> float:
    return float(np.sqrt((aus.field_on_grid(bumps, shape) ** 2).sum(axis=0)).max())


def _frames(spec: LongSpec, subject: facelib.Subject, head: dict, expressions, rng):
    """Yield the video's frames (BGR uint8) in order."""
    bank = motion.NoiseBank(subject.base.shape, _rng(0, "long-noise-bank"))
    renderer = motion.Renderer(subject.base, subject.motion_weight, head, expressions,
                               bank.for_sigma(spec.noise_sigma), rng, bank)
    for number in range(spec.frames()):
        yield renderer.noisy(number)


# ---------------------------------------------------------------------------------------------
# layouts

@dataclass
class _Video:
    name: str  # the video's name as `mer-prep spot` reports it
    subject: str
    path: PurePosixPath  # folder (cas2) or file (videos), relative to OUT
    first: int  # number of the first frame
    events: list[dict]
    expressions: bool
    extra: dict


def _plan(dataset: str, spec: LongSpec, seed: int) -> list[_Video]:
    from .layouts.cas2 import STIMULI

    plan_rng = _rng(seed, dataset, "long-plan")
    count = spec.videos + int(spec.distractor_video)
    videos = []
    if dataset == "cas2":
        numbers = sorted(int(k) for k in plan_rng.choice(range(15, 41), count, replace=False))
        codes = sorted(STIMULI)
        for i, number in enumerate(numbers):
            code = codes[i % len(codes)]
            folder = f"{number}_{code:04d}{STIMULI[code][1]}"
            path = PurePosixPath("CAS(ME)^2", "rawpic", f"s{number}", folder)
            videos.append(_Video(f"s{number}/{folder}", f"s{number}", path, 1, [], i < spec.videos,
                                 {"code": code, "stimulus": STIMULI[code][0], "number": number}))
    elif dataset == "videos":
        for i in range(count):
            name = f"rec{i + 1:02d}" if i < spec.videos else "distractors"
            videos.append(_Video(name, name, PurePosixPath("videos", f"{name}.mp4"), 0, [], i < spec.videos, {}))
    else:
        raise SynthError(f"synthetic long videos exist for {', '.join(LONG_DATASETS)}, not {dataset!r}")
    for i, video in enumerate(videos):
        video.events = plan_events(_rng(seed, dataset, "long-events", i), spec, video.expressions)
    return videos


def _write_video(out: Path, dataset: str, spec: LongSpec, video: _Video, frames) -> tuple[int, int]:
    """Write the frames of one video; returns (frames, bytes)."""
    target = out / video.path
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    if dataset == "cas2":
        target.mkdir(exist_ok=True)
        size = 0
        for count, frame in enumerate(frames, start=1):
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
            if not ok:
                raise SynthError(f"OpenCV could not encode frame {count} of {target}")
            (target / f"img{count:03d}.jpg").write_bytes(buf.tobytes())
            size += buf.size
        return count, size
    width, height = spec.frame_size
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (width, height))
    if not writer.isOpened():
        raise SynthError(f"{target}: OpenCV cannot write mp4 (mp4v) files here; install opencv-contrib-python "
                         "with its bundled FFmpeg")
    try:
        for count, frame in enumerate(frames, start=1):
            writer.write(frame)
    finally:
        writer.release()
    return count, target.stat().st_size


def _cas2_sheet(out: Path, videos: list[_Video]) -> Path:
    """CAS(ME)^2code_final.xlsx: CASFEcode_final (no header), naming rule1, naming rule2."""
    import openpyxl

    from .layouts._base import save_workbook
    from .layouts.cas2 import SELF_REPORT, SHEET, STIMULI

    wb = openpyxl.Workbook()
    codes = wb.active
    codes.title = "CASFEcode_final"
    numbers = {v.subject: k for k, v in enumerate(sorted(videos, key=lambda v: v.extra["number"]), start=1)}
    for video in sorted(videos, key=lambda v: v.extra["number"]):
        index = 0
        for event in video.events:
            if event["kind"] not in ("micro", "macro"):
                continue
            index += 1
            units = event["action_units"]
            codes.append([numbers[video.subject], f"{video.extra['stimulus']}_{index}", event["onset"], event["apex"],
                          event["offset"], int(units) if units.isdigit() else units, event["emotion"],
                          f"{event['kind']}-expression", SELF_REPORT[event["emotion"]]])
    rule1 = wb.create_sheet("naming rule1")
    for video in sorted(videos, key=lambda v: v.extra["number"]):
        rule1.append([video.extra["number"], video.subject, numbers[video.subject]])
    rule2 = wb.create_sheet("naming rule2")
    for code, (stimulus, _) in sorted(STIMULI.items()):
        rule2.append([code, stimulus])
    path = out / "CAS(ME)^2" / SHEET
    save_workbook(wb, path)
    return path


def _videos_truth(out: Path, videos: list[_Video]) -> Path:
    """spot_truth.csv: one row per planted expression (video, onset, apex, offset, kind, emotion,
    action_units); frames numbered from 0 as decoded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video", "onset", "apex", "offset", "kind", "emotion", "action_units"])
    for video in videos:
        for e in video.events:
            if e["kind"] in ("micro", "macro"):
                writer.writerow([video.name, e["onset"], e["apex"], e["offset"], e["kind"], e["emotion"],
                                 e["action_units"]])
    path = out / VIDEO_TRUTH
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _roots(dataset: str) -> tuple[str, ...]:
    return ("CAS(ME)^2",) if dataset == "cas2" else ("videos", VIDEO_TRUTH)


def generate_long(dataset: str, out: Path, *, seed: int = 0, spec: LongSpec = LongSpec(),
                  faces: Path | None = None, overwrite: bool = False, progress=None) -> dict:
    """Write a synthetic long-video set of `dataset` (cas2 | videos) into `out`; returns a summary
    (videos, frames, bytes, seconds, truth path, counts of expressions and distractors).
    `progress(done, total)` is called after each video."""
    started = time.perf_counter()
    if dataset not in LONG_DATASETS:
        raise SynthError(f"--long is available for {', '.join(LONG_DATASETS)}, not {dataset!r}")
    if spec.videos < 1 and not spec.distractor_video:
        raise SynthError("a long-video set needs at least one video")
    out = Path(out)
    existing = [out / r for r in (*_roots(dataset), TRUTH_FILE) if (out / r).exists()]
    if existing and not overwrite:
        raise SynthError(f"{out} already holds {', '.join(p.name for p in existing)}; use --overwrite "
                         "(overwrite=True) to replace it, or choose another OUT")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)

    videos = _plan(dataset, spec, seed)
    photos = facelib.load_photos(faces)
    records, n_frames, n_bytes = [], 0, 0
    for i, video in enumerate(videos):
        subject = facelib.make_subject(f"long/{video.subject}", photos, _rng(seed, "long-identity", video.subject),
                                       spec.frame_size, spec.face_width, False)
        rng = _rng(seed, dataset, "long-video", i)
        head, expressions, truth = _video_motion(rng, spec, subject, video.events)
        frames, size = _write_video(out, dataset, spec, video, _frames(spec, subject, head, expressions, rng))
        video.events = shifted = [_numbered(e, video.first) for e in truth]  # rendered from 0, numbered as stored
        n_frames += frames
        n_bytes += size
        records.append({"video": video.name, "subject": video.subject, "path": str(video.path),
                        "first_frame": video.first, "frames": frames, "fps": spec.fps,
                        "expressions": [e for e in shifted if e["kind"] in ("micro", "macro")],
                        "distractors": [e for e in shifted if e["kind"] not in ("micro", "macro")],
                        "identity": _plain(subject.identity), "head": _plain(head)})
        if progress:
            progress(i + 1, len(videos))
    sheet = _cas2_sheet(out, videos) if dataset == "cas2" else _videos_truth(out, videos)
    truth = {"schema": TRUTH_SCHEMA, "dataset": dataset, "seed": seed, "spec": _plain(asdict(spec)),
             "annotations": str(sheet.relative_to(out)), "videos": records}
    truth_path = out / TRUTH_FILE
    truth_path.write_text(json.dumps(truth, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    expressions = [e for r in records for e in r["expressions"]]
    return {"dataset": dataset, "out": out, "videos": len(records), "frames": n_frames, "bytes": n_bytes,
            "micro": sum(e["kind"] == "micro" for e in expressions),
            "macro": sum(e["kind"] == "macro" for e in expressions),
            "distractors": sum(len(r["distractors"]) for r in records), "annotations": sheet, "truth": truth_path,
            "seconds": round(time.perf_counter() - started, 2)}


def _numbered(event: dict, first: int) -> dict:
    """An event's frames as the layout numbers them (CAS(ME)^2 from 1, video files from 0)."""
    out = {**event, **{k: event[k] + first for k in ("onset", "apex", "offset")}}
    if "syllables" in event:
        out["syllables"] = [[n + first for n in syllable] for syllable in event["syllables"]]
    return out


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def small_spec(**changes) -> LongSpec:
    """`LongSpec` with changes, for tests and the command line (e.g. seconds=20, videos=1)."""
    return replace(LongSpec(), **changes)
