"""SMIC (original SMIC_all_raw / SMIC_all_cropped release, the one MEGC2019 uses): subsets HS, VIS and
NIR, `HS/s1/micro/negative/s1_ne_01/image106273.bmp` (cropped: `reg_image106273.bmp`). No sheet:
the label is the emotion folder. HS 100 fps, 16 subjects, 164 clips; VIS and NIR 25 fps (unverified).

Quirks handled (datasets.md section 4): RAW may point at the folder holding SMIC_all_raw, at
SMIC_all_raw itself or at the subset folder (HS); with both SMIC_all_raw and SMIC_all_cropped the raw
tree wins; unpadded folders (s1, s1_ne_01) kept as the ids, while MEGC2019 writes s01/s01_ne_01
(megc2019.py matches both); .bmp frames; no apex (None: the pipeline spots it); onset/offset are the
first/last frame numbers of the folder; missing frames tolerated and noted; an empty clip folder
(SMIC_all_cropped s18_sur_03) reported; copies without the `micro` level accepted.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path


from ..errors import AnnotationError, DatasetLayoutError, FrameError
from ..frames import list_frames
from ..sample import ScanResult, sample_id
from . import Adapter, Option
from ._common import Label, child, collect, fail, find_tree, has_child_matching, subdirs, to_sample

log = logging.getLogger(__name__)

NAME = "smic"
SUBSETS = ("HS", "VIS", "NIR")
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
EMOTIONS = ("negative", "positive", "surprise")
TREES = ("smic_all_raw", "smic_all_cropped", "smic")
_SUBJECT = r"s\d+"

OPTIONS = (
    Option("subset", "SMIC camera: HS (high speed, 100 fps), VIS or NIR (25 fps).", choices=SUBSETS, default="HS"),
)


def find_subset_root(raw: Path, subset: str) -> Path:
    """The folder holding s1, s2, ... of `subset`."""
    raw = Path(raw)
    holds_subjects = has_child_matching(_SUBJECT)
    if holds_subjects(raw):
        if raw.name.upper() in SUBSETS and raw.name.upper() != subset:
            raise DatasetLayoutError(f"{raw} is the SMIC {raw.name.upper()} folder but --subset is {subset}; "
                                     f"pass --subset {raw.name.upper()} or point RAW at the {subset} folder")
        return raw
    root = find_tree(raw, lambda f: f.name.upper() == subset and holds_subjects(f), prefer=TREES)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no SMIC {subset} tree found. Expected {subset}/s1/micro/negative/s1_ne_01/image106273.bmp in "
            "RAW, in SMIC_all_raw/ or in SMIC_all_cropped/ inside it. Point RAW at the SMIC download folder"
        )
    return root


def clip_folders(root: Path) -> list[tuple[str, str, Path]]:
    """(subject, emotion folder, clip folder) of every clip under a subset folder."""
    found = []
    for name, subject in subdirs(root).items():
        if not re.fullmatch(_SUBJECT, name):
            continue
        micro = child(subject, "micro") or subject  # some copies drop the `micro` level
        for emotion, emotion_folder in subdirs(micro).items():
            if emotion in ("micro", "non_micro"):
                continue
            for clip in subdirs(emotion_folder).values():
                found.append((subject.name, emotion_folder.name, clip))
    return sorted(found, key=lambda t: (int(t[0][1:]), t[2].name))


def scan(raw: Path, annotations: Path | None = None, subset: str = "HS") -> ScanResult:
    subset = subset.upper()
    if subset not in SUBSETS:
        raise DatasetLayoutError(f"unknown SMIC subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    if annotations is not None:
        raise AnnotationError(f"{annotations}: SMIC_all_raw/SMIC_all_cropped ship no annotation sheet (labels come "
                              "from the emotion folders, onset/offset from the frames); drop --annotations")
    root = find_subset_root(raw, subset)
    fps = FPS[subset]
    result, seen = ScanResult(), set()
    for subject, emotion, folder in clip_folders(root):
        where = str(folder)
        sid = sample_id(NAME, subject, folder.name)
        if emotion.lower() not in EMOTIONS:
            result.failures.append(fail(sid, "DatasetLayoutError",
                                        f"{where}: emotion folder {emotion!r} is not one of {', '.join(EMOTIONS)}; "
                                        "skipped"))
            continue
        try:
            frames = list_frames(folder)
        except FrameError as error:
            result.failures.append(fail(sid, "FrameError", str(error)))
            continue
        if not frames:
            result.failures.append(fail(sid, "FrameError",
                                        f"{where}: clip folder holds no frames; is the download complete?"))
            continue
        label = Label(subject=subject, clip=folder.name, onset=min(frames), apex=None, offset=max(frames),
                      emotion=emotion.lower(), where=where, extra={"subset": subset})
        if subset != "HS":
            label.notes.append(f"{subset} frame rate taken as 25 fps (not verified from the sources)")
        collect(result, to_sample(NAME, label, frames, fps=fps, folder=folder), seen)
    log.info("%s %s: %d samples, %d rejected", NAME, subset, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="SMIC (SMIC_all_raw or SMIC_all_cropped, HS/VIS/NIR; labels from folders), "
                  "100 fps HS", fps=FPS["HS"], options=OPTIONS)
