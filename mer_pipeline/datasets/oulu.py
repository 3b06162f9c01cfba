"""Oulu-CASIA NIR&VIS, a macro-expression source: `OriginalImg/VL/Strong/P001/Anger/000.jpeg`, or the
cropped copies `PreProcess[_Img]/VL_Acropped/Strong/...`. No annotation file: the label is the
expression folder. Samples are kind=macro, 25 fps, 80 subjects x 6 expressions per lighting.

Each sequence runs from neutral to the peak: onset = first frame, apex = offset = last frame.
`--spectrum VL|NI` picks the camera, `--lighting Strong|Weak|Dark` the illumination (Strong by
default; Dark faces are hard to detect). With both OriginalImg and a PreProcess copy in RAW,
OriginalImg wins (the pipeline aligns faces itself).

Quirks handled (datasets.md section 10): RAW may be the dataset folder, OriginalImg or PreProcess,
the spectrum folder or the lighting folder itself; spectrum folders named `VL` or `VL_Acropped`;
frames 3-digit and 0-based (`000.jpeg`), numbers parsed from the names; folder case ignored;
empty sequence folders reported.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path


from ..errors import DatasetLayoutError, FrameError
from ..frames import list_frames
from ..sample import ScanResult, sample_id
from . import Adapter, Option
from ._common import Label, collect, fail, find_tree, has_child_matching, subdirs, to_sample

log = logging.getLogger(__name__)

NAME = "oulu"
FPS = 25.0
SPECTRA = ("VL", "NI")
LIGHTING = ("Strong", "Weak", "Dark")
TREES = ("originalimg", "preprocess", "preprocess_img")
_SUBJECT = r"p\d+"

OPTIONS = (
    Option("spectrum", "Camera: VL (visible light) or NI (near infrared).", choices=SPECTRA, default="VL"),
    Option("lighting", "Illumination: Strong, Weak or Dark.", choices=LIGHTING, default="Strong"),
)


def _is_spectrum(name: str, spectrum: str) -> bool:
    return re.fullmatch(rf"{spectrum.lower()}(_\w+)?", name.lower()) is not None


def find_lighting_root(raw: Path, spectrum: str, lighting: str) -> Path:
    """The folder holding P001, P002, ... for one spectrum and lighting."""
    holds_subjects = has_child_matching(_SUBJECT)
    if holds_subjects(raw):
        return Path(raw)

    def looks_right(folder: Path) -> bool:
        return (folder.name.lower() == lighting.lower() and _is_spectrum(folder.parent.name, spectrum)
                and holds_subjects(folder))

    root = find_tree(raw, looks_right, prefer=TREES, depth=4)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no Oulu-CASIA {spectrum}/{lighting} tree found. Expected OriginalImg/{spectrum}/{lighting}/"
            f"P001/Anger/000.jpeg (or PreProcess/{spectrum}_Acropped/{lighting}/...). Point RAW at the Oulu-CASIA "
            "folder, or choose --spectrum/--lighting"
        )
    return root


def scan(raw: Path, annotations: Path | None = None, spectrum: str = "VL", lighting: str = "Strong") -> ScanResult:
    if annotations is not None:
        raise DatasetLayoutError(f"{annotations}: Oulu-CASIA has no annotation file (labels are folder names); "
                                 "drop --annotations")
    spectrum = next((s for s in SPECTRA if s.lower() == spectrum.lower()), spectrum)
    lighting = next((s for s in LIGHTING if s.lower() == lighting.lower()), lighting)
    root = find_lighting_root(Path(raw), spectrum, lighting)
    result, seen = ScanResult(), set()
    for name, subject in subdirs(root).items():
        if not re.fullmatch(_SUBJECT, name):
            continue
        for sequence in subdirs(subject).values():
            sid = sample_id(NAME, subject.name, sequence.name)
            try:
                frames = list_frames(sequence)
            except FrameError as error:
                result.failures.append(fail(sid, "FrameError", str(error)))
                continue
            if not frames:
                result.failures.append(fail(sid, "FrameError", f"{sequence}: sequence folder holds no frames"))
                continue
            label = Label(subject=subject.name, clip=sequence.name, onset=min(frames), apex=max(frames),
                          offset=max(frames), emotion=sequence.name, where=str(sequence),
                          extra={"spectrum": spectrum, "lighting": lighting})
            collect(result, to_sample(NAME, label, frames, fps=FPS, kind="macro", folder=sequence), seen)
    log.info("%s %s/%s: %d samples, %d rejected", NAME, spectrum, lighting, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="Oulu-CASIA NIR&VIS macro-expressions (OriginalImg/VL/Strong/P001/Anger/000.jpeg), "
                  "kind=macro, 25 fps", kind="macro", fps=FPS, options=OPTIONS)
