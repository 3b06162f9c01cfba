"""The ablation table: several methods on the same data, folds and seeds, UF1 and UAR as mean ± std,
one table per protocol (inductive, transductive), never the two in one table."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import METHODS, VARIANTS, TrainConfig
from .errors import ConfigError
from .report import write_json
from .loso import train_runs

log = logging.getLogger("mer_train")


@dataclass
class CompareResult:
    """A finished comparison: its directory, the markdown table (compare.md) and every run's metrics."""

    out: Path
    table: str                        # markdown
    runs: dict[str, list[dict]]       # method -> one metrics dict per seed


def compare(config: TrainConfig, methods: Sequence[str] = ("erm", "multitask", "maml", "lightman"),
            seeds: int | Sequence[int] = 3, out: str | Path | None = None, progress: bool = False, *,
            workers: int | None = None, scheduler: str | None = None, fold_batch: int = 1) -> CompareResult:
    """Run every method of `methods` with `config` (only `method`, `seed` and `out` change; a named
    variant of `mer_train.config.VARIANTS`, e.g. `erm+tent`, also sets its keys) for each seed;
    write out/compare.md and out/compare.json. All folds of all runs are tasks of one
    scheduler (see `mer_train.train`), under one progress bar; `fold_batch` K trains K folds of a run at once.

        result = compare(load_config("configs/ci.yaml", {"shards": ["out"]}), seeds=3, workers=2)
        print(result.table)
    """
    unknown = [m for m in methods if m not in METHODS and m not in VARIANTS]
    if unknown or not methods:
        raise ConfigError(f"methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(METHODS)} or the variants {', '.join(VARIANTS)}", param="methods")
    seeds = list(range(config.seed, config.seed + seeds)) if isinstance(seeds, int) else list(seeds)
    out = Path(out or config.out or f"runs/compare-{datetime.now():%Y%m%d-%H%M%S}")
    variants = {m: VARIANTS.get(m, (m, {})) for m in methods}
    configs = [config.replace(method=variants[name][0], **variants[name][1], seed=seed,
                              out=str(out / f"{name}-seed{seed}"))
               for name in methods for seed in seeds]
    results = train_runs(configs, progress=progress, workers=workers, scheduler=scheduler, fold_batch=fold_batch,
                         desc=f"compare: {len(methods)} method(s) x {len(seeds)} seed(s)")
    runs: dict[str, list[dict]] = {}
    for name, result in zip([n for n in methods for _ in seeds], results):
        runs.setdefault(name, []).append(result.metrics)
    class_set = results[0].metrics["class_set"]
    table = comparison_tables(runs, seeds, class_set)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table, encoding="utf-8")
    write_json(out / "compare.json", {"seeds": seeds, "class_set": class_set,
                                      "runs": {m: [_summary(r) for r in rs] for m, rs in runs.items()}})
    return CompareResult(out, table, runs)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"seed": metrics["seed"], "protocol": metrics.get("protocol", "inductive"), "uf1": metrics["overall"]["uf1"], "uar": metrics["overall"]["uar"],
            "per_dataset": {d: {"uf1": m["uf1"], "uar": m["uar"]} for d, m in metrics["per_dataset"].items()}}


def mean_std(values: Sequence[float]) -> str:
    """`0.712 ± 0.031`: mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {std:.3f}"


PROTOCOLS = {
    "inductive": "the test subject is never touched",
    "transductive": "each model adapts on its test subject's unlabelled inputs before predicting",
}


def comparison_tables(runs: dict[str, list[dict]], seeds: Sequence[int], class_set: str) -> str:
    """One table per protocol, each titled with it; with both, a line first that says the two are
    not comparable (a transductive model has seen its test subject's inputs)."""
    by_protocol: dict[str, dict[str, list[dict]]] = {}
    for method, metrics in runs.items():
        for m in metrics:
            by_protocol.setdefault(m.get("protocol", "inductive"), {}).setdefault(method, []).append(m)
    tables = [markdown_table(group, seeds, class_set, protocol) for protocol, group in sorted(by_protocol.items())]
    if len(tables) == 1:
        return tables[0]
    names = " and ".join(sorted(by_protocol))
    warning = (f"Not comparable: the {names} tables below use different protocols (a transductive model adapts on "
               "the test subject's unlabelled inputs, an inductive one never sees them); compare methods within "
               "one table only.\n")
    return "\n".join([warning, *tables])


def markdown_table(runs: dict[str, list[dict]], seeds: Sequence[int], class_set: str,
                   protocol: str = "inductive") -> str:
    """Overall UF1 and UAR per method, then per dataset when there are several (a composite); the
    title names the protocol (all `runs` must share it: see `comparison_tables`)."""
    datasets = sorted({d for metrics in runs.values() for m in metrics for d in m["per_dataset"]})
    parts = [("overall", lambda m: m["overall"])]
    if len(datasets) > 1:
        parts += [(d, lambda m, d=d: m["per_dataset"][d]) for d in datasets]
    header = " | ".join(f"{name} UF1 | {name} UAR" if name != "overall" else "UF1 | UAR" for name, _ in parts)
    about = PROTOCOLS.get(protocol, "")
    lines = [f"{protocol.capitalize()} protocol{f' ({about})' if about else ''}: LOSO, {class_set}, predictions "
             f"pooled over folds (MEGC UF1/UAR); mean ± std over seeds {', '.join(map(str, seeds))}", "",
             f"| method | {header} |", "|---" * (1 + 2 * len(parts)) + "|"]
    for method, metrics in runs.items():
        cells = [f"{mean_std([pick(m)['uf1'] for m in metrics])} | {mean_std([pick(m)['uar'] for m in metrics])}"
                 for _, pick in parts]
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


__all__ = ["compare", "CompareResult"]
