"""SSSNet, the shallow single-stream network of MEB: Varanka, Li, Peng and Zhao, "Data Leakage and
Evaluation Issues in Micro-Expression Analysis", IEEE Transactions on Affective Computing (2023).
Public code: github.com/tvaranka/meb (`meb/models/me_networks.py`).

Input: [u, v, strain] at 64 x 64 (MEB feeds three optical-flow channels at 64 x 64).

    x (B, 3, 64, 64) ─ conv5x5 (32) ─ ReLU ─ maxpool 3/3 ─ norm ─ dropout  -> (B, 32, 20, 20)
                     ─ conv3x3 (64) ─ ReLU ─ maxpool 2   ─ norm ─ dropout  -> (B, 64, 9, 9)
    head: flatten 5184 ─ fc 256 ─ ReLU ─ dropout ─ fc -> logits

Parameters: 1,349,251 for 3 classes at 64 x 64 (1,349,765 for 5), the published ~1.35M. The
motion decoder (aux_head, not in the paper) adds 10k.

Deviations: GroupNorm (4 groups of channels, per-sample statistics) replaces BatchNorm, so that
the functional inner loop has no running statistics (same affine parameters). Dropout as MEB:
channel-wise (`Dropout2d`) on the feature maps, element-wise before the classifier; both draw
their masks per task under `torch.func.vmap(randomness="different")`. The head pools adaptively to
9 x 9 (identity at 64 x 64), so other input sizes keep the fully connected layer. Valid
convolutions: at least 16 x 16.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import InputSpec, MotionDecoder, ZooModel, check_input_size, register_model

SPEC = InputSpec(64, note="three optical-flow channels at 64 x 64 (MEB, Varanka et al. 2023); here u, v and "
                          "optical strain, scaled by the loader's input_norm (rms over the face)")
WIDTHS = (32, 64, 256)  # conv1, conv2 filters; hidden units
GRID = 9


class SSSNet(ZooModel):
    def __init__(self, num_classes: int, input_size: int = 64, drop: float = 0.5):
        super().__init__()
        self.input_size = input_size
        c1, c2, hidden = WIDTHS
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 5), nn.ReLU(), nn.MaxPool2d(3, stride=3), nn.GroupNorm(4, c1), nn.Dropout2d(drop),
            nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.GroupNorm(4, c2), nn.Dropout2d(drop))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(), nn.Linear(c2 * GRID * GRID, hidden),
                                  nn.ReLU(), nn.Dropout(drop), nn.Linear(hidden, num_classes))
        self.aux_head = MotionDecoder(c2, input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, 64, 9, 9) at 64 x 64


@register_model(input_spec=SPEC)
def sssnet(num_classes: int, input_size: int = 64, drop: float = 0.5, **kwargs) -> SSSNet:
    """SSSNet (MEB): 1,349,251 parameters for 3 classes at 64 x 64 (published ~1.35M); dropout 0.5."""
    check_input_size("sssnet", input_size, 16)
    return SSSNet(num_classes, input_size, drop, **kwargs)
