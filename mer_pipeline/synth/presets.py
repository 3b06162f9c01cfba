"""Difficulty presets: every knob that makes a synthetic dataset easier or harder, in one frozen dataclass.

A preset never changes the layout (names, frame size, fps, sheet). `easy` and `default` only change
how strong the planted motion is against the nuisances (head drift, sensor noise, compression).
`hard` also gives micro-expression sets the three problems of real MER data (docs/synth.md, Presets):
an imbalanced, uneven population (`Population`), people who express differently (`Traits`), and
cues that go with the label inside a subject but not across subjects (`Confounders`). Those three
are None (off) in the other presets, and fields that are None are left out of synth_truth.json, so
trees of `easy` and `default` stay byte-identical to what they were before `hard` existed.
`hard` also opens the gap between posed macro- and spontaneous micro-expressions (`Gap`). Each of
its difficulty factors (`FACTORS`) can be switched on or off on any preset (`with_factors`).
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
    by: str = "emotion"  # emotion: a cue per (subject, emotion); session: per (subject, recording session)
    sessions: tuple[int, int] = (2, 4)  # by="session": sessions per subject (inclusive), clips dealt at random


@dataclass(frozen=True)
class Gap:
    """The micro/macro gap: posed macro-expressions (the full prototypical AU set, symmetric, strong;
    `aus.MACRO_AUS`) against spontaneous micro-expressions (a partial, often one-sided subset of the
    emotion's AUs, `aus.MICRO_SPONTANEOUS`, minus the AUs a subject never shows)."""

    micro_intensity: tuple[float, float]  # per-AU intensity of a micro-expression (relative)
    macro_intensity: tuple[float, float]  # per-AU intensity of a macro-expression, the same on both sides
    subject_dropout: float  # per subject and AU: probability that this subject never shows that AU
    unilateral: float  # per bilateral AU of a micro clip: probability that it shows on one side only
    off_prototype: float = 0.0  # per micro clip: probability that it shows a single `others` AU instead


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
    gap: Gap | None = None  # the realistic micro/macro gap
    factors: tuple[str, ...] | None = None  # the difficulty factors (FACTORS) that are on; None: no switches


# The difficulty presets of `generate(preset=...)`, by name
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
        gap=Gap(micro_intensity=(0.3, 1.0), macro_intensity=(0.85, 1.0), subject_dropout=0.25, unilateral=0.3,
                off_prototype=0.2),
        factors=("noise_floor", "imbalance", "traits", "confounders", "gap"),
    ),
}

# The difficulty factors of the hard preset, each switchable on any preset (`with_factors`,
# `mer-prep synth --no-confounders`, ...): what each one moves, in the order of docs/synth.md.
FACTORS = ("noise_floor", "imbalance", "traits", "confounders", "gap")
MACRO_FACTORS = ("gap",)  # the others are micro-only: they never change a macro-expression tree
# noise_floor: the "Signal and nuisances" of the hard preset (weak motion under strong nuisances);
# off, they are the default preset's
SIGNAL_FIELDS = ("micro_amplitude", "micro_amplitude_spacing", "head_translation", "head_rotation_deg",
                 "noise_sigma", "jpeg_quality", "micro_duration_s", "apex_fraction")
CONFOUNDERS_BY = ("emotion", "session")


def with_factors(preset: Preset, *, noise_floor: bool | None = None, imbalance: bool | None = None,
                 traits: bool | None = None, confounders: bool | None = None, gap: bool | None = None,
                 confounders_by: str | None = None) -> Preset:
    """The preset with difficulty factors switched on (True) or off (False); None keeps the preset's.

    A factor switched on takes the hard preset's values, switched off the default preset's (no
    population, traits, confounders or gap; the default signal and nuisances). `traits` also sets
    the face-geometry warp (`identity_strength`). `confounders_by` ("emotion" | "session") says what
    a confounder cue goes with. With any switch the result records the factors that are on
    (`factors`); with none it is `preset` itself, so easy and default trees stay as they were.
    """
    switches = {"noise_floor": noise_floor, "imbalance": imbalance, "traits": traits, "confounders": confounders,
                "gap": gap}
    if all(v is None for v in switches.values()) and confounders_by is None:
        return preset
    hard, default = PRESETS["hard"], PRESETS["default"]
    on = set(preset.factors or ())
    changes: dict = {}
    for name, value in switches.items():
        if value is None or bool(value) == (name in on):
            continue
        source = hard if value else default
        if name == "noise_floor":
            changes.update({f: getattr(source, f) for f in SIGNAL_FIELDS})
        elif name == "imbalance":
            changes["population"] = source.population
        elif name == "traits":
            changes.update(traits=source.traits, identity_strength=source.identity_strength)
        elif name == "confounders":
            changes["confounders"] = source.confounders
        else:
            changes["gap"] = source.gap
        (on.add if value else on.discard)(name)
    if confounders_by is not None:
        if confounders_by not in CONFOUNDERS_BY:
            raise SynthError(f"confounders_by must be one of {', '.join(CONFOUNDERS_BY)}, not {confounders_by!r}")
        cues = changes.get("confounders", preset.confounders)
        if cues is None:
            raise SynthError(f"--confounders-by {confounders_by} needs confounders: the {preset.name} preset has "
                             "none; add --confounders")
        changes["confounders"] = replace(cues, by=confounders_by)
    return replace(preset, **changes, factors=tuple(f for f in FACTORS if f in on))


def factor_state(preset: Preset) -> dict | None:
    """{factor: on?, confounders_by} as synth_truth.json records it (`factors`); None without switches."""
    if preset.factors is None:
        return None
    state: dict = {name: name in preset.factors for name in FACTORS}
    state["confounders_by"] = preset.confounders.by if preset.confounders else None
    return state


def effective_preset(preset: Preset, kind: str) -> Preset:
    """The preset as a layout of this kind (micro | macro) uses it, as recorded in synth_truth.json.

    Macro-expression sets are the clean auxiliary signal: population, traits and confounders are
    micro-only, and `macro_nuisances` names the preset whose head drift, noise and JPEG they take.
    """
    if kind != "macro" or not (preset.population or preset.traits or preset.confounders or preset.macro_nuisances
                               or preset.factors is not None):
        return preset
    clean = get_preset(preset.macro_nuisances) if preset.macro_nuisances else preset
    factors = None if preset.factors is None else tuple(f for f in preset.factors if f in MACRO_FACTORS)
    return replace(preset, head_translation=clean.head_translation, head_rotation_deg=clean.head_rotation_deg,
                   noise_sigma=clean.noise_sigma, jpeg_quality=clean.jpeg_quality, population=None, traits=None,
                   confounders=None, factors=factors)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise SynthError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
