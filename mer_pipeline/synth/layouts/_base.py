"""What a dataset layout is: the plan of a synthetic raw tree (subjects, videos, clips, frame
numbers, sheet rows) and the contract each `layouts/<dataset>.py` fills.

A `Layout` decides names, numbering, timing, sheet contents and quirks; it never renders pixels.
The generator (`synth/generate.py`) renders every `Video` of the plan through the layout's
`frame_file` and then calls `write_annotations`.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ...sample import sample_id
from .. import aus

KNOWN_PROTOTYPES = tuple(aus.EMOTION_AUS)


@dataclass
class Clip:
    """One expression: what is true (onset/apex/offset, AUs) and what the dataset says about it."""

    subject: str  # as the adapter names it: sub01, 006, s1, spNO.1, S005
    clip: str  # as the adapter names it: EP02_01f, 006_1_2, s1_ne_01, a_355, 001
    label: str  # emotion as the dataset spells it
    prototype: str  # the emotion whose AUs are planted (key of aus.EMOTION_AUS)
    aus: tuple[str, ...]
    onset: int
    apex: int
    offset: int
    annotated: dict | None = None  # what the sheet / folder tells an adapter; None: nothing
    on_disk: bool = True
    quirks: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    habit: str | None = None  # the subject's habitual AU when added to `aus` (hard preset)
    expression: str | None = None  # with the micro/macro gap: "posed" (macro) | "spontaneous" (micro)
    session: str | None = None  # with confounders by session: the recording session of the clip


@dataclass
class Video:
    """One frame folder: the frames written and the clip(s) it contains."""

    subject: str
    folder: PurePosixPath  # relative to OUT
    frames: list[int]  # frame numbers written (before planted gaps)
    clips: list[Clip]
    missing: list[int] = field(default_factory=list)  # frames planted missing (quirk)
    extra: dict = field(default_factory=dict)  # layout details, e.g. {"pad": 4}


@dataclass
class Plan:
    videos: list[Video]
    orphans: list[Clip] = field(default_factory=list)  # sheet rows with no folder on disk
    extra_files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content (junk files)
    quirks: list[dict] = field(default_factory=list)  # {"kind", "sample_id" | "path", "detail"}

    def clips(self) -> list[Clip]:
        return [c for v in self.videos for c in v.clips] + list(self.orphans)


@dataclass(frozen=True)
class Layout:
    """The contract of one dataset's raw layout. Subclass it in `layouts/<dataset>.py`."""

    name: str
    title: str
    fps: float
    frame_size: tuple[int, int]  # (W, H)
    grey: bool
    kind: str  # micro | macro
    face_width: float  # jaw width (landmark 0 to 16) in raw pixels
    image_format: str  # jpg | bmp | png
    default_subjects: int
    default_clips: int
    classes: tuple[str, ...]  # emotion labels as spelled in the dataset, balanced by the schedule
    rare: tuple[str, ...] = ()  # labels that appear rarely (about one clip in 36)
    prototypes: dict = field(default_factory=dict)  # label -> tuple of prototype emotions
    quirk_kinds: tuple[str, ...] = ()
    identity_stream: str = "micro"  # subjects of different streams never share identities
    roots: tuple[str, ...] = ()  # top-level paths under OUT this layout writes

    def prototype_options(self, label: str) -> tuple[str, ...]:
        return tuple(self.prototypes.get(label, (label.lower(),)))

    # --- what subclasses implement ---------------------------------------------------------------
    def subject_names(self, rng: np.random.Generator, n: int) -> list[str]:
        raise NotImplementedError

    def plan(self, rng: np.random.Generator, subjects: list[str], labels: list[list[str]], preset) -> Plan:
        """Videos with clips (true timing and AUs filled in by `make_clip`)."""
        raise NotImplementedError

    def frame_file(self, video: Video, number: int) -> PurePosixPath:
        raise NotImplementedError

    def write_annotations(self, out: Path, plan: Plan) -> list[Path]:
        return []

    def plant_quirks(self, rng: np.random.Generator, plan: Plan, preset) -> None:
        """Modify the plan in place (sheet values, gaps, extra files) and log into plan.quirks."""

    # --- shared helpers ----------------------------------------------------------------------------
    def sample_id(self, clip: Clip) -> str:
        return sample_id(self.name, clip.subject, clip.clip)

    def au_cell(self, tokens) -> str:
        """The sheet's Action Units cell for these FACS tokens ('4+R12'); a layout whose sheet writes
        them otherwise overrides it (the generator rewrites cells with it when the hard preset changes
        a clip's AUs)."""
        return aus.au_label(tokens)

    def encode_params(self, quality: int) -> tuple[str, list[int]]:
        import cv2

        if self.image_format == "jpg":
            return ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        if self.image_format == "png":  # Huffman-only with the Sub filter: 2x faster than zlib level 1
            params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
            if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
                params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
            return ".png", params
        return ".bmp", []

    def make_clip(self, rng: np.random.Generator, preset, subject: str, clip: str, label: str,
                  onset: int) -> Clip:
        """A clip starting at `onset` with a realistic duration and apex for this dataset's fps."""
        duration = max(int(round(rng.uniform(*preset.micro_duration_s) * self.fps)), 4)
        offset = onset + duration - 1
        frac = rng.uniform(*preset.apex_fraction)
        apex = int(np.clip(onset + round(frac * (offset - onset)), onset + 1, offset - 1))
        prototype = str(rng.choice(self.prototype_options(label)))
        options = aus.EMOTION_AUS[prototype]
        tokens = tuple(options[int(rng.integers(len(options)))])
        return Clip(subject, clip, label, prototype, tokens, onset, apex, offset)


def schedule(rng: np.random.Generator, n_subjects: int, per_subject: int, classes, rare=()) -> list[list[str]]:
    """Emotion labels per subject: every class about equally often overall and spread over
    subjects (a seeded cyclic deal, not pure chance), with rare classes in ~1 clip of 36."""
    order = [classes[i] for i in rng.permutation(len(classes))]
    k = len(order)
    table = [[order[(s * per_subject + j) % k] for j in range(per_subject)] for s in range(n_subjects)]
    n_rare = (n_subjects * per_subject) // 36 if rare else 0
    subjects = rng.permutation(n_subjects)
    for r in range(n_rare):  # rare classes go to different subjects, in different slots
        table[subjects[r % n_subjects]][(r // n_subjects) % per_subject] = rare[r % len(rare)]
    for row in table:
        rng.shuffle(row)
    return table


def pick_interior(rng: np.random.Generator, video: Video, count: int = 1) -> list[int]:
    """Frames of a video that can go missing: not the first/last, not any clip's onset/apex/offset."""
    keep = {video.frames[0], video.frames[-1]}
    for c in video.clips:
        keep |= {c.onset, c.apex, c.offset, c.onset - 1, c.offset + 1}
    candidates = [f for f in video.frames if f not in keep and f not in video.missing]
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    return sorted(int(f) for f in chosen)


def save_workbook(workbook, path: Path) -> None:
    """Save an openpyxl workbook byte-reproducibly: fixed document dates and zip entry times."""
    import datetime

    stamp = datetime.datetime(2019, 7, 1)
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    buffer = io.BytesIO()
    workbook.save(buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            if name == "docProps/core.xml":  # openpyxl stamps `modified` with the save time
                data = _fix_core_dates(data)
            info = zipfile.ZipInfo(name, date_time=(2019, 7, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    path.write_bytes(out.getvalue())


def _fix_core_dates(xml: bytes) -> bytes:
    import re

    return re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)", rb"\g<1>2019-07-01T00:00:00Z\g<2>", xml)
