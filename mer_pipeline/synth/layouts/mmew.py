"""MMEW micro-expressions, the official three-level tree + `MMEW_Micro_Exp.xlsx` (datasets.md section 7).

    OUT/MMEW/Micro_Expression/S01/happiness/S01-01-001/1.jpg ... N.jpg    640x480 colour JPEG, 90 fps
    OUT/MMEW/MMEW_Micro_Exp.xlsx                                          one sheet, header in row 1

Clips are trimmed: frames are numbered 1..offset within each clip and OnsetFrame is always 1.
Filename = `S<subject>-<emotion index>-<n>` (01 happiness, 02 surprise, 03 disgust, 04 repression,
05 fear, 06 sadness, 07 anger; 04 is not verified). Sheet columns: Subject (int), Filename,
OnsetFrame, ApexFrame, OffsetFrame, Action Units (side as a suffix: `12L`, `4R+7`), Estimated
Emotion, remarks. The copy without the subject level is not generated (the adapter's tests build it).
The frame size is an assumption (the sources give only MEB's 231x231 crops).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .. import aus
from ._base import Layout, Plan, Video, pick_interior, save_workbook

SHEET = "MMEW_Micro_Exp.xlsx"
HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
          "remarks")
INDEX = {"happiness": 1, "surprise": 2, "disgust": 3, "repression": 4, "fear": 5, "sadness": 6, "anger": 7}


def sheet_au(tokens) -> str:
    """MMEW writes the side after the number: R14 -> 14R, '4+R7' -> '4+7R'."""
    out = []
    for token in aus.au_label(tokens).split("+"):
        number, side = aus.parse_au(token)
        out.append(f"{number}{side}")
    return "+".join(out)


class MmewLayout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(range(1, 41), n, replace=False)) if n <= 40 else range(1, n + 1)
        return [f"S{int(k):02d}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            counters = {label: 0 for label in INDEX}
            for label in row:
                counters[label] += 1
                name = f"{subject}-{INDEX[label]:02d}-{counters[label]:03d}"
                clip = self.make_clip(rng, preset, subject, name, label, 1)  # clip-relative: onset 1
                clip.annotated = {"onset": 1, "apex": clip.apex, "offset": clip.offset, "emotion": label,
                                  "action_units": sheet_au(clip.aus)}
                folder = PurePosixPath("MMEW", "Micro_Expression", subject, label, name)
                videos.append(Video(subject, folder, list(range(1, clip.offset + 1)), [clip]))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"{number}.jpg"

    def plant_quirks(self, rng, plan: Plan, preset):
        order = [int(i) for i in rng.permutation(len(plan.videos))]
        repression = [i for i in order if plan.videos[i].clips[0].label == "repression"]
        if repression:  # the sheet says `others` where the folder says `repression` (MEB maps them)
            clip = plan.videos[repression[0]].clips[0]
            clip.annotated["emotion"] = "others"
            clip.quirks.append("others_in_sheet")
            plan.quirks.append({"kind": "others_in_sheet", "sample_id": self.sample_id(clip),
                                "detail": "Estimated Emotion 'others', folder 'repression'"})
        video = plan.videos[order[-1]]
        video.missing = pick_interior(rng, video)
        video.clips[0].quirks.append("missing_frame")
        plan.quirks.append({"kind": "missing_frame", "sample_id": self.sample_id(video.clips[0]),
                            "detail": f"frame(s) {video.missing} absent"})

    def write_annotations(self, out: Path, plan: Plan):
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "Sheet1"
        ws.append(HEADER)
        for clip in sorted((c for c in plan.clips() if c.annotated is not None), key=lambda c: c.clip):
            a = clip.annotated
            units = a["action_units"]
            ws.append([int(clip.subject[1:]), clip.clip, a["onset"], a["apex"], a["offset"],
                       int(units) if units.isdigit() else units, a["emotion"], None])
        path = out / "MMEW" / SHEET
        path.parent.mkdir(parents=True, exist_ok=True)
        save_workbook(wb, path)
        return [path]


LAYOUT = MmewLayout(
    name="mmew",
    title="MMEW micro-expressions (MMEW/Micro_Expression/S01/<emotion>/S01-01-001 + MMEW_Micro_Exp.xlsx)",
    fps=90.0,
    frame_size=(640, 480),
    grey=False,
    kind="micro",
    face_width=230.0,
    image_format="jpg",
    default_subjects=8,
    default_clips=4,
    classes=("happiness", "surprise", "disgust", "repression"),
    rare=("fear", "sadness", "anger"),
    quirk_kinds=("others_in_sheet", "missing_frame"),
    roots=("MMEW",),
)
