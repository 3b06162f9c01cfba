"""OFF-ApexNet: Gan, Liong, Yau, Huang and Tan, "OFF-ApexNet on micro-expression recognition
system", Signal Processing: Image Communication 74 (2019). MEB (github.com/tvaranka/meb) has a
one-stream PyTorch variant (3 x 3 convs, one hidden layer); this file follows the paper.

Input: the onset -> apex optical flow only, u and v, at 28 x 28; the model reads channels 0 and 1
of [u, v, strain] and ignores the strain.

    u (B, 1, 28, 28) ─ conv5x5 (6) ─ ReLU ─ maxpool 2 ─ conv5x5 (16) ─ ReLU ─ maxpool 2 ─┐
    v (B, 1, 28, 28) ─ conv5x5 (6) ─ ReLU ─ maxpool 2 ─ conv5x5 (16) ─ ReLU ─ maxpool 2 ─┴─ concat (B, 32, 7, 7)
    head: flatten 1568 ─ dropout ─ fc 1024 ─ ReLU ─ dropout ─ fc 1024 ─ ReLU ─ fc -> logits

Parameters: 2,664,475 for 3 classes at 28 x 28 (streams 5,144, fc 1,606,656 + 1,049,600 + 3,075),
the published ~2.66M. The motion decoder (aux_head, not in the paper) adds 5k.

Deviations: none in the layers (the paper has no normalisation layer, so nothing keeps running
statistics). Dropout 0.5 before each hidden layer is MEB's rate and placement. The head pools
adaptively to 7 x 7 (identity at 28 x 28), so other input sizes keep the fully connected layers.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import InputSpec, MotionDecoder, ZooModel, check_input_size, register_model

SPEC = InputSpec(28, channels=("u", "v"),
                 note="horizontal and vertical onset->apex optical flow, each resized to 28 x 28 (Gan et al. 2019); "
                      "here scaled by the loader's input_norm (rms over the face)")
GRID = 7      # features per stream: 16 x 7 x 7
HIDDEN = 1024


def flow_stream() -> nn.Sequential:
    """One flow component (B, 1, H, W) -> (B, 16, H/4, W/4); 'same' padding as in the paper."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))


class TwoStreams(nn.Module):
    """u and v, each through its own stream (no weight sharing), concatenated along channels."""

    def __init__(self, make_stream):
        super().__init__()
        self.u, self.v = make_stream(), make_stream()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.u(x[:, 0:1]), self.v(x[:, 1:2])], dim=1)  # the strain channel x[:, 2] is not read


class OffApexNet(ZooModel):
    def __init__(self, num_classes: int, input_size: int = 28, drop: float = 0.5):
        super().__init__()
        self.input_size = input_size
        self.encoder = TwoStreams(flow_stream)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(),
                                  nn.Dropout(drop), nn.Linear(2 * 16 * GRID * GRID, HIDDEN), nn.ReLU(),
                                  nn.Dropout(drop), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, num_classes))
        self.aux_head = MotionDecoder(32, input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, 32, H/4, W/4)


@register_model(input_spec=SPEC)
def offapexnet(num_classes: int, input_size: int = 28, drop: float = 0.5, **kwargs) -> OffApexNet:
    """OFF-ApexNet (Gan et al. 2019): 2,664,475 parameters for 3 classes at 28 x 28 (published ~2.66M)."""
    check_input_size("offapexnet", input_size, 8)
    return OffApexNet(num_classes, input_size, drop, **kwargs)
