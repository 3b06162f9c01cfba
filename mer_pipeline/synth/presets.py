"""Difficulty presets: every knob that makes a synthetic dataset easier or harder, in one frozen dataclass.

A preset never changes the layout (names, sizes, fps, sheet); it only changes how strong the planted
motion is against the nuisances (head drift, sensor noise, compression). Add a preset by adding one
entry to `PRESETS`; `generate(..., preset=NAME)` and `mer-prep synth --preset NAME` pick it up.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import SynthError


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
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise SynthError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
