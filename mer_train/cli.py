"""mer-train: the command line, a thin layer over `mer_train.train` and `mer_train.compare`.

`mer-train --shards OUT ...` is short for `mer-train train --shards OUT ...`. Flags override the
config file; `--set KEY=VALUE` overrides any other config field.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Any

import click

from .config import CLASS_SETS, DEVICES, METHODS, VARIANTS, load_config, parse_assignment
from .distributed import DEFAULT_SCHEDULER, LOCAL, SYNCHRONOUS
from mer_pipeline.errors import cli_errors


class DefaultGroup(click.Group):
    """A group whose first argument, when it is no command, starts the `train` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        lead = 0  # the group's own -v / -vv come first: `mer-train -v --shards OUT`
        while lead < len(args) and (args[lead] == "--verbose" or re.fullmatch(r"-v+", args[lead])):
            lead += 1
        rest = args[lead:]
        if rest and rest[0] not in self.commands and rest[0] not in ("--help", "-h", "--version"):
            args = [*args[:lead], "train", *rest]
        return super().parse_args(ctx, args)


def run_options(fn):
    """Options shared by `train` and `compare`: data, config and device."""
    options = [
        click.option("--shards", multiple=True, metavar="DIR",
                     help="Shard set from mer-prep, or a folder of them (macro sets in it feed the auxiliary "
                          "branch). Repeat for a composite."),
        click.option("--macro-shards", multiple=True, metavar="DIR",
                     help="Macro-expression shard set(s), e.g. from `mer-prep ckplus RAW OUT`."),
        click.option("--classes", type=click.Choice(CLASS_SETS),
                     help="Class set [default: inferred from the datasets; several datasets: megc2019-3]."),
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help="YAML config (configs/*.yaml) [default: the built-in lightman defaults]."),
        click.option("--model", help="A registered model (`mer-train list`); its own input size unless --set "
                                    "input_size=N [default: slimcnn, or the config's]."),
        click.option("--device", type=click.Choice(DEVICES), help="auto takes CUDA (bf16) when present [default: auto]."),
        click.option("--seed", type=int, help="Seed of weights, batches and tasks [default: 0]."),
        click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: runs/<method>-<time>]."),
        click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field, e.g. --set steps=100 --set first_order=true."),
        click.option("--workers", type=click.IntRange(1, 512),
                     help="Worker processes of the local Dask cluster that trains the folds, one torch thread "
                          "each [default: all cores, at most one per fold]."),
        click.option("--scheduler", metavar="local|ADDRESS|synchronous",
                     help="Where the folds train: local (a local Dask cluster of --workers processes), ADDRESS of "
                          "an existing dask.distributed cluster (tcp://host:8786; --shards and --out on storage "
                          "every worker sees), or synchronous (in this process, one fold after another) "
                          f"[default: {LOCAL}]."),
        click.option("--fold-batch", type=click.IntRange(1, 4096), metavar="K",
                     help="Train K folds of a run at once on one device, their weights stacked and vmapped "
                          "(torch.func): predictions equal to one fold at a time within float tolerance; models "
                          "with dropout are refused [default: 1, one fold at a time]."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars; warnings only."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), fn)


def _config(config_path: str | None, assignments: tuple[str, ...], model: str | None = None, **flags: Any):
    overrides = dict(parse_assignment(a) for a in assignments)
    overrides |= {k: list(v) if isinstance(v, tuple) else v for k, v in flags.items() if v not in (None, ())}
    if model:  # --model M takes M's own input size (docs/models.md) unless --set input_size=N says otherwise
        from .models import get_input_spec

        overrides = {"model": model, "input_size": get_input_spec(model).size, **overrides}
    return load_config(config_path, overrides)


def _logging(quiet: bool, workers: int | None = None, scheduler: str | None = None) -> None:
    verbose = click.get_current_context().find_root().params.get("verbose", 0)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    if workers is not None or scheduler not in (None, SYNCHRONOUS) or DEFAULT_SCHEDULER != SYNCHRONOUS:
        from .distributed import quiet_dask

        quiet_dask()


@click.group(cls=DefaultGroup)
@click.option("-v", "--verbose", count=True, help="Debug log output, and the traceback of an error.")
@click.version_option(package_name="mer-toolkit")
def main(verbose) -> None:
    """mer-train: LightmanNet and baselines on mer-prep shards, with leave-one-subject-out.

    `mer-train --shards OUT ...` is short for `mer-train train --shards OUT ...`.

    Example:

    \b
        mer-train --shards data/shards --config configs/lightman.yaml
    """


@main.command()
@click.option("--method", type=click.Choice(METHODS), help="Method [default: lightman, or the config's].")
@run_options
@cli_errors
def train(method, shards, macro_shards, classes, config_path, model, device, seed, out, assignments, workers, scheduler,
          fold_batch, quiet) -> None:
    """Train and evaluate one method with LOSO; write the run directory.

    Micro-expression shard sets are trained and evaluated (one fold per subject); macro-expression
    sets give the auxiliary branch its targets (lightman, multitask). Each fold is one task: --workers
    N on a local Dask cluster, --scheduler ADDRESS on an existing one; same predictions either way.
    --fold-batch K trains K folds together per task (on a GPU: many small models as one batch).

    Example:

    \b
        mer-train --shards data/shards/casme2 --macro-shards data/shards/ckplus --config configs/ci.yaml --workers 2
    """
    from .loso import train as run

    _logging(quiet, workers, scheduler)
    config = _config(config_path, assignments, method=method, shards=shards, macro_shards=macro_shards,
                     classes=classes, model=model, device=device, seed=seed, out=out)
    result = run(config, progress=not quiet, workers=workers, scheduler=scheduler, fold_batch=fold_batch or 1)
    overall = result.metrics["overall"]
    click.echo(f"{result.config.method} on {result.metrics['class_set']}, {len(result.metrics['folds'])} LOSO folds, "
               f"{overall['n']} samples: UF1 {overall['uf1']:.3f}, UAR {overall['uar']:.3f}, "
               f"accuracy {overall['accuracy']:.3f}")
    if len(result.metrics["per_dataset"]) > 1:
        for dataset, metrics in result.metrics["per_dataset"].items():
            click.echo(f"  {dataset}: UF1 {metrics['uf1']:.3f}, UAR {metrics['uar']:.3f} ({metrics['n']} samples)")
    click.echo(f"Run directory: {result.out}")


@main.command()
@click.option("--methods", default="erm,multitask,maml,lightman", show_default=True,
              help="Comma-separated methods or named variants to compare (transductive: "
                   "erm+subject-norm,erm+tent,multitask+ttt,lightman+tta; `mer-train list` shows all).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of seeds (--seed, --seed + 1, ...).")
@run_options
@cli_errors
def compare(methods, seeds, shards, macro_shards, classes, config_path, model, device, seed, out, assignments, workers,
            scheduler, fold_batch, quiet) -> None:
    """Run several methods on the same folds and seeds; write a markdown table of UF1 and UAR.

    Every run uses the same config except its method and seed; the table (mean ± std over seeds,
    one per protocol) goes to OUT/compare.md and to stdout, each run to OUT/<method>-seed<N>/. The
    folds of all runs are tasks of one scheduler (--workers, --scheduler), under one progress bar.

    Example:

    \b
        mer-train compare --shards data/shards --config configs/ci.yaml --seeds 3 --methods erm,maml,lightman
    """
    from .ablation import compare as run

    _logging(quiet, workers, scheduler)
    config = _config(config_path, assignments, shards=shards, macro_shards=macro_shards, classes=classes,
                     model=model, device=device, seed=seed, out=out)
    result = run(config, [m.strip() for m in methods.split(",") if m.strip()], seeds, progress=not quiet,
                 workers=workers, scheduler=scheduler, fold_batch=fold_batch or 1)
    click.echo(result.table, nl=False)
    click.echo(f"Written to {result.out / 'compare.md'}")


@main.command("list")
@cli_errors
def list_() -> None:
    """Methods, models and class sets available.

    Example:

    \b
        mer-train list
    """
    from .labels import CLASS_SETS as SETS
    from .models import list_models

    click.echo("methods: " + ", ".join(METHODS))
    click.echo("variants (mer-train compare --methods): " + ", ".join(
        f"{name} = {method} + {', '.join(f'{k}={v}' for k, v in keys.items())}" for name, (method, keys) in VARIANTS.items()))
    click.echo("models: " + ", ".join(list_models()))
    click.echo("class sets:")
    for name, class_set in SETS.items():
        click.echo(f"  {name}: {', '.join(class_set.classes)}")


@main.command()
@click.option("--grid", "grid_options", multiple=True, required=True, metavar="KEY=V1,V2",
              help="Values to choose from, read like --set values; repeat for a grid (the cartesian product).")
@click.option("--inner-folds", type=click.IntRange(min=1),
              help="Score each grid point on this many inner folds [default: one per training subject].")
@click.option("--method", type=click.Choice(METHODS), help="Method [default: lightman, or the config's].")
@run_options
@cli_errors
def tune(grid_options, inner_folds, method, shards, macro_shards, classes, config_path, model, device, seed, out, assignments,
         workers, scheduler, fold_batch, quiet) -> None:
    """Nested LOSO: choose config values on each fold's training subjects only, then test once.

    For each outer fold, every grid point is scored by an inner LOSO over the fold's training
    subjects (pooled UF1; ties go to the first point); the best is retrained on all of them and
    tested on the outer subject. metrics.json records the values chosen per fold. Each training is
    one task (--workers, --scheduler, as for train); same choices and predictions either way.

    Example:

    \b
        mer-train tune --shards data/shards --config configs/ci.yaml --grid lr=0.001,0.003 --workers 2
    """
    from .tune import parse_grid, tune as run

    if fold_batch is not None:
        raise click.UsageError("mer-train tune does not take --fold-batch: it trains one fold at a time")
    _logging(quiet, workers, scheduler)
    config = _config(config_path, assignments, method=method, shards=shards, macro_shards=macro_shards,
                     classes=classes, model=model, device=device, seed=seed, out=out)
    result = run(config, parse_grid(grid_options), inner_folds=inner_folds, progress=not quiet, workers=workers,
                 scheduler=scheduler)
    overall, tuning = result.metrics["overall"], result.metrics["tuning"]
    click.echo(f"tune {result.metrics['method']} on {result.metrics['class_set']}: {len(result.metrics['folds'])} "
               f"outer folds x {tuning['points']} grid points ({tuning['trainings']} trainings), {overall['n']} "
               f"samples: UF1 {overall['uf1']:.3f}, UAR {overall['uar']:.3f}, accuracy {overall['accuracy']:.3f}")
    for fold in result.metrics["folds"]:
        values = ", ".join(f"{key}={value}" for key, value in fold["chosen"].items())
        best = max(score["uf1"] for score in fold["inner"])
        click.echo(f"  {fold['subject']}: {values} (inner UF1 {best:.3f})")
    click.echo(f"Run directory: {result.out}")


@main.command()
@click.option("--method", type=click.Choice(METHODS), help="Method [default: lightman, or the config's].")
@run_options
@cli_errors
def fit(method, shards, macro_shards, classes, config_path, model, device, seed, out, assignments, quiet, **others) -> None:
    """Train one final model on every subject of the shards, for use: OUT/model.pt.

    The LOSO run (`mer-train train`) is the evaluation; fit trains the same config once on all
    subjects. model.pt carries its class set, input spec, the stage-one settings its shards were
    made with and the training config; `mer-train predict` applies it.

    Example:

    \b
        mer-train fit --shards data/shards --config configs/lightman.yaml --out models/lab
    """
    from .deploy import fit as run

    _logging(quiet)
    if not out:
        raise click.UsageError("mer-train fit needs --out DIR (model.pt is written there)")
    config = _config(config_path, assignments, method=method, shards=shards, macro_shards=macro_shards,
                     classes=classes, model=model, device=device, seed=seed, out=out)
    result = run(config, progress=not quiet)
    click.echo(f"{result.config.method} fitted on every subject of {', '.join(result.config.shards)}")
    click.echo(f"Model: {result.model_path}")


@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=False),
              help="model.pt from `mer-train fit`, or a LOSO run directory (its fold models, averaged).")
@click.option("--shards", multiple=True, required=True, metavar="DIR",
              help="Shard set(s) to label (labels in them are not read).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Warnings only.")
@cli_errors
def predict(model_path, shards, out_path, device, quiet) -> None:
    """Label every sample of shard sets with a trained model: a CSV of sample_id, predicted, p_<class>.

    Shards made with another --size, --flow or --backend than the model's are refused, with the
    command that remakes them.

    Example:

    \b
        mer-train predict --model models/lab/model.pt --shards data/shards/new --out predictions.csv
    """
    from .deploy import predict as run

    _logging(quiet)
    result = run(model_path, shards, out_path, device=device)
    counts = ", ".join(f"{c} {n}" for c, n in result.counts.items())
    click.echo(f"{result.n} samples labelled ({counts}) -> {result.out}")
