"""Synthetic raw datasets: real face photos, planted micro-movements, each dataset's real layout.

    from mer_pipeline.synth import generate, synth_truth, truth_field
    summary = generate("casme2", Path("raw/casme2"), subjects=3, clips_per_subject=2, seed=0)
    truth = json.loads((Path("raw/casme2") / "synth_truth.json").read_text())
    field = truth_field(truth["clips"][0])          # (2, H, W) float32, onset -> apex, raw px
    truth = synth_truth("casme2", preset="hard", gap=False)   # a truth document, nothing rendered

See docs/synth.md for the layouts, the truth file and the options.
"""
from .aus import AU_CATALOGUE, EMOTION_AUS, ActionUnit, Bump, truth_field
from .generate import GENERATOR_VERSION, TRUTH_FILE, generate, synth_truth
from .layouts import DATASETS, LAYOUTS
from .presets import PRESETS, Preset

__all__ = [
    "AU_CATALOGUE",
    "EMOTION_AUS",
    "ActionUnit",
    "Bump",
    "DATASETS",
    "GENERATOR_VERSION",
    "LAYOUTS",
    "PRESETS",
    "Preset",
    "TRUTH_FILE",
    "generate",
    "synth_truth",
    "truth_field",
]
