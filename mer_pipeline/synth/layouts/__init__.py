"""Synthetic raw layouts: one file per dataset, found by `mer_pipeline.discover`.

To add a dataset: write `layouts/<name>.py` declaring `LAYOUT = <Layout subclass>(name="<name>", ...)`
(see `_base.Layout` for the contract and `casme2.py` for a complete example), next to its adapter
`mer_pipeline/datasets/<name>.py`. Nothing else lists the layouts; `_base.py` is the shared helper.
"""
from __future__ import annotations

from ...discover import discover
from ..errors import SynthError
from ._base import Layout

LAYOUTS: dict[str, Layout] = discover(__name__, "LAYOUT", Layout)
DATASETS: tuple[str, ...] = tuple(sorted(LAYOUTS))


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SynthError(f"unknown dataset {name!r} for synth; known: {', '.join(DATASETS)}") from None
