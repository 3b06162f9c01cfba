"""Dual-Inception: Zhou, Mao and Xue, "Dual-Inception Network for Cross-Database Micro-Expression
Recognition", FG 2019 (MEGC 2019). Public code: github.com/xly135846/MEGC2019 (Keras).

Input: the onset -> apex optical flow, u and v, at 28 x 28, one stream per component; the model
reads channels 0 and 1 of [u, v, strain] and ignores the strain.

    inception(c): 1x1 (c) | 1x1 (c) -> 3x3 (c) | 1x1 (c) -> 5x5 (c) | maxpool 3/1 -> 1x1 (c), each ReLU, concat 4c
    stream: inception(6) -> maxpool 2 -> inception(16) -> maxpool 2        (B, 1, 28, 28) -> (B, 64, 7, 7)
    u, v streams -> concat (B, 128, 7, 7); head: flatten 6272 -> fc 1024 -> ReLU -> fc -> logits

Parameters: 6,449,867 for 3 classes at 28 x 28 (streams 23,240, fc 6,423,552 + 3,075), the
published ~6.45M (6,449,963 in the public code, whose streams each take a 3-channel image of one
flow component: 96 more weights in the first 1 x 1 convolutions). The motion decoder (aux_head, not
in the paper) adds 19k.

Deviations: none in the layers (no normalisation in the original either). The head pools
adaptively to 7 x 7 (identity at 28 x 28), so other input sizes keep the fully connected layers.
No dropout, as in the public code (`drop` adds one before the hidden layer).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import InputSpec, MotionDecoder, ZooModel, check_input_size, register_model
from .offapexnet import TwoStreams

SPEC = InputSpec(28, channels=("u", "v"),
                 note="horizontal and vertical onset->apex optical flow, each resized to 28 x 28 (Zhou et al. 2019); "
                      "here scaled by the loader's input_norm (rms over the face)")
GRID = 7
HIDDEN = 1024


def conv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU())


class Inception(nn.Module):
    """Four parallel branches of `width` filters each, concatenated: (B, cin, H, W) -> (B, 4 width, H, W)."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.branches = nn.ModuleList([
            conv(cin, width, 1),
            nn.Sequential(conv(cin, width, 1), conv(width, width, 3)),
            nn.Sequential(conv(cin, width, 1), conv(width, width, 5)),
            nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv(cin, width, 1)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def inception_stream() -> nn.Sequential:
    return nn.Sequential(Inception(1, 6), nn.MaxPool2d(2), Inception(24, 16), nn.MaxPool2d(2))


class DualInception(ZooModel):
    def __init__(self, num_classes: int, input_size: int = 28, drop: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.encoder = TwoStreams(inception_stream)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(), nn.Dropout(drop),
                                  nn.Linear(2 * 64 * GRID * GRID, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, num_classes))
        self.aux_head = MotionDecoder(128, input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, 128, H/4, W/4)


@register_model(input_spec=SPEC)
def dual_inception(num_classes: int, input_size: int = 28, drop: float = 0.0, **kwargs) -> DualInception:
    """Dual-Inception (Zhou et al. 2019): 6,449,867 parameters for 3 classes at 28 x 28 (published ~6.45M)."""
    check_input_size("dual_inception", input_size, 8)
    return DualInception(num_classes, input_size, drop, **kwargs)
