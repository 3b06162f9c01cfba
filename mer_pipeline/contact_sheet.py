"""Contact sheet of a shard set: aligned onset, apex, colour-coded flow and strain per sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ShardError
from .shards import FAILURES, open_shards


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(2, H, W) flow -> (H, W, 3) uint8: hue = direction, value = magnitude (Middlebury-style)."""
    import cv2

    u, v = flow[0], flow[1]
    magnitude, angle = cv2.cartToPolar(u.astype(np.float32), v.astype(np.float32), angleInDegrees=True)
    scale = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def contact_sheet(out: Path, output: Path, max_samples: int = 24) -> Path:
    """Write a PNG of up to `max_samples` samples of the shard set `out`, spread over the set, to
    `output`; ShardError when the set holds no sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shards = open_shards(out, fields=("onset", "apex", "flow", "strain"))
    n = min(len(shards), max_samples)
    if n == 0:
        raise ShardError(f"{out}: the shard set holds no samples, so there is nothing to show; every clip was "
                         f"skipped (see {Path(out) / FAILURES}): fix what it names and rerun mer-prep")
    # Spread the picks over the set so several subjects and classes show.
    picks = np.unique(np.linspace(0, len(shards) - 1, n).round().astype(int))
    columns = ("onset", "apex", "flow", "strain")
    per_row = 2  # samples side by side
    rows = int(np.ceil(len(picks) / per_row))
    fig, grid = plt.subplots(rows, 4 * per_row, figsize=(8 * per_row, 2.1 * rows), squeeze=False)
    for ax in grid.flat:
        ax.axis("off")
    for slot, index in enumerate(picks):
        row = slot  # index into the flattened (sample, panel) table below
        axes = grid.reshape(rows * per_row, 4)
        flow = shards.arrays["flow"][index]
        images = (shards.arrays["onset"][index], shards.arrays["apex"][index], flow_to_rgb(flow),
                  shards.arrays["strain"][index])
        for col, (name, image) in enumerate(zip(columns, images)):
            ax = axes[row, col]
            ax.axis("on")
            if name == "strain":  # the border's few large values would wash out the face
                ax.imshow(image, cmap="magma", vmin=0, vmax=float(np.percentile(image, 99)) or None)
            else:
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row < per_row:
                ax.set_title(name, fontsize=9)
        meta = {k: shards.meta[k][index] for k in ("sample_id", "emotion", "apex_source", "apex_frame")}
        peak = float(np.hypot(flow[0], flow[1]).max())
        axes[row, 0].set_ylabel(f"{meta['sample_id']}\n{meta['emotion']} | apex {meta['apex_frame']} "
                                f"({meta['apex_source']})\nmax |flow| {peak:.2f} px", fontsize=6)
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
