"""Dataset adapters: one file per dataset, each registered by name.

An adapter reads a raw tree exactly as users have it after download plus its annotation sheet and
returns canonical `Sample`s (and `Failure`s for rows it must reject). Adding a dataset is adding
one file here, its synthetic layout in `mer_pipeline.synth`, and their tests.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MerError
from ..sample import ScanResult

# Modules imported on first use of the registry (never at package import time).
_ADAPTER_MODULES = ("casme2", "samm", "smic", "casme3", "mmew", "cas2", "ckplus", "oulu", "megc2019", "videos")


@dataclass(frozen=True)
class Adapter:
    """A registered dataset reader.

    `scan(raw, annotations, **options)` -> ScanResult. `options` are extra click options of the
    dataset's command (e.g. SMIC's `--subset`); `takes_raw` is False for composites (MEGC2019)
    whose command takes one path per source dataset instead of RAW.
    """

    name: str
    scan: Callable[..., ScanResult]
    description: str
    kind: str = "micro"
    fps: float = 0.0
    options: tuple = field(default=())
    takes_raw: bool = True


_REGISTRY: dict[str, Adapter] = {}


def register_dataset(name: str, *, description: str, kind: str = "micro", fps: float = 0.0,
                     options: tuple = (), takes_raw: bool = True):
    """Decorator that registers `scan` as the adapter of dataset `name`."""

    def decorate(scan: Callable[..., ScanResult]) -> Callable[..., ScanResult]:
        _REGISTRY[name] = Adapter(name, scan, description, kind, fps, tuple(options), takes_raw)
        return scan

    return decorate


def _load_all() -> None:
    for module in _ADAPTER_MODULES:
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{module}":
                raise


def available() -> dict[str, Adapter]:
    """All registered adapters by name, in a stable order."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_adapter(name: str) -> Adapter:
    adapters = available()
    if name not in adapters:
        known = ", ".join(adapters)
        raise MerError(f"unknown dataset {name!r}; known datasets: {known}")
    return adapters[name]


def find_annotation(raw: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The annotation file in `raw` (searched two levels deep) whose name matches a pattern.

    Newest-looking name wins when several match (e.g. the 2019 CASME II coding over 2014).
    """
    from ..errors import AnnotationError

    raw = Path(raw)
    found: list[Path] = []
    for pattern in patterns:
        for depth in ("", "*/", "*/*/"):
            found.extend(p for p in raw.glob(depth + pattern) if p.is_file() and not p.name.startswith("~$"))
    if not found:
        raise AnnotationError(
            f"{raw}: no {what} found (looked for {', '.join(patterns)}); "
            "pass the sheet with --annotations FILE"
        )
    return sorted(set(found), key=lambda p: (p.name, str(p)))[-1]
