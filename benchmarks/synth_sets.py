"""Synthetic shard sets for the benchmarks, made with the `mer-prep` CLI of this environment."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path


def synth_set(dataset: str, raw: Path, out: Path, synth_options: tuple = (), prep_options: tuple = ()) -> Path:
    """The shard set `out` of `dataset`, prepared from the synthetic raw tree `raw`. Each step is
    skipped when its result is complete (a raw tree without synth_truth.json is made again)."""
    if (out / "manifest.json").is_file():
        return out
    mer_prep = Path(sys.executable).parent / "mer-prep"
    if not (raw / "synth_truth.json").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        _command([mer_prep, "synth", dataset, raw, *synth_options])
    _command([mer_prep, dataset, raw, out, *prep_options])
    return out


def _command(args: list) -> None:
    args = [str(a) for a in args]
    start = time.perf_counter()
    subprocess.run(args, check=True)
    logging.info("%s: %.0f s", " ".join(args), time.perf_counter() - start)
