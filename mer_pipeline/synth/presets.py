"""Difficulty presets: every knob that makes a synthetic dataset easier or harder, in one frozen dataclass.

A preset never changes the layout (names, frame size, fps, sheet). `easy` and `default` only change
how strong the planted motion is against the nuisances (head drift, sensor noise, compression).
`hard` also gives micro-expression sets the three problems of real MER data (docs/synth.md, Presets):
an imbalanced, uneven population (`Population`), people who express differently (`Traits`), and
cues that go with the label inside a subject but not across subjects (`Confounders`). Those three
are None (off) in the other presets, and fields that are None are left out of synth_truth.json, so
trees of `easy` and `default` stay byte-identical to what they were before `hard` existed.
Add a preset by adding one entry to `PRESETS`; `generate(..., preset=NAME)` and
`mer-prep synth --preset NAME` pick it up.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import SynthError


# Clips per emotion in CASME II (255 clips, 26 subjects; Yan et al. 2014), keyed by prototype emotion.
CASME2_COUNTS = (("others", 99), ("disgust", 63), ("happiness", 32), ("repression", 27), ("surprise", 25),
                 ("sadness", 7), ("fear", 2))


@dataclass(frozen=True)
class Population:
    """Who shows what, how often (micro layouts only): class proportions and uneven subjects."""

    class_counts: tuple[tuple[str, int], ...]  # prototype emotion -> relative count
    clips_cv: float  # coefficient of variation of clips per subject (0: every subject the same)
    emotion_concentration: float  # Dirichlet alpha of a subject's emotion mix (small: few emotions each)


@dataclass(frozen=True)
class Traits:
    """How a subject expresses, the same in every clip of that subject (micro layouts only)."""

    amplitude_scale: tuple[float, float]  # multiplies every clip's amplitude (log-uniform)
    asymmetry: tuple[float, float]  # one side of the face moves (1 - a) times as much
    habitual_aus: tuple[str, ...]  # one is drawn per subject and added to every expression
    habit_strength: tuple[float, float]  # the habit's strength relative to the emotion's AUs


@dataclass(frozen=True)
class Confounders:
    """Label cues that do not generalise: per (subject, emotion), drawn anew for every subject."""

    fraction: float  # share of subjects with cues; the others have none
    light: tuple[float, float]  # lighting-gradient change at apex, relative gain across the face
    head_shift: tuple[float, float]  # head nudge at apex (px), direction per (subject, emotion)
    head_roll_deg: tuple[float, float]  # head roll at apex (degrees, random sign)
    jitter: float  # per-clip relative variation of a cue around its (subject, emotion) value


@dataclass(frozen=True)
class Preset:
    """Difficulty parameters. Amplitudes and drifts are in raw pixels, times in seconds."""

    name: str
    micro_amplitude: tuple[float, float]  # apex max |displacement| of a micro-expression (px)
    macro_amplitude: tuple[float, float]  # apex max |displacement| of a macro-expression (px)
    head_translation: tuple[float, float]  # amplitude of each head-drift sinusoid (px)
    head_rotation_deg: tuple[float, float]  # amplitude of the roll sinusoid (degrees)
    noise_sigma: tuple[float, float]  # Gaussian sensor noise per clip (grey levels)
    jpeg_quality: tuple[int, int]  # per clip, inclusive
    micro_duration_s: tuple[float, float]  # onset..offset of a micro-expression
    apex_fraction: tuple[float, float]  # where the apex falls between onset and offset
    identity_strength: float = 1.0  # scale of the per-subject face-geometry warp
    # --- off (None) unless set; None fields are not written to synth_truth.json -----------------
    micro_amplitude_spacing: str | None = None  # "log": log-uniform amplitude draws; None: uniform
    population: Population | None = None
    traits: Traits | None = None
    confounders: Confounders | None = None
    macro_nuisances: str | None = None  # macro layouts take drift, noise and JPEG from this preset
    default_sizes: tuple[tuple[str, int, int], ...] | None = None  # (dataset, subjects, clips/subject)


PRESETS: dict[str, Preset] = {
    "easy": Preset(
        name="easy",
        micro_amplitude=(1.0, 2.0),
        macro_amplitude=(8.0, 15.0),
        head_translation=(0.0, 0.3),
        head_rotation_deg=(0.0, 0.03),
        noise_sigma=(0.8, 1.0),
        jpeg_quality=(93, 95),
        micro_duration_s=(0.20, 0.40),
        apex_fraction=(0.35, 0.65),
    ),
    "default": Preset(
        name="default",
        micro_amplitude=(0.3, 2.0),
        macro_amplitude=(5.0, 15.0),
        head_translation=(0.3, 1.5),
        head_rotation_deg=(0.05, 0.25),
        noise_sigma=(1.0, 2.0),
        jpeg_quality=(85, 95),
        micro_duration_s=(0.15, 0.45),
        apex_fraction=(0.25, 0.72),
    ),
    "hard": Preset(
        name="hard",
        micro_amplitude=(0.15, 2.0),
        micro_amplitude_spacing="log",
        macro_amplitude=(5.0, 15.0),
        head_translation=(0.5, 2.0),
        head_rotation_deg=(0.1, 0.4),
        noise_sigma=(1.5, 3.0),
        jpeg_quality=(75, 92),
        micro_duration_s=(0.10, 0.50),
        apex_fraction=(0.15, 0.85),
        identity_strength=1.8,
        population=Population(class_counts=CASME2_COUNTS, clips_cv=0.75, emotion_concentration=0.7),
        traits=Traits(amplitude_scale=(0.5, 1.5), asymmetry=(0.0, 0.5),
                      habitual_aus=("4", "7", "14", "17", "24", "R2", "L2", "R12", "L12"),
                      habit_strength=(0.25, 0.6)),
        confounders=Confounders(fraction=0.75, light=(0.01, 0.03), head_shift=(0.3, 1.2),
                                head_roll_deg=(0.0, 0.15), jitter=0.15),
        macro_nuisances="easy",
        default_sizes=(("casme2", 26, 10), ("ckplus", 20, 6)),
    ),
}


def effective_preset(preset: Preset, kind: str) -> Preset:
    """The preset as a layout of this kind (micro | macro) uses it, as recorded in synth_truth.json.

    Macro-expression sets are the clean auxiliary signal: population, traits and confounders are
    micro-only, and `macro_nuisances` names the preset whose head drift, noise and JPEG they take.
    """
    if kind != "macro" or not (preset.population or preset.traits or preset.confounders or preset.macro_nuisances):
        return preset
    clean = get_preset(preset.macro_nuisances) if preset.macro_nuisances else preset
    return replace(preset, head_translation=clean.head_translation, head_rotation_deg=clean.head_rotation_deg,
                   noise_sigma=clean.noise_sigma, jpeg_quality=clean.jpeg_quality, population=None, traits=None,
                   confounders=None)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise SynthError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
