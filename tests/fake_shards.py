"""Tiny fake shard sets for the trainer tests, handed to them by the fixtures `fake_shards` (this
module: `fake_shards.write_set(...)`, `fake_shards.MICRO_EMOTIONS`, ...) and `fake_root` (a micro and a
macro set made once per session), both in tests/conftest.py; tests do not import it by name.

Each emotion has a planted motion pattern: a Gaussian blob of flow at an emotion-specific place of
the aligned face, moving in an emotion-specific direction, plus noise. Micro samples move ~0.3 px,
macro samples ~8 px with the same patterns, so the auxiliary branch has something true to align to.
Shards are written with stage one's own writer, `mer_pipeline.shards.write_shard` + `write_manifest`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_pipeline.shards import SHARD_DIR, config_hash, shard_name, write_manifest, write_shard

# (centre x, centre y) as fractions of the crop, and the direction of motion, per canonical emotion
PATTERNS = {
    "happiness": (0.30, 0.72, 0.0), "disgust": (0.50, 0.50, 1.57), "repression": (0.70, 0.72, 3.14),
    "surprise": (0.35, 0.30, -1.57), "others": (0.65, 0.30, 0.8), "fear": (0.5, 0.2, 2.4),
    "anger": (0.5, 0.3, 1.57), "sadness": (0.5, 0.8, -0.8),
}
MICRO_EMOTIONS = ("Happiness", "disgust", "REPRESSION", "surprise", "Others")  # case as datasets vary it
MACRO_EMOTIONS = ("happy", "disgust", "surprise", "anger", "sadness")          # CK+ spelling


def planted_flow(emotion: str, size: int, amplitude: float, noise: float, rng: np.random.Generator,
                 jitter: float = 0.04) -> np.ndarray:
    """(2, size, size) flow: the emotion's blob (moved a little per sample) + Gaussian noise."""
    cx, cy, angle = PATTERNS[{"happy": "happiness"}.get(emotion.lower(), emotion.lower())]
    cx, cy = (cx + rng.normal(0, jitter)) * size, (cy + rng.normal(0, jitter)) * size
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.09 * size) ** 2))
    flow = amplitude * blob[None] * np.array([np.cos(angle), np.sin(angle)])[:, None, None]
    return (flow + rng.normal(0, noise, flow.shape)).astype(np.float32)


def template_landmarks(size: int, n: int = 68) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([size * (0.5 + 0.38 * np.cos(t)), size * (0.52 + 0.42 * np.sin(t))], 1).astype(np.float32)


def write_set(out: Path, *, dataset: str, kind: str, emotions: tuple[str, ...], subjects: int, per_emotion: int,
              amplitude: float, noise: float, size: int = 32, seed: int = 0) -> Path:
    """A complete shard set (manifest included) at `out`: `per_emotion` samples of each emotion per subject."""
    rng = np.random.default_rng(seed)
    records = []
    for s in range(subjects):
        for emotion in emotions:
            for k in range(per_emotion):
                flow = planted_flow(emotion, size, amplitude, noise, rng)
                strain = np.hypot(*np.gradient(flow[0])) + np.hypot(*np.gradient(flow[1]))
                clip = f"EP{len(records):03d}"
                records.append({
                    "onset": rng.integers(0, 255, (size, size), dtype=np.uint8),
                    "apex": rng.integers(0, 255, (size, size), dtype=np.uint8),
                    "flow": flow, "strain": strain.astype(np.float32), "landmarks": template_landmarks(size),
                    "meta": {"sample_id": f"{dataset}/sub{s:02d}/{clip}", "dataset": dataset, "subject": f"sub{s:02d}",
                             "clip": clip, "emotion": emotion, "action_units": "", "kind": kind, "onset_frame": 1,
                             "apex_frame": 5, "offset_frame": 9, "apex_source": "annotated", "fps": 200.0},
                })
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    config = {"fake": True, "size": size}
    shards = []
    for i in range(0, len(records), 64):
        name = shard_name(dataset, i // 64)
        digest = write_shard(out / SHARD_DIR / name, records[i:i + 64], size=size, landmarks=68,
                             config_hash=config_hash(config))
        shards.append({"file": name, "n": len(records[i:i + 64]), "sha256": digest})
    counts: dict[str, int] = {}
    for r in records:
        counts[r["meta"]["emotion"]] = counts.get(r["meta"]["emotion"], 0) + 1
    write_manifest(out, dataset=dataset, config=config, shards=shards, failed=0, class_counts=counts,
                   pipeline_version="fake")
    return out


def build_root(root: Path, *, subjects: int = 5, per_emotion: int = 2, size: int = 32) -> Path:
    """root/casme2 (micro, 5 classes + fear to drop) and root/ckplus (macro)."""
    write_set(root / "casme2", dataset="casme2", kind="micro", emotions=MICRO_EMOTIONS + ("fear",),
              subjects=subjects, per_emotion=per_emotion, amplitude=0.3, noise=0.1, size=size, seed=1)
    write_set(root / "ckplus", dataset="ckplus", kind="macro", emotions=MACRO_EMOTIONS,
              subjects=4, per_emotion=2, amplitude=8.0, noise=0.5, size=size, seed=2)
    return root
