"""Class sets: how the emotion labels of each dataset, as written in its sheet, map to a run's classes.

The one home of the class sets. Stage two reads them through `mer_train.labels` (same names), and
`mer-prep export` labels its caches with them; stage one never imports stage two, so they live here.
Pure Python: no torch, no numpy.

Emotions are compared case-insensitively and with a few synonyms folded (happy = happiness,
sad = sadness, other = others), so CASME II `repression`, SAMM `Anger`, CAS(ME)^3 `Others` and CK+
`happy` all find their class. Samples whose emotion is outside the set are dropped (the caller
counts them). Macro-expression samples map through the same set. See docs/method.md.

Datasets without a standard class set (a lab's own recordings, `mer-prep videos`) use `as-written`:
one class per emotion present in the data, folded the same way, in sorted order
(`as_written_class_set`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import MerError


class LabelSetError(MerError):
    """The class set is unknown, cannot be inferred from the data, or leaves no samples."""


SYNONYMS = {"happy": "happiness", "sad": "sadness", "other": "others", "angry": "anger",
            "surprised": "surprise", "disgusted": "disgust", "fearful": "fear"}


def canonical_emotion(emotion: str) -> str:
    """`Happy ` -> `happiness`, `Others` -> `others`."""
    word = re.sub(r"[\s_-]+", " ", str(emotion).strip().lower())
    return SYNONYMS.get(word, word)


def canonical_dataset(dataset: str) -> str:
    """`CASME2`, `casme_2` -> `casme2`."""
    return re.sub(r"[^a-z0-9]", "", str(dataset).lower())


@dataclass(frozen=True)
class ClassSet:
    """`classes` in label order; `members[c]` the canonical emotions of class c; `excluded[dataset]`
    emotions that a dataset's protocol leaves out although another dataset counts them."""

    name: str
    classes: tuple[str, ...]
    members: dict[str, frozenset[str]]
    excluded: dict[str, frozenset[str]] = field(default_factory=dict)

    def index(self, emotion: str, dataset: str = "") -> int | None:
        """The class index of `emotion` (as written) from `dataset`, or None when it is outside the set."""
        word = canonical_emotion(emotion)
        if word in self.excluded.get(canonical_dataset(dataset), ()):
            return None
        for i, name in enumerate(self.classes):
            if word in self.members[name]:
                return i
        return None


def _same(*names: str) -> dict[str, frozenset[str]]:
    return {name: frozenset({canonical_emotion(name)}) for name in names}


CLASS_SETS: dict[str, ClassSet] = {
    # CASME II 5-class (datasets.md 9.2): fear and sadness are dropped.
    "casme2-5": ClassSet("casme2-5", ("happiness", "disgust", "repression", "surprise", "others"),
                         _same("happiness", "disgust", "repression", "surprise", "others")),
    # SAMM 5-class (datasets.md 9.2): disgust, fear and sadness are dropped.
    "samm-5": ClassSet("samm-5", ("anger", "contempt", "happiness", "surprise", "other"),
                       _same("anger", "contempt", "happiness", "surprise") | {"other": frozenset({"others"})}),
    # MEGC2019 composite, official mapping (datasets.md 9.1). CASME II fear and sadness are NOT negative.
    "megc2019-3": ClassSet(
        "megc2019-3", ("negative", "positive", "surprise"),
        {"negative": frozenset({"negative", "disgust", "repression", "anger", "contempt", "fear", "sadness"}),
         "positive": frozenset({"positive", "happiness"}),
         "surprise": frozenset({"surprise"})},
        excluded={"casme2": frozenset({"fear", "sadness"})},
    ),
    # CAS(ME)^3 part A 7-class (MMNET CASME3_7).
    "casme3-7": ClassSet("casme3-7", ("happy", "fear", "sad", "disgust", "anger", "surprise", "others"),
                         _same("happy", "fear", "sad", "disgust", "anger", "surprise", "others")),
}

# The set a single dataset implies; several datasets together imply the MEGC2019 composite.
DEFAULT_CLASS_SET = {"casme2": "casme2-5", "samm": "samm-5", "casme3": "casme3-7", "smic": "megc2019-3"}

# Built from the data: the emotions present, as written. The default for datasets whose labels follow
# no published protocol.
AS_WRITTEN = "as-written"
AS_WRITTEN_DATASETS = frozenset({"videos"})
CLASS_SET_NAMES = (*CLASS_SETS, AS_WRITTEN)


def as_written_class_set(emotions: Iterable[str]) -> ClassSet:
    """One class per emotion in `emotions` (case and synonyms folded, `Happy` and `happiness` are one
    class named `happiness`), sorted by name. Empty emotions are unlabelled samples, not a class."""
    words = sorted({canonical_emotion(e) for e in emotions if str(e).strip()})
    if not words:
        raise LabelSetError("the as-written class set needs labelled samples, but every sample's emotion is empty; "
                            "fill the emotion column of the CSV (docs/datasets.md, \"Your own recordings\") "
                            f"or pass --classes {'|'.join(CLASS_SETS)}")
    return ClassSet(AS_WRITTEN, tuple(words), _same(*words))


def get_class_set(name: str, emotions: Iterable[str] | None = None) -> ClassSet:
    """The class set `name`; `as-written` is built from `emotions` (the run's samples' emotions)."""
    if name == AS_WRITTEN:
        if emotions is None:
            raise LabelSetError("the as-written class set is built from the samples' emotions; pass them as `emotions`")
        return as_written_class_set(emotions)
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise LabelSetError(f"unknown class set {name!r}; choose one of {', '.join(CLASS_SET_NAMES)}") from None


def infer_class_set(datasets: set[str] | list[str]) -> str:
    """The class set implied by the micro-expression datasets of a run, or LabelSetError: `as-written`
    when every dataset is one without a standard set (`videos`)."""
    found = sorted({canonical_dataset(d) for d in datasets})
    if found and set(found) <= AS_WRITTEN_DATASETS:
        return AS_WRITTEN
    if len(found) > 1:
        return "megc2019-3"
    if len(found) == 1 and found[0] in DEFAULT_CLASS_SET:
        return DEFAULT_CLASS_SET[found[0]]
    raise LabelSetError(
        f"cannot infer the class set from dataset(s) {', '.join(found) or '(none)'}; "
        f"pass --classes {'|'.join(CLASS_SETS)}"
    )
