"""Registry of synthetic raw layouts: one file per dataset, one line per dataset below.

To add a dataset: write `layouts/<name>.py` defining `LAYOUT = <Layout subclass>(name=..., ...)`
(see `base.Layout` for the contract and `casme2.py` for a complete example) and add it to `_MODULES`.
"""
from __future__ import annotations

from importlib import import_module

from ..errors import SynthError
from .base import Layout

_MODULES = (
    "casme2",
    "samm",
    "smic",
    "casme3",
    "ckplus",
    "mmew",
    "cas2",
    "oulu",
    "videos",
)


def _load() -> dict[str, Layout]:
    layouts = {}
    for module in _MODULES:
        layout = import_module(f"{__name__}.{module}").LAYOUT
        layouts[layout.name] = layout
    return layouts


LAYOUTS: dict[str, Layout] = _load()
DATASETS: tuple[str, ...] = tuple(sorted(LAYOUTS))


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SynthError(f"unknown dataset {name!r} for synth; known: {', '.join(DATASETS)}") from None
