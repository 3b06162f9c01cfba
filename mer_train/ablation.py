"""The ablation table: several methods on the same data, folds and seeds, UF1 and UAR as mean ± std."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import METHODS, TrainConfig
from .data import load_data
from .errors import ConfigError
from .report import write_json
from .loso import cpu_threads, require_runnable, train

log = logging.getLogger("mer_train")


@dataclass
class CompareResult:
    out: Path
    table: str                        # markdown
    runs: dict[str, list[dict]]       # method -> one metrics dict per seed


def compare(config: TrainConfig, methods: Sequence[str] = ("erm", "multitask", "maml", "lightman"),
            seeds: int | Sequence[int] = 3, out: str | Path | None = None, progress: bool = False) -> CompareResult:
    """Run every method of `methods` with `config` (only `method`, `seed` and `out` change) for each
    seed, on data loaded once; write out/compare.md and out/compare.json.

        result = compare(load_config("configs/ci.yaml", {"shards": ["out"]}), seeds=3)
        print(result.table)
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(METHODS)}")
    seeds = list(range(config.seed, config.seed + seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out or config.out or f"runs/compare-{datetime.now():%Y%m%d-%H%M%S}")
    with cpu_threads(config.threads):
        data = load_data(config)
    for method in methods:  # fail before hours of training, not after
        require_runnable(config.replace(method=method), data)

    runs: dict[str, list[dict]] = {}
    for method in methods:
        for seed in seeds:
            run_config = config.replace(method=method, seed=seed, out=str(out / f"{method}-seed{seed}"))
            runs.setdefault(method, []).append(train(run_config, data=data, progress=progress).metrics)
    table = markdown_table(runs, seeds, data.class_set)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table, encoding="utf-8")
    write_json(out / "compare.json", {"seeds": seeds, "class_set": data.class_set,
                                      "runs": {m: [_summary(r) for r in rs] for m, rs in runs.items()}})
    return CompareResult(out, table, runs)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"seed": metrics["seed"], "uf1": metrics["overall"]["uf1"], "uar": metrics["overall"]["uar"],
            "per_dataset": {d: {"uf1": m["uf1"], "uar": m["uar"]} for d, m in metrics["per_dataset"].items()}}


def mean_std(values: Sequence[float]) -> str:
    """`0.712 ± 0.031`: mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {std:.3f}"


def markdown_table(runs: dict[str, list[dict]], seeds: Sequence[int], class_set: str) -> str:
    """Overall UF1 and UAR per method, then per dataset when there are several (a composite)."""
    datasets = sorted({d for metrics in runs.values() for m in metrics for d in m["per_dataset"]})
    parts = [("overall", lambda m: m["overall"])]
    if len(datasets) > 1:
        parts += [(d, lambda m, d=d: m["per_dataset"][d]) for d in datasets]
    header = " | ".join(f"{name} UF1 | {name} UAR" if name != "overall" else "UF1 | UAR" for name, _ in parts)
    lines = [f"LOSO, {class_set}, predictions pooled over folds (MEGC UF1/UAR); mean ± std over seeds "
             f"{', '.join(map(str, seeds))}", "", f"| method | {header} |", "|---" * (1 + 2 * len(parts)) + "|"]
    for method, metrics in runs.items():
        cells = [f"{mean_std([pick(m)['uf1'] for m in metrics])} | {mean_std([pick(m)['uar'] for m in metrics])}"
                 for _, pick in parts]
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
