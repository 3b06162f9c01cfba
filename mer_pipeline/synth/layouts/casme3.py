"""CAS(ME)^3 Part A (datasets.md section 6).

    OUT/part_A/spNO.1/a/color/355.jpg ...                   1280x720 colour JPEG, 30 fps
    OUT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx            sheet `label` (+ an empty Sheet1)

A video folder (spNO.<k>/<a..m>) is one long recording holding SEVERAL micro-expressions; only
the frames around each expression are written (a few before and after), with absolute unpadded
numbers ("JpgIndex"). Every sheet value is stored as TEXT: Subject, Filename, Onset, Apex, Offset,
AU, Objective class (I-VII), emotion. Clips are named `<Filename>_<Onset>` (e.g. `a_355`).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .. import aus
from ._base import Layout, Plan, Video, pick_interior, save_workbook

SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
LETTERS = "abcdefghijklm"
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII"}


class Casme3Layout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(range(1, 218), n, replace=False)) if n <= 217 else range(1, n + 1)
        return [f"spNO.{int(k)}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            n_videos = min(len(row), int(rng.integers(2, 4)))
            letters = sorted(str(x) for x in rng.choice(list(LETTERS), n_videos, replace=False))
            assignment = list(range(n_videos)) + [int(rng.integers(n_videos)) for _ in row[n_videos:]]
            for v, letter in enumerate(letters):
                clips, frames = [], set()
                t = int(rng.integers(8, 300))
                for label in (lab for lab, a in zip(row, assignment) if a == v):
                    clip = self.make_clip(rng, preset, subject, "", label, t)
                    clip.clip = f"{letter}_{clip.onset}"
                    clip.extra = {"filename": letter}
                    clip.annotated = {"onset": clip.onset, "apex": clip.apex, "offset": clip.offset,
                                      "emotion": label, "action_units": aus.au_label(clip.aus)}
                    frames |= set(range(clip.onset - int(rng.integers(4, 11)), clip.offset + int(rng.integers(4, 11))))
                    clips.append(clip)
                    t = clip.offset + int(rng.integers(40, 600))
                folder = PurePosixPath("part_A", subject, letter, "color")
                videos.append(Video(subject, folder, sorted(frames), clips, extra={"letter": letter}))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"{number}.jpg"

    def plant_quirks(self, rng, plan: Plan, preset):
        clips = [c for v in plan.videos for c in v.clips]
        order = [int(i) for i in rng.permutation(len(clips))]
        kinds = ("apex_before_onset", "onset_after_apex", "offset_zero", "onset_equals_apex")
        for kind, i in zip(kinds, order):
            clip = clips[i]
            a = clip.annotated
            if kind == "apex_before_onset":  # as spNO.149/d: apex 83 < onset 112
                a["apex"] = clip.onset - int(rng.integers(10, 40))
            elif kind == "onset_after_apex":  # as spNO.216/d: onset 3647 > apex 2668 (a digit slip)
                a["onset"] = clip.onset + 1000
                clip.clip = f"{clip.extra['filename']}_{a['onset']}"  # adapters name clips by the sheet's onset
            elif kind == "offset_zero":  # as spNO.40/e
                a["offset"] = 0
            else:  # onset == apex (55 rows; lost early frames, C3 issue #4)
                a["apex"] = clip.onset
            clip.quirks.append(kind)
            plan.quirks.append({"kind": kind, "sample_id": self.sample_id(clip),
                                "detail": f"sheet says onset {a['onset']}, apex {a['apex']}, offset {a['offset']}"})
        others = [c for c in clips if c.label == "others"]
        if others:
            clip = others[int(rng.integers(len(others)))]
            clip.annotated["emotion"] = "Others"
            clip.quirks.append("emotion_case")
            plan.quirks.append({"kind": "emotion_case", "sample_id": self.sample_id(clip),
                                "detail": "emotion written 'Others' (3 real rows do)"})
        video = plan.videos[int(rng.integers(len(plan.videos)))]  # the letter folder on disk is upper case
        video.folder = video.folder.parent.parent / video.extra["letter"].upper() / "color"
        for clip in video.clips:
            clip.quirks.append("folder_case")
        plan.quirks.append({"kind": "folder_case", "path": str(video.folder),
                            "detail": "folder letter upper case on disk, lower case in the sheet (as spNO.3/J)"})
        video = plan.videos[int(rng.integers(len(plan.videos)))]
        video.missing = pick_interior(rng, video, 2)
        for clip in video.clips:
            clip.quirks.append("missing_frame")
        plan.quirks.append({"kind": "missing_frame", "path": str(video.folder),
                            "detail": f"frame(s) {video.missing} absent"})

    def write_annotations(self, out: Path, plan: Plan):
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "label"
        ws.append(HEADER)
        rows = sorted((c for c in plan.clips() if c.annotated is not None),
                      key=lambda c: (c.subject, c.extra["filename"], c.onset))
        for clip in rows:
            a = clip.annotated
            ws.append([clip.subject, clip.extra["filename"], str(a["onset"]), str(a["apex"]), str(a["offset"]),
                       a["action_units"], ROMAN[aus.objective_class(clip.aus)], a["emotion"]])
        wb.create_sheet("Sheet1")
        path = out / SHEET
        save_workbook(wb, path)
        return [path]


LAYOUT = Casme3Layout(
    name="casme3",
    title="CAS(ME)^3 Part A (part_A/spNO.<k>/<a..m>/color + cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx)",
    fps=30.0,
    frame_size=(1280, 720),
    grey=False,
    kind="micro",
    face_width=260.0,
    image_format="jpg",
    default_subjects=8,
    default_clips=6,
    classes=("disgust", "surprise", "others", "fear", "anger", "sad", "happy"),
    prototypes={"sad": ("sadness",), "happy": ("happiness",)},
    quirk_kinds=("apex_before_onset", "onset_after_apex", "offset_zero", "onset_equals_apex", "emotion_case",
                 "folder_case", "missing_frame"),
    roots=("part_A", SHEET),
)
