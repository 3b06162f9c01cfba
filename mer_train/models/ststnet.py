"""STSTNet: the shallow triple-stream CNN of Liong, See, Wong and Phan, "Shallow Triple Stream
Three-dimensional CNN (STSTNet) for Micro-expression Recognition", FG 2019 (MEGC 2019). Public
code: github.com/christy1206/STSTNet (Keras); MEB (github.com/tvaranka/meb) has a PyTorch port.

Input: [u, v, strain] (onset -> apex TV-L1 flow and optical strain) at 28 x 28, all three
channels in each stream ("three-dimensional" = the three input channels).

    x (B, 3, 28, 28) ─┬─ conv3x3 (3 filters) ─ ReLU ─ norm ─ maxpool 3/3 ─ dropout ─┐
                      ├─ conv3x3 (5 filters) ─ ReLU ─ norm ─ maxpool 3/3 ─ dropout ─┼─ concat (B, 16, 10, 10)
                      └─ conv3x3 (8 filters) ─ ReLU ─ norm ─ maxpool 3/3 ─ dropout ─┘
    head: avgpool 2 -> (B, 16, 5, 5) -> flatten 400 -> linear -> logits

Parameters: 1,683 for 3 classes at 28 x 28 (convs 448, norms 32, linear 1,203), the published
~1.7k. The motion decoder (aux_head, LightmanNet's auxiliary branch, not in the paper) adds 1.3k.

Deviations: GroupNorm with one group per stream (per-sample statistics over the stream's
channels and pixels) replaces BatchNorm, so that the functional inner loop has no running
statistics; same number of affine parameters. The average pool is adaptive to a 5 x 5 grid (the
paper's 2 x 2 pool at 28 x 28), so other input sizes keep the 400-wide linear layer. Dropout 0.5
after each stream, as in MEB's port.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import InputSpec, MotionDecoder, ZooModel, check_input_size, register_model

SPEC = InputSpec(28, note="onset->apex TV-L1 flow (u, v) and optical strain, each resized to 28 x 28 (Liong et "
                          "al. 2019); here scaled by the loader's input_norm (rms over the face)")
STREAMS = (3, 5, 8)  # filters per stream
GRID = 5             # the head pools to GRID x GRID cells: 16 x 5 x 5 = 400 features


class Stream(nn.Sequential):
    def __init__(self, filters: int, drop: float):
        # padding 2 as the public code: 28 -> 30 -> maxpool (3, stride 3, padding 1) -> 10
        super().__init__(nn.Conv2d(3, filters, 3, padding=2), nn.ReLU(), nn.GroupNorm(1, filters),
                         nn.MaxPool2d(3, stride=3, padding=1), nn.Dropout(drop))


class Streams(nn.Module):
    def __init__(self, drop: float):
        super().__init__()
        self.streams = nn.ModuleList(Stream(filters, drop) for filters in STREAMS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([stream(x) for stream in self.streams], dim=1)  # (B, 16, h, w)


class STSTNet(ZooModel):
    def __init__(self, num_classes: int, input_size: int = 28, drop: float = 0.5):
        super().__init__()
        self.input_size = input_size
        self.encoder = Streams(drop)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(), nn.Linear(sum(STREAMS) * GRID * GRID,
                                                                                     num_classes))
        self.aux_head = MotionDecoder(sum(STREAMS), input_size, width=8)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, 16, ~H/3, ~W/3)


@register_model(input_spec=SPEC)
def ststnet(num_classes: int, input_size: int = 28, drop: float = 0.5, **kwargs) -> STSTNet:
    """STSTNet (Liong et al. 2019): 1,683 parameters for 3 classes at 28 x 28 (published ~1.7k); dropout 0.5."""
    check_input_size("ststnet", input_size, 8)
    return STSTNet(num_classes, input_size, drop, **kwargs)
