"""The canonical sample record every dataset adapter yields, and the failure record."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("micro", "macro")  # Sample.kind: micro-expressions are recognised, macro ones feed the auxiliary branch


def subject_id(dataset: str, subject: str) -> str:
    """`casme2/sub01`: a person, unique across datasets (the unit of leave-one-subject-out)."""
    return f"{dataset}/{subject}"


def sample_id(dataset: str, subject: str, clip: str) -> str:
    """`casme2/sub01/EP02_01f`: the one spelling of a sample's id (shards are sorted by it, failures and
    predictions name samples by it). Everything that makes an id calls this."""
    return f"{subject_id(dataset, subject)}/{clip}"


def split_sample_id(text: str) -> tuple[str, str, str] | None:
    """(dataset, subject, clip) of an id made by `sample_id`, or None when `text` is not one."""
    parts = text.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


@dataclass(frozen=True)
class Sample:
    """One expression clip, as the annotation sheet and the raw tree describe it.

    `frames` maps the frame number written in the file name to the file's path (for a video file,
    `frames.VideoFrame(video, number)`, numbered from 0; `frames.read_grey` reads both). `apex` is None
    when the sheet gives no usable apex (then it is spotted). `notes` records every fix or
    doubt the adapter met on the way, for the failure report and the logs.
    """

    dataset: str
    subject: str
    clip: str
    frames: dict[int, Path]
    onset: int
    apex: int | None
    offset: int
    emotion: str
    action_units: str = ""
    fps: float = 0.0
    kind: str = "micro"
    notes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def sample_id(self) -> str:
        return sample_id(self.dataset, self.subject, self.clip)

    def nearest_frame(self, number: int) -> int:
        """`number` when that frame exists, else the nearest existing frame number (ties go to the
        earlier frame). Raw trees have gaps: lost frames in CAS(ME)^3, SMIC, cropped CASME II."""
        if number in self.frames:
            return number
        if not self.frames:
            raise KeyError(number)
        return min(self.frames, key=lambda n: (abs(n - number), n))


@dataclass(frozen=True)
class Failure:
    """A sample that could not be turned into shard data, and why."""

    sample_id: str
    stage: str  # adapter | read | face | apex | flow | worker | clip (an unexpected error)
    error: str  # the exception class name
    message: str
    unexpected: bool = False  # a bug in mer-toolkit, not a problem of the clip (none of clip.EXPECTED_ERRORS)

    def to_json(self) -> dict:
        row = {"sample_id": self.sample_id, "stage": self.stage, "error": self.error, "message": self.message}
        return row | {"unexpected": True} if self.unexpected else row


@dataclass
class ScanResult:
    """What an adapter found in a raw tree: usable samples and rows it had to reject."""

    samples: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


__all__ = ["Sample", "Failure", "KINDS"]
