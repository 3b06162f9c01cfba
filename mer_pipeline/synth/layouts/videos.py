"""Your own recordings (`mer-prep videos`, datasets.md "Your own recordings"): mp4 files + a CSV.

    OUT/recordings/p03_take1.mp4 ...      640x480 colour, 30 fps, MPEG-4 part 2 (OpenCV's 'mp4v')
    OUT/recordings/p07_take2/frame_00001.png ...   one recording kept as a folder of frames
    OUT/labels.csv                        subject,clip,onset,apex,offset,emotion,onset_s,apex_s,offset_s,fps

Each recording holds one expression with a few neutral frames before and after it. Video frames
count from 0, a frame folder's from its file names (1 ...). The CSV is written as a lab would: some
rows without a subject (then the clip is its own subject), some without an apex (spotted), some
without onset/offset (the whole recording), some in seconds (`onset_s`, ...) instead of frames,
`clip` sometimes with its extension, `fps` only for the frame folder (a video states its own). With --quirks, one mp4 is truncated (undecodable) and one row
has an onset that is not a number (both have `annotated = None`: nothing usable).

Frames are rendered as PNG into `recordings/<clip>/`, then encoded into `recordings/<clip>.mp4`
and removed (in `write_annotations`, which the generator calls after rendering).
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ...sample import sample_id
from ._base import Layout, Plan, Video

CSV_NAME = "labels.csv"
FOLDER = "recordings"
COLUMNS = ("subject", "clip", "onset", "apex", "offset", "emotion", "onset_s", "apex_s", "offset_s", "fps")


class VideosLayout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(np.arange(1, 100), n, replace=False)) if n < 99 else range(1, n + 1)
        return [f"p{int(k):02d}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            for take, label in enumerate(row, start=1):
                clip = self.make_clip(rng, preset, subject, f"{subject}_take{take}", label,
                                      int(rng.integers(4, 11)))
                length = clip.offset + int(rng.integers(4, 10)) + 1
                videos.append(Video(subject, PurePosixPath(FOLDER, clip.clip), list(range(length)), [clip],
                                    extra={"store": "mp4"}))
        if len(videos) >= 3:  # one recording as a folder of frames numbered from 1, as `ffmpeg -i x.mp4 %05d.png` writes
            video = videos[int(rng.integers(len(videos)))]
            shift = 1
            clip = video.clips[0]
            clip.onset, clip.apex, clip.offset = clip.onset + shift, clip.apex + shift, clip.offset + shift
            video.frames = [n + shift for n in video.frames]
            video.extra["store"] = "frames"
        for video in videos:
            video.clips[0].extra["csv"] = self._row(rng, video)
        # at least one row of each kind the CSV documents
        rows = [v.clips[0].extra["csv"] for v in videos]
        if rows and all(r["subject"] for r in rows):
            rows[-1]["subject"] = ""
        if len(rows) > 1 and all(r["apex"] is not None for r in rows):
            rows[0]["apex"] = None
        for video in videos:
            video.clips[0].annotated = _meaning(video)
        return Plan(videos=videos)

    def _row(self, rng, video: Video) -> dict:
        clip = video.clips[0]
        row = {"subject": clip.subject if rng.random() >= 0.25 else "", "clip": clip.clip, "emotion": clip.label,
               "onset": clip.onset, "apex": clip.apex if rng.random() >= 0.35 else None, "offset": clip.offset,
               "seconds": False}
        if video.extra["store"] == "mp4" and rng.random() < 0.5:
            row["clip"] = clip.clip + ".mp4"
        style = rng.random()
        if style < 0.15:  # the whole recording
            row["onset"] = row["offset"] = None
        elif style < 0.35 and video.extra["store"] == "mp4":  # times in seconds (a frame folder has no fps)
            row["seconds"] = True
        return row

    def sample_id(self, clip):
        subject = clip.extra["csv"]["subject"] if "csv" in clip.extra else clip.subject
        return sample_id(self.name, subject or clip.clip, clip.clip)

    def frame_file(self, video, number):
        if video.extra.get("store") == "frames":
            return video.folder / f"frame_{number:05d}.png"
        return video.folder / f"{number:05d}.png"

    def plant_quirks(self, rng, plan: Plan, preset) -> None:
        encoded = [v for v in plan.videos if v.extra["store"] == "mp4"]
        plain = [v for v in encoded if v.clips[0].extra["csv"]["subject"] and v.clips[0].extra["csv"]["apex"] is not None]
        encoded = plain if len(plain) >= 2 else encoded  # keep the rows without subject or apex usable
        if len(encoded) < 2:
            return
        broken, bad = (encoded[i] for i in rng.choice(len(encoded), 2, replace=False))
        broken.extra["broken"] = True
        broken.clips[0].quirks.append("broken-video")
        broken.clips[0].annotated = None  # nothing an adapter can use: the clip must fail
        plan.quirks.append({"kind": "broken-video", "sample_id": self.sample_id(broken.clips[0]),
                            "detail": "mp4 truncated to 40% of its bytes: it cannot be decoded"})
        row = bad.clips[0].extra["csv"]
        row["seconds"] = False
        row["onset"] = f"{bad.clips[0].onset}a"
        bad.clips[0].quirks.append("bad-row")
        bad.clips[0].annotated = None
        plan.quirks.append({"kind": "bad-row", "sample_id": self.sample_id(bad.clips[0]),
                            "detail": f"onset cell {row['onset']!r} is not a frame number"})

    def write_annotations(self, out: Path, plan: Plan):
        written = []
        for video in plan.videos:
            if video.extra["store"] == "mp4":
                written.append(self._encode(out, video))
        sheet = out / CSV_NAME
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for video in plan.videos:
            fps = f"{self.fps:g}" if video.extra["store"] == "frames" else ""
            writer.writerow(_csv_row(video.clips[0].extra["csv"], self.fps) + [fps])
        sheet.write_text(buffer.getvalue(), encoding="utf-8")
        return [sheet, *written]

    def _encode(self, out: Path, video: Video) -> Path:
        folder = out / video.folder
        path = folder.with_suffix(".mp4")
        w, h = self.frame_size
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h), True)
        try:
            for number in video.frames:
                frame = cv2.imread(str(out / self.frame_file(video, number)), cv2.IMREAD_COLOR)
                writer.write(frame)
        finally:
            writer.release()
        shutil.rmtree(folder)
        if video.extra.get("broken"):
            data = path.read_bytes()
            path.write_bytes(data[: int(len(data) * 0.4)])
        return path


def _meaning(video: Video) -> dict:
    """What the CSV row tells an adapter (`Clip.annotated`): empty onset/offset mean the first/last
    frame of the recording, seconds mean frames; the cells as written are in `extra["csv"]`."""
    row = video.clips[0].extra["csv"]
    onset = video.frames[0] if row["onset"] is None else row["onset"]
    offset = video.frames[-1] if row["offset"] is None else row["offset"]
    return {"subject": row["subject"], "onset": onset, "apex": row["apex"], "offset": offset,
            "emotion": row["emotion"]}


def _csv_row(row: dict, fps: float) -> list:
    frames = [row[k] for k in ("onset", "apex", "offset")]
    if row["seconds"]:
        seconds = ["" if n is None else f"{n / fps:.4f}" for n in frames]
        frames = ["", "", ""]
    else:
        seconds = ["", "", ""]
    cells = [row["subject"], row["clip"], *("" if n is None else n for n in frames), row["emotion"], *seconds]
    return cells


LAYOUT = VideosLayout(
    name="videos",
    title="your own recordings: mp4 files (and a frame folder) + labels.csv",
    fps=30.0,
    frame_size=(640, 480),
    grey=False,
    kind="micro",
    face_width=230.0,
    image_format="png",
    default_subjects=6,
    default_clips=4,
    classes=("happy", "surprise", "disgust"),
    prototypes={"happy": ("happiness",)},
    quirk_kinds=("broken-video", "bad-row"),
    roots=(FOLDER, CSV_NAME),
)
