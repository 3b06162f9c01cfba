"""CASME II, `CASME2_RAW_selected` + `CASME2-coding-20190701.xlsx` (datasets.md section 2).

    OUT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ... img86.jpg   640x480 colour JPEG, 200 fps
    OUT/CASME2-coding-20190701.xlsx                                  Sheet1 (+ empty Sheet2, Sheet3)

Frame numbers are absolute (never starting at 1): the clip's onset..offset plus a few baseline
frames. Sheet: Subject as TEXT '01', Filename, blank C, OnsetFrame, ApexFrame, OffsetFrame, blank G,
Action Units (a number for one plain AU, else text '4+7'), Estimated Emotion (lower case),
Objective Classes (1-7).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from .. import aus
from ._base import Layout, Plan, Video, pick_interior, save_workbook

IRREGULAR_NAMES = ("EP01_2", "EP08_1", "EP06_02_01", "EP09f")
SHEET = "CASME2-coding-20190701.xlsx"
HEADER = ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
          "Estimated Emotion", "Objective Classes")
HEADER_FORMATS = ("@", "#,##0", None, "#,##0", "General", "#,##0", None, "General", "#,##0", "General")
WIDTHS = {"A": 8.88, "B": 13.38, "C": 5.62, "D": 16.0, "F": 13.88, "G": 5.0, "H": 11.63, "I": 20.13, "J": 18.5}


def sheet_au(tokens) -> int | str:
    """The sheet's AU cell: a number for one AU without side prefix (12), else text ('6+12', 'R14')."""
    label = aus.au_label(tokens)
    return int(label) if label.isdigit() else label


class Casme2Layout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(np.arange(1, 27), n, replace=False)) if n <= 26 else range(1, n + 1)
        return [f"sub{int(k):02d}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            for name, label in zip(self._filenames(rng, len(row)), row):
                videos.append(self._video(rng, preset, subject, name, label))
        # one irregular folder name per tree, as the real set has (EP01_2, EP06_02_01, ...)
        if videos:
            target = videos[int(rng.integers(len(videos)))]
            taken = {v.clips[0].clip for v in videos if v.subject == target.subject}
            irregular = [n for n in IRREGULAR_NAMES if n not in taken]
            self._rename(target, irregular[int(rng.integers(len(irregular)))])
        return Plan(videos=videos)

    def _filenames(self, rng, n):
        names = set()
        while len(names) < n:
            ep, k = int(rng.integers(1, 20)), int(rng.integers(1, 13))
            names.add(f"EP{ep:02d}_{k:02d}{'f' if rng.random() < 0.4 else ''}")
        names = sorted(names)  # a set's order depends on PYTHONHASHSEED: sort, then shuffle
        return [names[i] for i in rng.permutation(len(names))]

    def _video(self, rng, preset, subject, name, label):
        onset = int(rng.integers(12, 300))
        clip = self.make_clip(rng, preset, subject, name, label, onset)
        first = clip.onset - int(rng.integers(2, 6))
        last = clip.offset + int(rng.integers(2, 6))
        clip.annotated = {"onset": clip.onset, "apex": clip.apex, "offset": clip.offset,
                          "emotion": label, "action_units": aus.au_label(clip.aus)}
        return Video(subject, PurePosixPath("CASME2_RAW_selected", subject, name), list(range(first, last + 1)), [clip])

    def _rename(self, video: Video, name: str):
        video.clips[0].clip = name
        video.folder = video.folder.parent / name

    def frame_file(self, video, number):
        return video.folder / f"img{number}.jpg"

    def plant_quirks(self, rng, plan: Plan, preset):
        order = [int(i) for i in rng.permutation(len(plan.videos))]
        sheet_quirks = ["apex_slash", "apex_outside", "apex_equals_onset", "missing_frame"]
        for kind, i in zip(sheet_quirks, order):
            video = plan.videos[i]
            clip = video.clips[0]
            clip.quirks.append(kind)
            sid = self.sample_id(clip)
            if kind == "apex_slash":
                clip.annotated["apex"] = "/"
                plan.quirks.append({"kind": kind, "sample_id": sid, "detail": "ApexFrame written as '/'"})
            elif kind == "apex_outside":
                clip.annotated["apex"] = clip.offset + int(rng.integers(5, 40))
                plan.quirks.append({"kind": kind, "sample_id": sid,
                                    "detail": f"ApexFrame {clip.annotated['apex']} > OffsetFrame {clip.offset}"})
            elif kind == "apex_equals_onset":
                clip.annotated["apex"] = clip.onset
                plan.quirks.append({"kind": kind, "sample_id": sid, "detail": "ApexFrame == OnsetFrame"})
            else:
                video.missing = pick_interior(rng, video)
                plan.quirks.append({"kind": kind, "sample_id": sid, "detail": f"frame(s) {video.missing} absent"})
        # a folder with no sheet row, and a sheet row with no folder (as sub09/EP02_02f, sub24/EP02_07)
        subjects = sorted({v.subject for v in plan.videos})
        s1, s2 = subjects[int(rng.integers(len(subjects)))], subjects[int(rng.integers(len(subjects)))]
        for kind, subject in (("unlabelled_folder", s1), ("row_without_folder", s2)):
            taken = {c.clip for c in plan.clips() if c.subject == subject}
            name = next(n for n in self._filenames(rng, len(taken) + 8) if n not in taken)
            label = self.classes[int(rng.integers(len(self.classes)))]
            video = self._video(rng, preset, subject, name, label)
            clip = video.clips[0]
            clip.quirks.append(kind)
            if kind == "unlabelled_folder":
                clip.annotated = None
                plan.videos.append(video)
                detail = "frame folder on disk, no row in the coding sheet"
            else:
                clip.on_disk = False
                plan.orphans.append(clip)
                detail = "row in the coding sheet, no frame folder on disk"
            plan.quirks.append({"kind": kind, "sample_id": self.sample_id(clip), "detail": detail})
        # junk files, as in user copies: a Windows shortcut beside the clip folders, Thumbs.db inside one
        junk_dir = plan.videos[order[0]].folder
        plan.extra_files[str(junk_dir.parent / "Desktop - Shortcut.lnk")] = b"L\x00\x00\x00\x01\x14\x02\x00" + bytes(68)
        plan.extra_files[str(junk_dir / "Thumbs.db")] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
        for path in sorted(plan.extra_files):
            plan.quirks.append({"kind": "non_image_file", "path": path, "detail": "not an image"})

    def write_annotations(self, out: Path, plan: Plan):
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "Sheet1"
        for col, (name, fmt) in enumerate(zip(HEADER, HEADER_FORMATS), start=1):
            if name is not None:
                cell = ws.cell(row=1, column=col, value=name)
                cell.number_format = fmt
        rows = sorted((c for c in plan.clips() if c.annotated is not None), key=lambda c: (c.subject, c.clip))
        for r, clip in enumerate(rows, start=2):
            a = clip.annotated
            subject = ws.cell(row=r, column=1, value=clip.subject[3:])
            subject.number_format = "@"
            ws.cell(row=r, column=2, value=clip.clip)
            ws.cell(row=r, column=4, value=a["onset"])
            ws.cell(row=r, column=5, value=a["apex"])
            ws.cell(row=r, column=6, value=a["offset"])
            ws.cell(row=r, column=8, value=sheet_au(clip.aus))
            ws.cell(row=r, column=9, value=a["emotion"])
            ws.cell(row=r, column=10, value=aus.objective_class(clip.aus))
        for letter, width in WIDTHS.items():
            ws.column_dimensions[letter].width = width
        wb.create_sheet("Sheet2")
        wb.create_sheet("Sheet3")
        path = out / SHEET
        save_workbook(wb, path)
        return [path]


LAYOUT = Casme2Layout(
    name="casme2",
    title="CASME II (CASME2_RAW_selected + CASME2-coding-20190701.xlsx)",
    fps=200.0,
    frame_size=(640, 480),
    grey=False,
    kind="micro",
    face_width=235.0,
    image_format="jpg",
    default_subjects=12,
    default_clips=6,
    classes=("happiness", "disgust", "repression", "surprise", "others"),
    rare=("fear", "sadness"),
    quirk_kinds=("apex_slash", "apex_outside", "apex_equals_onset", "missing_frame", "unlabelled_folder",
                 "row_without_folder", "non_image_file"),
    roots=("CASME2_RAW_selected", SHEET),
)
