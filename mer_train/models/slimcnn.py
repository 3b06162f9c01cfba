"""SlimCNN: a small convolutional encoder over onset->apex motion, with the two LightmanNet heads.

Faces are aligned to one template, so *where* the face moves is the signal: the classifier keeps a
coarse 4 x 4 grid of the encoder features instead of a global average. The motion decoder
upsamples the features back to a 2-channel field at the input size.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model

GRID = 4  # the classifier sees features pooled to GRID x GRID cells


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(4, cout), cout), nn.SiLU())


class SlimCNN(nn.Module):
    def __init__(self, num_classes: int, input_size: int = 64, in_chans: int = 3,
                 widths: tuple[int, ...] = (16, 32, 64), drop: float = 0.0):
        super().__init__()
        self.input_size = input_size
        # f_theta: a stride-2 stem, then one stride-2 stage per width: input_size / 2^(1+len(widths))
        layers = [conv_block(in_chans, widths[0], stride=2)]
        for cin, cout in zip((widths[0], *widths), widths):
            layers += [conv_block(cin, cout, stride=2), conv_block(cout, cout)]
        self.encoder = nn.Sequential(*layers)
        # h_phi: emotion classifier on a coarse spatial grid
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten(), nn.Dropout(drop),
                                  nn.Linear(widths[-1] * GRID * GRID, num_classes))
        # g_psi: motion decoder (u, v), decoded at twice the feature resolution, then resized
        self.aux_head = nn.Sequential(conv_block(widths[-1], widths[0]), nn.Upsample(scale_factor=2, mode="bilinear"),
                                      nn.Conv2d(widths[0], 2, 3, 1, 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, H, W) -> (B, C, h, w)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, num_classes)

    def forward_aux(self, features: torch.Tensor) -> torch.Tensor:
        field = self.aux_head(features)  # (B, 2, 2h, 2w)
        return F.interpolate(field, size=(self.input_size, self.input_size), mode="bilinear")  # (B, 2, H, W)

    def forward(self, x: torch.Tensor, aux: bool = False):
        features = self.forward_features(x)
        logits = self.forward_head(features)
        return (logits, self.forward_aux(features)) if aux else logits


@register_model
def slimcnn(num_classes: int, input_size: int = 64, **kwargs) -> SlimCNN:
    """Default: widths 16-32-64, about 90k parameters (5 classes)."""
    return SlimCNN(num_classes, input_size, widths=(16, 32, 64), **kwargs)


@register_model
def slimcnn_tiny(num_classes: int, input_size: int = 32, **kwargs) -> SlimCNN:
    """For CI and try-outs on two CPU cores, at input_size 32: widths 16-32 (two stages), about 27k parameters."""
    return SlimCNN(num_classes, input_size, widths=(16, 32), **kwargs)


@register_model
def slimcnn_wide(num_classes: int, input_size: int = 64, **kwargs) -> SlimCNN:
    """Widths 32-64-128, about 345k parameters, for a GPU."""
    return SlimCNN(num_classes, input_size, widths=(32, 64, 128), **kwargs)
