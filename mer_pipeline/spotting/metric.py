"""The MEGC spotting metric and the spot-then-recognise score. Pure functions, no I/O.

Rules (MEGC 2019-2024 spotting; Li et al., "MEGC2021: the third facial micro-expression grand
challenge"): a spotted interval is a true positive when its intersection over union with a
ground-truth interval of the same video and kind is at least 0.5,

    IoU = |[onset_p, offset_p] ∩ [onset_g, offset_g]| / |[onset_p, offset_p] ∪ [onset_g, offset_g]|

(frame ranges, both ends included). Matching is one-to-one: a ground-truth interval is found at
most once and a spotted interval finds at most one (the largest such matching is taken, so that a
prediction overlapping two ground-truth intervals counts once and leaves the other one a false
negative). Counts are pooled over every video of the dataset before F1 = 2TP / (2TP + FP + FN);
micro and macro are scored separately and `overall` pools their counts.

The spot-then-recognise score (Liong et al. 2022, "Spot-then-recognize: a micro-expression
analysis network for seamless evaluation of long videos", Signal Processing: Image Communication
116875; the STR task of MEGC 2023/2024) multiplies the spotting F1 by the recognition F1 (mean
per-class F1, as UF1) over the true positives: a wrong class on a found interval costs, and so
does an interval that was never found.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

KINDS = ("micro", "macro")
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Interval:
    """One expression interval of a long video; frame numbers as the dataset numbers them."""

    video: str
    onset: int
    offset: int
    kind: str = "micro"
    apex: int | None = None
    score: float = 0.0
    label: str = ""

    def __post_init__(self):
        if self.offset < self.onset:
            raise ValueError(f"interval {self.video} {self.onset}..{self.offset}: offset before onset")

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two frame ranges (both ends included)."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.length + b.length - inter)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def f1(self) -> float | None:
        """2TP / (2TP + FP + FN); None when there was nothing to find and nothing was spotted."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def match(predicted: Sequence[Interval], truth: Sequence[Interval],
          threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
    """The largest one-to-one matching of predictions to ground truth with IoU >= `threshold`.

    Only pairs of the same video and kind can match. Returns (prediction index, truth index) pairs.
    Kuhn's augmenting paths: predictions are tried by descending score, and each one's candidates
    by descending IoU, so that among matchings of the largest size the better overlaps are kept.
    """
    candidates: dict[int, list[int]] = {}
    for i, p in enumerate(predicted):
        pairs = [(iou(p, g), j) for j, g in enumerate(truth) if g.video == p.video and g.kind == p.kind]
        candidates[i] = [j for value, j in sorted(pairs, key=lambda x: (-x[0], x[1])) if value >= threshold]
    owner: dict[int, int] = {}  # truth index -> prediction index

    def augment(i: int, seen: set[int]) -> bool:
        for j in candidates[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in sorted(range(len(predicted)), key=lambda i: (-predicted[i].score, i)):
        augment(i, set())
    return sorted((i, j) for j, i in owner.items())


def spotting_counts(predicted: Sequence[Interval], truth: Sequence[Interval], kind: str,
                    threshold: float = IOU_THRESHOLD) -> tuple[Counts, list[tuple[int, int]]]:
    """TP/FP/FN of one kind pooled over all videos, and the matched (prediction, truth) pairs
    as indices into the full `predicted` and `truth` lists."""
    p_index = [i for i, p in enumerate(predicted) if p.kind == kind]
    t_index = [j for j, g in enumerate(truth) if g.kind == kind]
    pairs = match([predicted[i] for i in p_index], [truth[j] for j in t_index], threshold)
    tp = len(pairs)
    counts = Counts(tp, len(p_index) - tp, len(t_index) - tp)
    return counts, [(p_index[i], t_index[j]) for i, j in pairs]


def spotting_metrics(predicted: Iterable[Interval], truth: Iterable[Interval],
                     threshold: float = IOU_THRESHOLD) -> dict:
    """`f1_micro`, `f1_macro`, `f1_overall` and the counts behind them (MEGC rules, see module doc).

    Also per video: its TP/FP/FN over both kinds, so that false positives can be located.
    """
    predicted, truth = list(predicted), list(truth)
    for interval in (*predicted, *truth):
        if interval.kind not in KINDS:
            raise ValueError(f"interval {interval.video} {interval.onset}..{interval.offset}: kind "
                             f"{interval.kind!r}, expected one of {', '.join(KINDS)}")
    counts, matches = {}, []
    for kind in KINDS:
        counts[kind], pairs = spotting_counts(predicted, truth, kind, threshold)
        matches += pairs
    counts["overall"] = counts["micro"] + counts["macro"]
    per_video: dict[str, Counts] = defaultdict(Counts)
    matched_p, matched_t = {i for i, _ in matches}, {j for _, j in matches}
    for i, p in enumerate(predicted):
        per_video[p.video] += Counts(tp=int(i in matched_p), fp=int(i not in matched_p))
    for j, g in enumerate(truth):
        per_video[g.video] += Counts(fn=int(j not in matched_t))
    return {
        "iou_threshold": threshold,
        "f1_micro": counts["micro"].f1,
        "f1_macro": counts["macro"].f1,
        "f1_overall": counts["overall"].f1,
        "counts": {k: c.as_dict() for k, c in counts.items()},
        "per_video": {video: c.as_dict() for video, c in sorted(per_video.items())},
        "matches": sorted(matches),
    }


def recognition_f1(truth_labels: Sequence[str], predicted_labels: Sequence[str]) -> float | None:
    """Mean per-class F1 (UF1) over the classes present in `truth_labels`; None when empty."""
    if len(truth_labels) != len(predicted_labels):
        raise ValueError("recognition_f1: as many predicted labels as true ones are needed")
    classes = sorted(set(truth_labels))
    if not classes:
        return None
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(truth_labels, predicted_labels))
        fp = sum(t != c and p == c for t, p in zip(truth_labels, predicted_labels))
        fn = sum(t == c and p != c for t, p in zip(truth_labels, predicted_labels))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def spot_then_recognise(spotting_f1: float | None, truth_labels: Sequence[str],
                        predicted_labels: Sequence[str]) -> dict:
    """STRS = spotting F1 x recognition F1 over the true positives (their true and predicted labels).

    With no true positive the recognition F1 is undefined and STRS is 0 (nothing was recognised).
    """
    recognition = recognition_f1(truth_labels, predicted_labels)
    strs = (spotting_f1 or 0.0) * (recognition or 0.0)
    return {"spotting_f1": spotting_f1, "recognition_f1": recognition, "strs": strs,
            "true_positives": len(truth_labels)}
