"""SAMM (micro-expression set), `SAMM/` + `SAMM_Micro_FACS_Codes_v2.xlsx` (datasets.md section 3).

    OUT/SAMM/006/006_1_2/006_05562.jpg ... 006_05632.jpg     960x650 GREY JPEG, 200 fps
    OUT/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx                   sheet MICRO_ONLY

Clip folders hold exactly onset..offset (absolute numbers, zero-padded to 5 digits). The sheet has
the real 13-row notes block, the header in Excel row 14 and data from row 15: Subject (TEXT '006'),
Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame, Duration, Micro, Action Units,
Estimated Emotion (Title case), Objective Classes, Notes. (The real Duration cells are formulas
`=SUM(F15-D15)+1` with cached values; a file written without Excel cannot cache a formula's value,
so Duration is written as its number.)
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from .. import aus
from ._base import Layout, Plan, Video, save_workbook

SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
REAL_SUBJECTS = [k for k in range(6, 38) if k not in (8, 27, 29)]
NOTES = {  # (row, column) -> text, as in the real file
    (1, 1): "SAMM Dataset - Master FACS Codes",
    (1, 5): "(Note to the users: If you're using SAMM, please cite: Davison, A. K., Lansley, C., Costen, N., "
            "Tan, K., & Yap, M. H. (2016). SAMM: A spontaneous micro-facial movement dataset. IEEE "
            "Transactions on Affective Computing.)",
    (3, 1): "9/9/17 - New updates with Emotional and Objective Classes. For details please refer to: ",
    (3, 9): "arXiv preprint arXiv:1708.07549.",
    (4, 5): "(Note to the users: if you're using the emotional or objective classes, please cite: Davison, "
            "A. K., Merghani, W., & Yap, M. H. (2017). Objective Classes for Micro-Facial Expression "
            "Recognition. arXiv preprint arXiv:1708.07549.)",
    (6, 1): "Symbol Key:",
    (7, 1): '"/" = or',
    (8, 1): '"?" = some AU\'s continue for a while and have unclear offset',
    (10, 1): "AU Help:",
    (11, 1): '"L2 or R2" = Unilateral AU 2 on left side of face / right side of face',
    (12, 1): '"A2" = Asymmetric AU 2. Occurs on both sides of face but stronger on one side',
}
HEADER_ROW = 14
HEADER = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
          "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes")
HEADER_FORMATS = ("@", "#,##0", "#,##0", "#,##0", "General", "#,##0", "#,##0", "#,##0", "General", "#,##0",
                  "#,##0", "General")
WIDTHS = {"A": 9.5, "B": 13.33, "C": 16.0, "D": 10.5, "G": 10.33, "H": 12.66, "I": 20.0, "J": 14.33,
          "K": 16.16, "L": 38.16}
NOTE_TEXTS = ("While blinking", "Eye movement", "Blinks", "Half blink", "Large head movement")


class SammLayout(Layout):
    def subject_names(self, rng, n):
        pool = REAL_SUBJECTS if n <= len(REAL_SUBJECTS) else range(6, 6 + n)
        return [f"{int(k):03d}" for k in sorted(rng.choice(np.array(pool), n, replace=False))]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            used = set()
            for label in row:
                while True:
                    code, n = int(rng.integers(1, 8)), int(rng.integers(1, max(13, len(row) + 1)))
                    if (code, n) not in used:
                        used.add((code, n))
                        break
                onset = int(rng.integers(100, 9000))
                clip = self.make_clip(rng, preset, subject, f"{subject}_{code}_{n}", label, onset)
                clip.extra = {"inducement_code": code}
                clip.annotated = {"onset": clip.onset, "apex": clip.apex, "offset": clip.offset, "emotion": label,
                                  "action_units": aus.au_label(clip.aus)}
                if rng.random() < 0.3:
                    clip.extra["notes"] = NOTE_TEXTS[int(rng.integers(len(NOTE_TEXTS)))]
                folder = PurePosixPath("SAMM", subject, clip.clip)
                frames = list(range(clip.onset, clip.offset + 1))
                videos.append(Video(subject, folder, frames, [clip], extra={"pad": 5}))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"{video.subject}_{number:0{video.extra['pad']}d}.jpg"

    def plant_quirks(self, rng, plan: Plan, preset):
        order = [int(i) for i in rng.permutation(len(plan.videos))]
        for kind, i in zip(("apex_after_offset", "apex_before_onset", "au_with_or", "frame_padding"), order):
            video = plan.videos[i]
            clip = video.clips[0]
            clip.quirks.append(kind)
            if kind == "apex_after_offset":  # as 028_4_1 (1071, 1143, 1134)
                clip.annotated["apex"] = clip.offset + int(rng.integers(5, 15))
                detail = f"Apex Frame {clip.annotated['apex']} > Offset Frame {clip.offset}"
            elif kind == "apex_before_onset":  # as 032_3_1 (4896, 1930, 4970): a digit slip
                clip.annotated["apex"] = int(str(clip.apex)[:-1] or 0)
                detail = f"Apex Frame {clip.annotated['apex']} < Onset Frame {clip.onset}"
            elif kind == "au_with_or":
                clip.annotated["action_units"] = f"({aus.au_label(clip.aus)} or R12)+R15"
                detail = f"Action Units written as {clip.annotated['action_units']!r}"
            else:  # zero padding differs from the other clips (datasets.md 3.1)
                video.extra["pad"] = 4
                detail = "frame numbers zero-padded to 4 digits in this clip"
            plan.quirks.append({"kind": kind, "sample_id": self.sample_id(clip), "detail": detail})

    def write_annotations(self, out: Path, plan: Plan):
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "MICRO_ONLY"
        for (row, col), text in NOTES.items():
            ws.cell(row=row, column=col, value=text)
        for col, (name, fmt) in enumerate(zip(HEADER, HEADER_FORMATS), start=1):
            ws.cell(row=HEADER_ROW, column=col, value=name).number_format = fmt
        clips = sorted((c for c in plan.clips() if c.annotated is not None), key=lambda c: (c.subject, c.clip))
        for r, clip in enumerate(clips, start=HEADER_ROW + 1):
            a = clip.annotated
            units = a["action_units"]
            values = (clip.subject, clip.clip, clip.extra["inducement_code"], a["onset"], a["apex"], a["offset"],
                      a["offset"] - a["onset"] + 1, "Micro - 1/2", int(units) if units.isdigit() else units,
                      a["emotion"], aus.objective_class(clip.aus), clip.extra.get("notes"))
            for col, value in enumerate(values, start=1):
                if value is not None:
                    cell = ws.cell(row=r, column=col, value=value)
                    if col == 1:
                        cell.number_format = "@"
        for letter, width in WIDTHS.items():
            ws.column_dimensions[letter].width = width
        path = out / "SAMM" / SHEET
        path.parent.mkdir(parents=True, exist_ok=True)
        save_workbook(wb, path)
        return [path]


LAYOUT = SammLayout(
    name="samm",
    title="SAMM (SAMM/<subject>/<clip> + SAMM_Micro_FACS_Codes_v2.xlsx)",
    fps=200.0,
    frame_size=(960, 650),
    grey=True,
    kind="micro",
    face_width=330.0,
    image_format="jpg",
    default_subjects=10,
    default_clips=5,
    classes=("Anger", "Contempt", "Happiness", "Surprise", "Other"),
    rare=("Disgust", "Fear", "Sadness"),
    prototypes={"Other": ("others",)},
    quirk_kinds=("apex_after_offset", "apex_before_onset", "au_with_or", "frame_padding"),
    roots=("SAMM",),
)
