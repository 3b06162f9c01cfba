"""SMIC-HS, original `SMIC_all_raw` release (datasets.md section 4.1).

    OUT/SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image106273.bmp ...   640x480 colour BMP, 100 fps

No annotation sheet is distributed and there is no apex anywhere: onset and offset are the first
and last frame of the clip folder; the emotion is the folder name (negative / positive / surprise).
Subject and clip folders are unpadded (s1, s1_ne_01). The truth file still knows the apex.
"""
from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from ._base import Layout, Plan, Video, pick_interior

REAL_SUBJECTS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)
CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}


class SmicLayout(Layout):
    def subject_names(self, rng, n):
        pool = REAL_SUBJECTS if n <= len(REAL_SUBJECTS) else range(1, n + 1)
        return [f"s{int(k)}" for k in sorted(rng.choice(np.array(pool), n, replace=False))]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            counters = {label: 0 for label in CODES}
            start = int(rng.integers(1000, 900000))
            for label in row:
                counters[label] += 1
                name = f"{subject}_{CODES[label]}_{counters[label]:02d}"
                clip = self.make_clip(rng, preset, subject, name, label, start)
                start = clip.offset + int(rng.integers(500, 40000))
                clip.annotated = {"onset": clip.onset, "apex": None, "offset": clip.offset, "emotion": label,
                                  "action_units": None}
                folder = PurePosixPath("SMIC_all_raw", "HS", subject, "micro", label, name)
                videos.append(Video(subject, folder, list(range(clip.onset, clip.offset + 1)), [clip]))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"image{number:06d}.bmp"

    def plant_quirks(self, rng, plan: Plan, preset):
        # frames lost inside clips (as s3_po_08 lacks 2 images, s3_sur_01 lacks 1), and a Thumbs.db
        order = [int(i) for i in rng.permutation(len(plan.videos))]
        for count, i in zip((2, 1), order):
            video = plan.videos[i]
            video.missing = pick_interior(rng, video, count)
            video.clips[0].quirks.append("missing_frame")
            plan.quirks.append({"kind": "missing_frame", "sample_id": self.sample_id(video.clips[0]),
                                "detail": f"frame(s) {video.missing} absent"})
        folder = plan.videos[order[-1]].folder
        path = str(folder / "Thumbs.db")
        plan.extra_files[path] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
        plan.quirks.append({"kind": "non_image_file", "path": path, "detail": "not an image"})


LAYOUT = SmicLayout(
    name="smic",
    title="SMIC-HS (SMIC_all_raw/HS/<subject>/micro/<emotion>/<clip>; no sheet, no apex)",
    fps=100.0,
    frame_size=(640, 480),
    grey=False,
    kind="micro",
    face_width=200.0,
    image_format="bmp",
    default_subjects=5,
    default_clips=3,
    classes=("negative", "positive", "surprise"),
    prototypes={"negative": ("disgust", "anger", "sadness", "fear", "repression"), "positive": ("happiness",)},
    quirk_kinds=("missing_frame", "non_image_file"),
    roots=("SMIC_all_raw",),
)
