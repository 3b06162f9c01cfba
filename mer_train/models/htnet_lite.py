"""htnet_lite: an HTNet-style region model, small enough to meta-learn on a CPU.

After Wang, Zhang, Luo and Sankaranarayana, "HTNet for micro-expression recognition",
Neurocomputing (2024), arXiv:2307.14637, public code github.com/wangzhifengharrison/HTNet: a
hierarchical transformer over four facial areas of the flow (left eye, right eye, left lip, right
lip), with attention inside each area and an aggregation across them. The released HTNet has
~140M parameters and, in its released configuration, its blocks attend over a single token each,
so its "attention" is a per-token MLP (issue 15). This is not a port: it keeps the idea (regions
-> per-region transformer -> fused transformer) with real multi-token attention at both levels,
at ~43k parameters.

Input: [u, v, strain] at 48 x 48, faces aligned to stage one's template (mer_pipeline.align), so
the regions are fixed boxes of the aligned face: left eye + brow, right eye + brow, left and right
halves of the mouth, each a square of 1/3 of the side (16 x 16 pixels at 48). With `landmarks`
((68, 2) mean onset landmarks in input pixel coordinates, dlib 68-point order, e.g. the shards'
`landmarks` averaged and scaled to the input size) the boxes are centred on the brows + eyes and
the mouth corners of those points and sized by their inter-ocular distance instead.

    x (B, 3, 48, 48) -> 4 crops (B, 4, 3, 16, 16), flow rescaled to the crop's pixels
      patch embed 4 x 4 -> (B, 4, 16, D) + position          tokens of each region
      level one: 2 blocks, attention among the 16 tokens of each region (weights shared by regions)
      merge 2 x 2 patches -> (B, 4, 4, D) + region/position   forward_features: (B, regions, 4, D)
      level two: 2 blocks, attention among all 16 tokens of the 4 regions (the fusion)
    head: LayerNorm, mean over tokens, dropout, linear -> logits
    aux_head: each token decodes its 8 x 8 patch of (u, v), pasted back into the face at its
      region's box, plus a coarse 6 x 6 field of the whole face from the mean token -> (B, 2, 48, 48)

Parameters: 42,595 for 3 classes (D = 32, 4 heads, MLP 64); the aux_head adds 3.4k. LayerNorm
only (no running statistics); dropout 0.1 in the MLPs and before the classifier.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import InputSpec, ZooModel, check_input_size, register_model

SPEC = InputSpec(48, note="u, v and optical strain at 48 x 48 of stage one's aligned face (HTNet itself crops "
                          "regions of flow images around landmarks); scaled by the loader's input_norm", landmarks=True)
# Region centres (x, y) as fractions of the aligned face (mer_pipeline.align.TEMPLATE: eyes at
# y 0.34, mouth corners at y 0.744, x 0.346 / 0.654); the eye boxes reach up over the brows.
REGIONS = {"left_eye": (0.308, 0.30), "right_eye": (0.692, 0.30), "left_mouth": (0.40, 0.745),
           "right_mouth": (0.60, 0.745)}
SIDE = 1 / 3                  # box side as a fraction of the face (16 px at 48)
IOD = 0.692 - 0.308           # the template's inter-ocular distance, fraction of the face
# dlib 68-point order (0-based): brows 17-21 / 22-26, eyes 36-41 / 42-47, mouth 48-67, corners 48 / 54
LANDMARK_CENTRES = {"left_eye": [*range(17, 22), *range(36, 42)], "right_eye": [*range(22, 27), *range(42, 48)]}
CROP, PATCH = 16, 4           # each region is resampled to CROP x CROP and cut into PATCH x PATCH tokens
DIM, HEADS, MLP = 32, 4, 64
COARSE = 6                    # the aux head's whole-face field, upsampled to the input


def region_boxes(input_size: int, landmarks=None) -> list[tuple[int, int, int]]:
    """(x0, y0, side) in input pixels for each region: template fractions, or centred on `landmarks`."""
    if landmarks is None:
        centres = [(x * input_size, y * input_size) for x, y in REGIONS.values()]
        side = SIDE * input_size
    else:
        points = np.asarray(landmarks, dtype=np.float64)
        if points.shape != (68, 2) or not np.isfinite(points).all():
            from ..errors import ConfigError

            raise ConfigError(f"htnet_lite: landmarks must be a finite (68, 2) array of dlib 68-point (x, y) "
                              f"in input pixels, got shape {points.shape}; pass None to use the template's boxes")
        mouth = points[48:68].mean(0)
        eyes = [points[LANDMARK_CENTRES[name]].mean(0) for name in ("left_eye", "right_eye")]
        lip_corners = [(points[48] + mouth) / 2, (points[54] + mouth) / 2]
        centres = [*eyes, *lip_corners]
        iod = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
        side = SIDE / IOD * iod
    side = int(min(input_size, max(PATCH, round(side))))
    boxes = []
    for cx, cy in centres:
        x0 = int(np.clip(round(cx - side / 2), 0, input_size - side))
        y0 = int(np.clip(round(cy - side / 2), 0, input_size - side))
        boxes.append((x0, y0, side))
    return boxes


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention over the tokens, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp: int, drop: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(drop), nn.Linear(mlp, dim))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, d/h)
        # written out (not scaled_dot_product_attention): double backward under vmap on every device
        weights = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(dim=-1)  # (B, h, N, N)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RegionEncoder(nn.Module):
    """Crops -> region tokens -> level one (within regions) -> merged tokens -> level two (across)."""

    def __init__(self, boxes: list[tuple[int, int, int]], drop: float):
        super().__init__()
        self.boxes = boxes  # plain ints: no buffer, the crop follows any device
        regions, tokens = len(boxes), (CROP // PATCH) ** 2
        self.embed = nn.Conv2d(3, DIM, PATCH, stride=PATCH)
        self.position = nn.Parameter(torch.zeros(regions, tokens, DIM).normal_(std=0.02))
        self.local = nn.Sequential(*[Block(DIM, HEADS, MLP, drop) for _ in range(2)])
        self.merge = nn.Conv2d(DIM, DIM, 2, stride=2)
        self.region_position = nn.Parameter(torch.zeros(regions, tokens // 4, DIM).normal_(std=0.02))
        self.fused = nn.Sequential(*[Block(DIM, HEADS, MLP, drop) for _ in range(2)])

    def crops(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, R, 3, CROP, CROP); u and v rescaled to pixels of the crop."""
        out = []
        for x0, y0, side in self.boxes:
            crop = x[:, :, y0:y0 + side, x0:x0 + side]
            if side != CROP:
                crop = F.interpolate(crop, size=(CROP, CROP), mode="bilinear", align_corners=False)
                crop = torch.cat([crop[:, :2] * (CROP / side), crop[:, 2:]], dim=1)
            out.append(crop)
        return torch.stack(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, regions = x.shape[0], len(self.boxes)
        side = CROP // PATCH
        tokens = self.embed(self.crops(x).flatten(0, 1))                      # (B R, D, 4, 4)
        tokens = tokens.flatten(2).transpose(1, 2).reshape(b, regions, side * side, DIM) + self.position
        tokens = self.local(tokens.flatten(0, 1))                             # (B R, 16, D): within regions
        grid = tokens.transpose(1, 2).reshape(b * regions, DIM, side, side)
        merged = self.merge(grid).flatten(2).transpose(1, 2)                  # (B R, 4, D)
        merged = merged.reshape(b, regions, -1, DIM) + self.region_position   # (B, R, 4, D)
        fused = self.fused(merged.flatten(1, 2))                              # (B, R 4, D): across regions
        return fused.view(b, regions, -1, DIM)                                # (B, R, 4, D)


class RegionHead(nn.Module):
    def __init__(self, num_classes: int, drop: float):
        super().__init__()
        self.norm, self.drop, self.fc = nn.LayerNorm(DIM), nn.Dropout(drop), nn.Linear(DIM, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, R, T, D)
        return self.fc(self.drop(self.norm(tokens).mean(dim=(1, 2))))


class RegionDecoder(nn.Module):
    """g_psi: every token decodes the (u, v) of its patch; patches form each region's field, pasted
    at the region's box; a coarse whole-face field from the mean token fills in the rest."""

    def __init__(self, boxes: list[tuple[int, int, int]], input_size: int):
        super().__init__()
        self.boxes, self.size = boxes, input_size
        self.patch = CROP // 2  # each level-two token covers an 8 x 8 patch of its 16 x 16 crop
        self.local = nn.Linear(DIM, 2 * (self.patch // 2) ** 2)  # decoded at 4 x 4, upsampled to the patch
        self.coarse = nn.Linear(DIM, 2 * COARSE * COARSE)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, R, 4, D) -> (B, 2, H, W)
        b, regions = tokens.shape[:2]
        q = self.patch // 2
        patches = self.local(tokens).view(b, regions, 2, 2, 2, q, q)          # (B, R, ty, tx, 2, q, q)
        fields = patches.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, regions, 2, 2 * q, 2 * q)  # (B, R, 2, 8, 8)
        coarse = self.coarse(tokens.mean(dim=(1, 2))).view(b, 2, COARSE, COARSE)
        field = F.interpolate(coarse, size=(self.size, self.size), mode="bilinear")
        for r, (x0, y0, side) in enumerate(self.boxes):
            local = F.interpolate(fields[:, r], size=(side, side), mode="bilinear")
            field = field + F.pad(local, (x0, self.size - x0 - side, y0, self.size - y0 - side))
        return field


class HTNetLite(ZooModel):
    def __init__(self, num_classes: int, input_size: int = 48, drop: float = 0.1, landmarks=None):
        super().__init__()
        self.input_size = input_size
        self.boxes = region_boxes(input_size, landmarks)
        self.encoder = RegionEncoder(self.boxes, drop)
        self.head = RegionHead(num_classes, drop)
        self.aux_head = RegionDecoder(self.boxes, input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, 4 regions, 4 tokens, D)


@register_model(input_spec=SPEC)
def htnet_lite(num_classes: int, input_size: int = 48, drop: float = 0.1, landmarks=None, **kwargs) -> HTNetLite:
    """HTNet-style region transformer: 42,595 parameters for 3 classes (HTNet as released: ~140M)."""
    check_input_size("htnet_lite", input_size, 16)
    return HTNetLite(num_classes, input_size, drop, landmarks, **kwargs)
