"""CAS(ME)^2, long videos + `CAS(ME)^2code_final.xlsx` (datasets.md section 5). Micro-expressions only.

    OUT/CAS(ME)^2/rawpic/s15/15_0101disgustingteeth/img001.jpg ...   640x480 colour JPEG, 30 fps
    OUT/CAS(ME)^2/CAS(ME)^2code_final.xlsx    sheets CASFEcode_final, naming rule1, naming rule2

A video folder `<subject folder number>_<4-digit stimulus code><description>` is one long
recording holding several expressions; only frames around each are written, numbered from 1 in
the video, zero-padded to 3 digits. No sheet has a header row: CASFEcode_final holds subject
number, clip (`disgust1_1`: stimulus name + index in the video), onset, apex, offset, AUs, category
(negative/positive/surprise/others), type (`micro-expression`), self-report; naming rule1 holds
(folder number, folder `s15`, subject number); naming rule2 (code, stimulus name). Stimulus codes
0101, 0401 and 0502 carry their real descriptions; the others are invented.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .. import aus
from ._base import Layout, Plan, Video, save_workbook

SHEET = "CAS(ME)^2code_final.xlsx"
STIMULI = {  # code -> (stimulus name, folder description)
    101: ("disgust1", "disgustingteeth"), 102: ("disgust2", "synthdisgust"), 401: ("anger1", "girlcrashing"),
    402: ("anger2", "synthanger"), 502: ("happy2", "funnyerrors"), 503: ("happy3", "synthhappy"),
}
SELF_REPORT = {"negative": "disgust", "positive": "happy", "surprise": "surprise", "others": "calm"}


class Cas2Layout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(range(15, 41), n, replace=False)) if n <= 26 else range(15, 15 + n)
        return [f"s{int(k)}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            codes = sorted(int(c) for c in rng.choice(sorted(STIMULI), min(len(row), int(rng.integers(1, 3))),
                                                       replace=False))
            assignment = list(range(len(codes))) + [int(rng.integers(len(codes))) for _ in row[len(codes):]]
            for v, code in enumerate(codes):
                stimulus, description = STIMULI[code]
                clips, frames, t = [], set(), int(rng.integers(5, 200))
                for k, label in enumerate((lab for lab, a in zip(row, assignment) if a == v), start=1):
                    clip = self.make_clip(rng, preset, subject, f"{stimulus}_{k}", label, t)
                    clip.extra = {"code": code}
                    clip.annotated = {"onset": clip.onset, "apex": clip.apex, "offset": clip.offset,
                                      "emotion": label, "action_units": aus.au_label(clip.aus)}
                    frames |= set(range(max(1, clip.onset - int(rng.integers(3, 8))),
                                        clip.offset + int(rng.integers(3, 8))))
                    clips.append(clip)
                    t = clip.offset + int(rng.integers(30, 300))
                folder = PurePosixPath("CAS(ME)^2", "rawpic", subject, f"{subject[1:]}_{code:04d}{description}")
                videos.append(Video(subject, folder, sorted(frames), clips))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"img{number:03d}.jpg"

    def plant_quirks(self, rng, plan: Plan, preset):
        clips = [c for v in plan.videos for c in v.clips]
        clip = clips[int(rng.integers(len(clips)))]  # offset 0 (MEAN: "take apex if offset is 0")
        clip.annotated["offset"] = 0
        clip.quirks.append("offset_zero")
        plan.quirks.append({"kind": "offset_zero", "sample_id": self.sample_id(clip), "detail": "offset written 0"})
        subjects = sorted({v.subject for v in plan.videos})
        if len(subjects) > 1:  # a video stored under another subject's folder (rawpic/s19/23_0502funnyerrors)
            video = next(v for v in plan.videos if v.subject == subjects[-1])
            video.folder = video.folder.parent.parent / subjects[0] / video.folder.name
            for c in video.clips:
                c.quirks.append("video_in_other_folder")
            plan.quirks.append({"kind": "video_in_other_folder", "path": str(video.folder),
                                "detail": f"{subjects[-1]}'s video stored in {subjects[0]}/"})

    def write_annotations(self, out: Path, plan: Plan):
        import openpyxl

        subjects = sorted({c.subject for c in plan.clips()}, key=lambda s: int(s[1:]))
        number = {s: i for i, s in enumerate(subjects, start=1)}
        wb = openpyxl.Workbook()
        codes = wb.active
        codes.title = "CASFEcode_final"
        rows = sorted((c for c in plan.clips() if c.annotated is not None),
                      key=lambda c: (number[c.subject], c.extra["code"], c.onset))
        for clip in rows:
            a = clip.annotated
            units = a["action_units"]
            codes.append([number[clip.subject], clip.clip, a["onset"], a["apex"], a["offset"],
                          int(units) if units.isdigit() else units, a["emotion"], "micro-expression",
                          SELF_REPORT[a["emotion"]]])
        rule1 = wb.create_sheet("naming rule1")
        for subject in subjects:
            rule1.append([int(subject[1:]), subject, number[subject]])
        rule2 = wb.create_sheet("naming rule2")
        for code, (stimulus, _) in sorted(STIMULI.items()):
            rule2.append([code, stimulus])
        path = out / "CAS(ME)^2" / SHEET
        path.parent.mkdir(parents=True, exist_ok=True)
        save_workbook(wb, path)
        return [path]


LAYOUT = Cas2Layout(
    name="cas2",
    title="CAS(ME)^2 micro-expressions (rawpic/s15/15_0101disgustingteeth + CAS(ME)^2code_final.xlsx)",
    fps=30.0,
    frame_size=(640, 480),
    grey=False,
    kind="micro",
    face_width=220.0,
    image_format="jpg",
    default_subjects=6,
    default_clips=4,
    classes=("negative", "positive", "surprise", "others"),
    prototypes={"negative": ("disgust", "anger", "sadness"), "positive": ("happiness",)},
    quirk_kinds=("offset_zero", "video_in_other_folder"),
    roots=("CAS(ME)^2",),
)
