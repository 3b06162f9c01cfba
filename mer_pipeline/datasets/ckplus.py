"""CK+ (Extended Cohn-Kanade), a macro-expression source: `cohn-kanade-images/S005/001/S005_001_00000011.png`
with labels in `Emotion/S005/001/S005_001_00000011_emotion.txt`. Samples are kind=macro.

Each sequence runs from neutral to the peak: onset = first frame, apex = the labelled frame (named
by the emotion file, the last frame), offset = last frame. The emotion file holds one float such as
`3.0000000e+00`, read as int(float(text)) and written as its name (1 anger, 2 contempt, 3 disgust,
4 fear, 5 happy, 6 sadness, 7 surprise; README of the release).

Quirks handled (datasets.md section 10): only 327 of the 593 sequences have an emotion file; the
others are skipped (not failures; their count is logged); codes outside 1..7 and unreadable files
are failures naming the file; 8-digit 1-based frame numbers parsed from the names; non-image files
(.DS_Store) ignored; action units read from FACS/S005/001/*_facs.txt when present (AU numbers,
'+'-joined; intensities dropped). The frame rate is not stated in the sources (datasets.md); 30 fps is assumed
(the rate usually quoted for Cohn-Kanade), and only `fps` metadata depends on it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import AnnotationError, DatasetLayoutError, FrameError
from ..frames import frame_number, list_frames
from ..sample import ScanResult, sample_id
from . import Adapter
from ._common import Label, collect, fail, find_tree, subdirs, to_sample

log = logging.getLogger(__name__)

NAME = "ckplus"
FPS = 30.0
EMOTIONS = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}


def read_emotion(path: Path) -> int:
    """The emotion code in a CK+ `_emotion.txt` file; AnnotationError when it is not one of 1..7."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
        code = int(float(text))
    except (OSError, ValueError, OverflowError) as error:
        raise AnnotationError(f"{path}: cannot read an emotion code ({error})") from error
    if code not in EMOTIONS:
        raise AnnotationError(f"{path}: emotion code {code} is not one of 1..7 (anger .. surprise)")
    return code


def read_facs(path: Path) -> str:
    """AU numbers of a CK+ `_facs.txt` file ('AU intensity' float pairs per line), '+'-joined and
    sorted: '1+2+5+26'. Intensities are dropped (0 means not coded in CK+). '' when unreadable."""
    numbers = set()
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        try:
            number = float(parts[0]) if parts else None
        except ValueError:
            continue
        if number is not None and number.is_integer() and number > 0:
            numbers.add(int(number))
    return "+".join(str(n) for n in sorted(numbers))


def find_folder(raw: Path, name: str) -> Path | None:
    return find_tree(raw, lambda f: f.name.lower() == name, depth=3)


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    raw = Path(raw)
    if annotations is not None:
        raise AnnotationError(f"{annotations}: CK+ labels are the files of its Emotion/ folder, found in RAW; "
                              "drop --annotations")
    images, labels = find_folder(raw, "cohn-kanade-images"), find_folder(raw, "emotion")
    facs = find_folder(raw, "facs")
    if images is None or labels is None:
        raise DatasetLayoutError(
            f"{raw}: expected the CK+ folders cohn-kanade-images/S005/001/*.png and Emotion/S005/001/*_emotion.txt "
            "in RAW (or one or two levels below it). Point RAW at the folder holding both"
        )
    result, seen, unlabelled = ScanResult(), set(), 0
    for subject in subdirs(images).values():
        for sequence in subdirs(subject).values():
            sid = sample_id(NAME, subject.name, sequence.name)
            emotion_folder = labels / subject.name / sequence.name
            files = sorted(emotion_folder.glob("*_emotion.txt")) if emotion_folder.is_dir() else []
            if not files:
                unlabelled += 1
                continue
            try:
                code = read_emotion(files[0])
                peak = frame_number(files[0].name.replace("_emotion", ""))
                frames = list_frames(sequence)
            except (AnnotationError, FrameError) as error:
                result.failures.append(fail(sid, type(error).__name__, str(error)))
                continue
            if not frames:
                result.failures.append(fail(sid, "FrameError", f"{sequence}: sequence folder holds no frames"))
                continue
            label = Label(subject=subject.name, clip=sequence.name, onset=min(frames), apex=peak, offset=max(frames),
                          emotion=EMOTIONS[code], where=str(files[0]), extra={"emotion_code": code})
            facs_files = sorted((facs / subject.name / sequence.name).glob("*_facs.txt")) if facs else []
            if facs_files:
                label.action_units = read_facs(facs_files[0])
            if peak != label.offset:
                label.notes.append(f"labelled peak frame {peak} is not the last frame {label.offset}")
            collect(result, to_sample(NAME, label, frames, fps=FPS, kind="macro", folder=sequence), seen)
    log.info("%s: %d labelled sequences, %d without an emotion file skipped, %d rejected",
             NAME, len(result.samples), unlabelled, len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="CK+ macro-expressions (cohn-kanade-images/ + Emotion/ labels; 327 labelled "
                  "sequences), kind=macro", kind="macro", fps=FPS)
