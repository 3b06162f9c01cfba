"""MEGC2019 composite (3 classes, 442 samples = 145 CASME II + 133 SAMM + 164 SMIC-HS), built from the
three raw trees: `mer-prep megc2019 --casme2 P --samm P --smic P OUT`.

The selection is exactly the official list `combined_3class_gt.csv` (MEGC2019 site, committed
2018-12-07), shipped in `mer_pipeline/data/`; `--annotations FILE` replaces it. Each source tree is
scanned by its own adapter (casme2, samm, smic with --subset HS), so every quirk those handle is
handled here too.

What a sample keeps: its source dataset (`dataset` = casme2 | samm | smic, so ids are the source
ids, e.g. `samm/006/006_1_2`, and LOSO subjects stay per dataset) and the emotion as its own sheet
writes it (`disgust`, `Anger`, `negative`), as every adapter does; the trainer's `megc2019-3` set
maps those. The official class is added as `extra["megc2019_class"]` (negative | positive |
surprise) and `extra["megc2019_label"]` (0 | 1 | 2); a sample whose own emotion maps to another
class than the list says gets a note (none does with the published sheets).

Quirks handled (datasets.md section 9): the list spells ids differently from the folders (SAMM
subject `6` vs folder `006`; SMIC `s01` / `s01_ne_01` vs folders `s1` / `s1_ne_01`); it follows the
2014 CASME II labels (the three sub24 rows relabelled surprise in 2019 are not listed, so either
coding works); listed samples missing from a tree, or rejected by its adapter, are failures naming
them; samples of the trees that are not listed are left out silently.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path


from ..annotations import as_int, as_text, read_table
from ..errors import AnnotationError, MerError
from ..sample import Failure, Sample, ScanResult, sample_id, split_sample_id
from . import Adapter, Option, get_adapter
from ._common import digits, fail

log = logging.getLogger(__name__)

NAME = "megc2019"
GT_LIST = Path(__file__).resolve().parent.parent / "data" / "combined_3class_gt.csv"
SOURCES = ("casme2", "samm", "smic")
CLASSES = ("negative", "positive", "surprise")  # label 0, 1, 2 of the official list
# The official mapping (MEGC2019 guidelines PDF): what each dataset's emotions count as.
OFFICIAL_MAPPING = {
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
}

OPTIONS = tuple(
    Option(source, f"The {title} raw folder (as for `mer-prep {source}`).", type=Path, required=True)
    for source, title in (("casme2", "CASME II"), ("samm", "SAMM"), ("smic", "SMIC (HS subset is used)"))
)


@dataclass(frozen=True)
class Listed:
    """One row of the official list: database, subject, clip, label (0 negative, 1 positive, 2 surprise)."""

    dataset: str
    subject: str
    clip: str
    label: int
    row: int

    @property
    def megc_class(self) -> str:
        return CLASSES[self.label]


def match_key(dataset: str, subject: str, clip: str) -> tuple[str, str, str]:
    """One spelling for the list's ids and the folders': SAMM 6 == 006, SMIC s01_ne_01 == s1_ne_01."""
    dataset, subject, clip = dataset.lower(), str(subject).strip().lower(), str(clip).strip().lower()
    number = digits(subject)
    if dataset == "casme2" and number is not None:
        subject = f"sub{number:02d}"
    elif dataset == "samm" and number is not None:
        subject = f"{number:03d}"
    elif dataset == "smic" and number is not None:
        subject = f"s{number}"
        clip = re.sub(r"^s0*(\d+)_", r"s\1_", clip)
    return dataset, subject, clip


def parse_table(table: list[list], source: Path) -> list[Listed]:
    """The rows of a combined_3class_gt list (no header; blank lines of the older copy skipped)."""
    listed = []
    for index, row in enumerate(table, start=1):
        cells = [c for c in row] + [None] * 4
        if all(c is None for c in cells):
            continue
        dataset, subject, clip, label = as_text(cells[0]).lower(), as_text(cells[1]), as_text(cells[2]), as_int(cells[3])
        if dataset not in SOURCES or not subject or not clip or label not in (0, 1, 2):
            raise AnnotationError(f"{source} row {index}: expected 'database,subject,clip,label' with database "
                                  f"casme2|samm|smic and label 0|1|2, found {row!r}")
        listed.append(Listed(dataset, subject, clip, label, index))
    if not listed:
        raise AnnotationError(f"{source}: the MEGC2019 list is empty")
    return listed


def parse_sheet(path: Path = GT_LIST) -> list[Listed]:
    return parse_table(read_table(path), Path(path))


def _key_of(text: str) -> tuple[str, str, str] | None:
    parts = split_sample_id(text)
    return match_key(*parts) if parts else None


def scan(raw: Path | None = None, annotations: Path | None = None, casme2: Path | None = None,
         samm: Path | None = None, smic: Path | None = None) -> ScanResult:
    trees = {"casme2": casme2, "samm": samm, "smic": smic}
    missing = [f"--{name}" for name, path in trees.items() if path is None]
    if missing:
        raise MerError(f"MEGC2019 needs the three raw folders; missing {' '.join(missing)}. Example: "
                       "mer-prep megc2019 --casme2 RAW/casme2 --samm RAW/samm --smic RAW/smic OUT")
    source = Path(annotations) if annotations else GT_LIST
    listed = parse_sheet(source)

    found: dict[tuple, Sample] = {}
    rejected: dict[tuple, Failure] = {}
    for name, path in trees.items():
        options = {"subset": "HS"} if name == "smic" else {}
        scanned = get_adapter(name).scan(Path(path), None, **options)
        for sample in scanned.samples:
            found.setdefault(match_key(sample.dataset, sample.subject, sample.clip), sample)
        for failure in scanned.failures:
            key = _key_of(failure.sample_id)
            if key is not None:
                rejected.setdefault(key, failure)

    result = ScanResult()
    for item in listed:
        key = match_key(item.dataset, item.subject, item.clip)
        sample = found.get(key)
        where = f"{source.name} row {item.row} ({item.dataset} {item.subject} {item.clip})"
        if sample is None:
            cause = rejected.get(key)
            sid = cause.sample_id if cause else sample_id(*key)
            message = (f"{where} is listed but its adapter rejected it: {cause.message}" if cause else
                       f"{where} is listed but not found in the {item.dataset} folder {trees[item.dataset]}")
            result.failures.append(fail(sid, cause.error if cause else "DatasetLayoutError", message))
            continue
        notes = list(sample.notes)
        own = OFFICIAL_MAPPING[item.dataset].get(sample.emotion.lower())
        if own != item.megc_class:
            notes.append(f"emotion {sample.emotion!r} maps to {own or 'no class'} but the MEGC2019 list says "
                         f"{item.megc_class}")
        extra = dict(sample.extra, megc2019_class=item.megc_class, megc2019_label=item.label)
        result.samples.append(dataclasses.replace(sample, notes=tuple(notes), extra=extra))
    counts = {name: sum(s.dataset == name for s in result.samples) for name in SOURCES}
    log.info("%s: %d of %d listed samples found (%s); %d failures", NAME, len(result.samples), len(listed),
             ", ".join(f"{k} {v}" for k, v in counts.items()), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="MEGC2019 composite (442 = 145 CASME II + 133 SAMM + 164 SMIC-HS, official list) "
                  "from the three raw folders", fps=0.0, options=OPTIONS, sources=SOURCES)
