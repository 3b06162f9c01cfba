"""Oulu-CASIA NIR&VIS, MACRO-expressions, visible light, strong illumination (datasets.md section 10).

    OUT/OriginalImg/VL/Strong/P001/Anger/000.jpeg ... 0NN.jpeg    320x240 colour JPEG, 25 fps

No annotation file: the label is the expression folder (Anger, Disgust, Fear, Happiness, Sadness,
Surprise). Each sequence runs from neutral (000) to the peak (last frame): onset 0, apex = offset
= N-1; frame numbers are 3-digit and 0-based. The NI spectrum, the Weak and Dark lighting and the
PreProcess crops are not generated. Subjects come from the "macro" identity stream, never the
people of the synthetic micro-expression sets.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from .. import aus
from ._base import Clip, Layout, Plan, Video

EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


class OuluLayout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(range(1, 81), n, replace=False)) if n <= 80 else range(1, n + 1)
        return [f"P{int(k):03d}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            for label in dict.fromkeys(row):  # one sequence per expression and subject
                last = int(rng.integers(9, 30))
                prototype = str(rng.choice(self.prototype_options(label)))
                options = aus.EMOTION_AUS[prototype]
                tokens = tuple(options[int(rng.integers(len(options)))])
                clip = Clip(subject, label, label, prototype, tokens, 0, last, last)
                clip.annotated = {"onset": 0, "apex": last, "offset": last, "emotion": label, "action_units": None}
                folder = PurePosixPath("OriginalImg", "VL", "Strong", subject, label)
                videos.append(Video(subject, folder, list(range(0, last + 1)), [clip]))
        return Plan(videos=videos)

    def frame_file(self, video, number):
        return video.folder / f"{number:03d}.jpeg"


LAYOUT = OuluLayout(
    name="oulu",
    title="Oulu-CASIA NIR&VIS (OriginalImg/VL/Strong/P001/<Expression>/000.jpeg), macro-expressions",
    fps=25.0,
    frame_size=(320, 240),
    grey=False,
    kind="macro",
    face_width=130.0,
    image_format="jpg",
    default_subjects=6,
    default_clips=6,
    classes=EXPRESSIONS,
    identity_stream="macro",
    roots=("OriginalImg",),
)
