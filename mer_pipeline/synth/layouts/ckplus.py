"""CK+ (Extended Cohn-Kanade), MACRO-expressions (datasets.md section 10).

    OUT/cohn-kanade-images/S005/001/S005_001_00000001.png ... _000000NN.png   640x490 grey PNG, 30 fps
    OUT/Emotion/S005/001/S005_001_000000NN_emotion.txt     "   3.0000000e+00"  (only some sequences)
    OUT/FACS/S005/001/S005_001_000000NN_facs.txt           one "AU intensity" line per AU

Each sequence runs from neutral (frame 1) to the peak (last frame): onset 1, apex = offset = N.
Emotion codes: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise; like the
real set, only about 55 % of the sequences have an emotion file. The per-frame `Landmarks/` folder
of the real set is not generated. Subjects come from a separate identity stream ("macro"), so they
are never the people of the synthetic micro-expression sets.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .. import aus
from ._base import Clip, Layout, Plan, Video

CODES = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happy": 5, "sadness": 6, "surprise": 7}
LABELLED_FRACTION = 0.55


def _number(value: float) -> str:
    return f"   {float(value):.7e}"


class CkplusLayout(Layout):
    def subject_names(self, rng, n):
        numbers = sorted(rng.choice(range(5, 507), n, replace=False)) if n <= 502 else range(5, 5 + n)
        return [f"S{int(k):03d}" for k in numbers]

    def plan(self, rng, subjects, labels, preset):
        videos = []
        for subject, row in zip(subjects, labels):
            sequences = sorted(int(k) for k in rng.choice(range(1, 3 * len(row) + 2), len(row), replace=False))
            for number, label in zip(sequences, row):
                n_frames = int(rng.integers(10, 41))
                prototype = str(rng.choice(self.prototype_options(label)))
                options = aus.EMOTION_AUS[prototype]
                tokens = tuple(options[int(rng.integers(len(options)))])
                clip = Clip(subject, f"{number:03d}", label, prototype, tokens, 1, n_frames, n_frames)
                clip.extra = {"code": CODES[label]}
                if rng.random() < LABELLED_FRACTION:
                    clip.annotated = {"onset": 1, "apex": n_frames, "offset": n_frames, "emotion": label,
                                      "code": CODES[label], "action_units": aus.au_label(tokens)}
                folder = PurePosixPath("cohn-kanade-images", subject, clip.clip)
                videos.append(Video(subject, folder, list(range(1, n_frames + 1)), [clip]))
        if videos and not any(v.clips[0].annotated for v in videos):
            c = videos[0].clips[0]
            c.annotated = {"onset": 1, "apex": c.apex, "offset": c.offset, "emotion": c.label,
                           "code": CODES[c.label], "action_units": aus.au_label(c.aus)}
        return Plan(videos=videos)

    def frame_file(self, video, number):
        clip = video.clips[0]
        return video.folder / f"{clip.subject}_{clip.clip}_{number:08d}.png"

    def write_annotations(self, out: Path, plan: Plan):
        written = []
        for video in plan.videos:
            clip = video.clips[0]
            stem = f"{clip.subject}_{clip.clip}_{clip.offset:08d}"
            facs = out / "FACS" / clip.subject / clip.clip / f"{stem}_facs.txt"
            facs.parent.mkdir(parents=True, exist_ok=True)
            numbers = sorted({aus.parse_au(t)[0] for t in clip.aus})
            facs.write_text("".join(f"{_number(n)}{_number(0)}\n" for n in numbers))
            written.append(facs)
            if clip.annotated is not None:
                emotion = out / "Emotion" / clip.subject / clip.clip / f"{stem}_emotion.txt"
                emotion.parent.mkdir(parents=True, exist_ok=True)
                emotion.write_text(f"{_number(clip.annotated['code'])}\n")
                written.append(emotion)
        return written


LAYOUT = CkplusLayout(
    name="ckplus",
    title="CK+ (cohn-kanade-images + Emotion + FACS), macro-expressions",
    fps=30.0,
    frame_size=(640, 490),
    grey=True,
    kind="macro",
    face_width=250.0,
    image_format="png",
    default_subjects=10,
    default_clips=3,
    classes=tuple(CODES),
    prototypes={"happy": ("happiness",)},
    identity_stream="macro",
    roots=("cohn-kanade-images", "Emotion", "FACS"),
)
