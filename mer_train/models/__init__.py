"""The model registry: one file per model family, one contract.

Every model takes `(B, 3, H, W)` inputs ([u, v, strain]) and has
- `forward_features(x)` -> encoder features f_theta(x), `(B, C, h, w)` for the convolutional
  families, region tokens for `htnet_lite`;
- `forward_head(features)` -> emotion logits h_phi, `(B, num_classes)`;
- `forward_aux(features)` -> decoded motion field g_psi, `(B, 2, H, W)`;
- `forward(x, aux=False)` -> logits, or `(logits, field)` with `aux=True`;
and keeps its parts in `encoder`, `head` and `aux_head`. No layer keeps running statistics
(GroupNorm, no BatchNorm), so a functional call with other weights is exactly the model with those
weights: the meta-learning inner loop relies on it. Dropout (`nn.Dropout`, `nn.Dropout2d`) draws its
masks inside `torch.func.functional_call`, and per task inside `torch.func.vmap(randomness="different")`.

Each model declares its input with an `InputSpec` (side, the channels it reads, and how its paper
prepared them). A model always receives all three channels and selects the ones it reads itself,
so a data loader only has to resize `[u, v, strain]` to `get_input_spec(name).size` (and, for a
spec with `landmarks=True`, pass the mean onset landmarks at that size to `create_model`).

    model = create_model("slimcnn", num_classes=5, input_size=64)
    model = create_model("ststnet", num_classes=3)      # input_size from its spec: 28
    get_input_spec("offapexnet")                        # InputSpec(size=28, channels=('u', 'v'), ...)

The families and their papers: slimcnn (ours), ststnet, offapexnet, dual_inception, sssnet,
htnet_lite; docs/models.md compares them under leave-one-subject-out.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNELS = ("u", "v", "strain")  # the order of the input channels, as the data loader builds them


@dataclass(frozen=True)
class InputSpec:
    """The input a model was designed for: `size` x `size` pixels, the `channels` it reads (a
    subset of CHANNELS, selected by the model itself), `note`: how its paper prepared them, and
    `landmarks`: whether its constructor takes `landmarks=` ((68, 2) mean onset landmarks in input
    pixels, dlib 68-point order) to place its regions."""

    size: int
    channels: tuple[str, ...] = CHANNELS
    note: str = ""
    landmarks: bool = False

    def __post_init__(self):
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels:
            raise ValueError(f"InputSpec channels {self.channels!r}: choose from {', '.join(CHANNELS)}")

    @property
    def channel_index(self) -> list[int]:
        """Indices of `channels` in the (B, 3, H, W) input."""
        return [CHANNELS.index(c) for c in self.channels]


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_SPECS: dict[str, InputSpec] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, input_spec: InputSpec | None = None):
    """Decorator: register a model constructor under its function name, with its input spec.

        @register_model(input_spec=InputSpec(28, note="..."))
        def my_model(num_classes, input_size=28, **kwargs): ...

    Plain `@register_model` also works; the spec's size is then the constructor's default input_size.
    """
    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[fn.__name__] = fn
        _SPECS[fn.__name__] = input_spec or InputSpec(_default_size(fn))
        return fn

    return register(fn) if fn is not None else register


def _default_size(fn: Callable) -> int:
    default = inspect.signature(fn).parameters.get("input_size")
    return default.default if default is not None and isinstance(default.default, int) else 64


def _check_name(name: str) -> None:
    if name not in _MODELS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")


def create_model(name: str, *, num_classes: int, input_size: int | None = None, **kwargs) -> nn.Module:
    """The model `name` for `num_classes` classes at `input_size` (None: its spec's size). Extra
    keyword arguments go to the family's constructor (e.g. `drop`, or `landmarks` for htnet_lite)."""
    _check_name(name)
    size = get_input_spec(name).size if input_size is None else input_size
    return _MODELS[name](num_classes=num_classes, input_size=size, **kwargs)


def get_input_spec(name: str) -> InputSpec:
    """The InputSpec the model `name` was registered with."""
    _check_name(name)
    return _SPECS[name]


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def count_parameters(model: nn.Module, parts: tuple[str, ...] = ("encoder", "head")) -> int:
    """Parameters of `parts` (default: the classifier, encoder + head, as papers count them)."""
    return sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] in parts)


def check_input_size(name: str, input_size: int, minimum: int) -> None:
    if input_size < minimum:
        from ..errors import ConfigError

        raise ConfigError(f"{name}: input_size = {input_size} is too small for its layers; use at least "
                          f"{minimum} (its paper used {get_input_spec(name).size})")


# ----------------------------------------------------------------------------------------------
# parts shared by the families


class MotionDecoder(nn.Module):
    """g_psi for a convolutional encoder: (B, C, h, w) features -> (B, 2, size, size) motion field,
    decoded at twice the feature resolution, then resized to the model's input (as in slimcnn)."""

    def __init__(self, in_chans: int, size: int, width: int = 16):
        super().__init__()
        self.size = size
        self.layers = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1), nn.GroupNorm(min(4, width), width), nn.SiLU(),
                                    nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(width, 2, 3, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        field = self.layers(features)  # (B, 2, 2h, 2w)
        return F.interpolate(field, size=(self.size, self.size), mode="bilinear")  # (B, 2, H, W)


class ZooModel(nn.Module):
    """The shared anatomy: subclasses build `encoder`, `head`, `aux_head` and `forward_features`."""

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, num_classes)

    def forward_aux(self, features: torch.Tensor) -> torch.Tensor:
        return self.aux_head(features)  # (B, 2, H, W)

    def forward(self, x: torch.Tensor, aux: bool = False):
        features = self.forward_features(x)
        logits = self.forward_head(features)
        return (logits, self.forward_aux(features)) if aux else logits


from . import dual_inception, htnet_lite, offapexnet, slimcnn, sssnet, ststnet  # noqa: E402,F401  (register)


__all__ = ["register_model", "create_model", "get_input_spec", "list_models", "count_parameters", "InputSpec", "CHANNELS"]
