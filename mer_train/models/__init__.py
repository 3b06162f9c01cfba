"""The model registry: one file per model family, one contract.

Every model takes `(B, 3, H, W)` inputs ([u, v, strain]) and has
- `forward_features(x)` -> encoder features f_theta(x), `(B, C, h, w)`;
- `forward_head(features)` -> emotion logits h_phi, `(B, num_classes)`;
- `forward_aux(features)` -> decoded motion field g_psi, `(B, 2, H, W)`;
- `forward(x, aux=False)` -> logits, or `(logits, field)` with `aux=True`;
and keeps its parts in `encoder`, `head` and `aux_head`. No layer keeps running statistics
(GroupNorm, no BatchNorm), so a functional call with other weights is exactly the model with those
weights: the meta-learning inner loop relies on it.

    model = create_model("slimcnn", num_classes=5, input_size=64)
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model constructor under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def create_model(name: str, *, num_classes: int, input_size: int = 64, **kwargs) -> nn.Module:
    if name not in _MODELS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes, input_size=input_size, **kwargs)


def list_models() -> list[str]:
    return sorted(_MODELS)


from . import slimcnn  # noqa: E402,F401  (registers its models)
