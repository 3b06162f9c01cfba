"""Dataset adapters: one file per dataset, found by `mer_pipeline.discover`.

An adapter reads a raw tree exactly as users have it after download plus its annotation sheet and
returns canonical `Sample`s (and `Failure`s for rows it must reject). Each module
`datasets/<name>.py` declares `ADAPTER = Adapter(name="<name>", scan=scan, ...)` and its extra
command-line options as `Option` data (the CLI makes click options of them). Adding a dataset is adding
that file, its synthetic layout `mer_pipeline/synth/layouts/<name>.py`, and their tests; nothing
else lists the adapters. Modules starting with `_` (`_common.py`) are shared helpers.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import MerError
from ..sample import ScanResult


@dataclass(frozen=True)
class Option:
    """An extra option of one dataset's command (SMIC's `--subset`), as data.

    `mer_pipeline.cli` turns it into the click option `--<name>` and passes its value to
    `scan(<name>=value)`. `type`: str (then `choices`, compared case-insensitively; the value passed
    is the choice as spelled here), bool (a flag) or Path (an existing folder, e.g. a source tree).
    """

    name: str
    help: str
    type: type = str
    choices: tuple[str, ...] = ()
    default: Any = None
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def recorded(self) -> bool:
        """Whether the value belongs to the shard set's recipe (and so its config hash). A folder says
        where input lives, like RAW, and is left out: the same trees moved elsewhere make the same set."""
        return self.type is not Path


@dataclass(frozen=True)
class Adapter:
    """A dataset reader, as its module declares it (`ADAPTER = Adapter(...)`).

    `scan(raw, annotations, **options)` -> ScanResult, with one keyword per `Option` in `options`.
    A composite (MEGC2019) names the datasets it is made of in `sources`; its command takes one
    folder option per source instead of RAW.
    """

    name: str
    scan: Callable[..., ScanResult]
    description: str
    kind: str = "micro"
    fps: float = 0.0
    options: tuple[Option, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def takes_raw(self) -> bool:
        return not self.sources

    def recorded_options(self, values: dict[str, Any]) -> dict[str, str]:
        """The option values a shard set's recipe records, as text (see `Option.recorded`)."""
        left_out = {o.name for o in self.options if not o.recorded}
        return {k: str(v) for k, v in sorted(values.items()) if k not in left_out}


def available() -> dict[str, Adapter]:
    """Every adapter by name, sorted; the modules are imported on first use, never at package import."""
    return dict(_discovered())


@functools.cache
def _discovered() -> dict[str, Adapter]:
    from ..discover import discover

    return discover(__name__, "ADAPTER", Adapter)


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
