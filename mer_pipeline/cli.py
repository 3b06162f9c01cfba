"""`mer-prep`: the command line of stage one, a thin layer over `mer_pipeline.prepare` and friends.

Every dataset adapter gets its own command (`mer-prep casme2 RAW OUT`), built from the registry on
demand, sharing the options below.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from .errors import MerError, cli_errors, click_error
from .face import BACKENDS
from .flow import FLOW_METHODS, STRAIN_FORMULAS

COMMANDS = ("synth", "verify", "inspect", "list", "export", "spot", "spot-eval")


def prep_options(func):
    """The options every dataset command shares (docs/cli.md lists them)."""
    decorators = [
        click.option("--annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Annotation sheet (default: found in RAW)."),
        click.option("--backend", type=click.Choice(BACKENDS), default="dlib", show_default=True,
                     help="Face detector and landmarks."),
        click.option("--size", type=click.IntRange(32, 1024), default=128, show_default=True,
                     help="Side of the aligned square crop, in pixels."),
        click.option("--flow", "flow_method", type=click.Choice(FLOW_METHODS), default="tvl1", show_default=True,
                     help="Optical flow: TV-L1 (the MER standard), farneback or dis (as accurate on planted motion, "
                          "25-60x faster; docs/performance.md)."),
        click.option("--stabilize/--no-stabilize", default=True, show_default=True,
                     help="Remove rigid head motion between onset and apex."),
        click.option("--keep-frames", type=click.IntRange(0, 256), default=0, show_default=True,
                     help="Also store T aligned frames onset..offset (resampled)."),
        click.option("--workers", type=click.IntRange(1, 512), default=None,
                     help="Worker processes of the local Dask cluster [default: all cores]."),
        click.option("--scheduler", default=None,
                     help="Address of an existing dask.distributed scheduler (RAW and OUT must be on storage "
                          "every worker sees), or 'synchronous' to run in this process."),
        click.option("--shard-size", type=click.IntRange(1, 100000), default=64, show_default=True,
                     help="Samples per HDF5 shard."),
        click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N samples (by id)."),
        click.option("--overwrite", is_flag=True, help="Rebuild everything (default: resume)."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first failing clip (default: skip and report)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _dataset_command(name: str) -> click.Command:
    from .datasets import get_adapter

    adapter = get_adapter(name)

    @prep_options
    def command(raw, out, annotations, backend, size, flow_method, stabilize, keep_frames, workers, scheduler,
                shard_size, limit, overwrite, fail_fast, quiet, **options):
        from .config import PrepConfig
        from .runner import prepare

        config = PrepConfig(backend=backend, size=size, flow=flow_method, stabilize=stabilize, keep_frames=keep_frames)
        if scheduler != "synchronous":
            _quiet_dask()
        summary = prepare(name, raw, out, annotations=annotations, config=config, workers=workers,
                          scheduler=scheduler, shard_size=shard_size, limit=limit, overwrite=overwrite,
                          fail_fast=fail_fast, progress=not quiet, options=options)
        click.echo(str(summary))
        if summary.failed:
            click.echo(f"{summary.failed} skipped: see {Path(out) / 'failures.jsonl'}")

    raw_help = "RAW is the dataset folder as downloaded; OUT receives manifest.json, failures.jsonl and shards/."
    example = f"mer-prep {name} ~/data/{name} ~/shards/{name}"
    if not adapter.takes_raw:
        raw_help = "OUT receives manifest.json, failures.jsonl and shards/."
        folders = " ".join(f"{o.flag} RAW/{o.name}" for o in adapter.options if o.type is Path and o.required)
        example = f"mer-prep {name} {folders} OUT"
    command.__doc__ = f"Prepare {adapter.description}.\n\n{raw_help}\n\nExample:\n\n    {example}"
    params = [click.Argument(["raw"], type=click.Path(exists=True, file_okay=False, path_type=Path))] if adapter.takes_raw else []
    params.append(click.Argument(["out"], type=click.Path(file_okay=False, path_type=Path)))
    cmd = click.command(name)(command)
    if not adapter.takes_raw:
        cmd.callback = _without_raw(cmd.callback)
    cmd.params = params + cmd.params + [_click_option(o) for o in adapter.options]
    cmd.callback = cli_errors(cmd.callback)
    return cmd


def _click_option(option) -> click.Option:
    """The click option of an adapter's `datasets.Option`."""
    if option.type is bool:
        return click.Option([option.flag], is_flag=True, default=bool(option.default), help=option.help)
    if option.type is Path:
        kind = click.Path(exists=True, file_okay=False, path_type=Path)
    elif option.choices:
        kind = click.Choice(option.choices, case_sensitive=False)
    else:
        kind = option.type
    return click.Option([option.flag], type=kind, default=option.default, required=option.required,
                        show_default=option.default is not None, help=option.help)


def _without_raw(callback):
    def wrapped(**kwargs):
        return callback(raw=None, **kwargs)

    return wrapped


class PrepGroup(click.Group):
    """Commands: the fixed ones plus one per registered dataset, resolved on demand."""

    def list_commands(self, ctx):
        from .datasets import available

        return sorted(set(super().list_commands(ctx)) | set(available()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from .datasets import available

        if name in available():
            return _dataset_command(name)
        return None

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            if args and not args[0].startswith("-"):
                from .datasets import available

                known = ", ".join(available())
                raise click.UsageError(f"unknown dataset or command {args[0]!r}. Datasets: {known}. "
                                       f"Commands: {', '.join(COMMANDS)}", ctx) from error
            raise


@click.group(cls=PrepGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="mer-toolkit")
def cli(verbose):
    """mer-prep: raw micro-expression datasets -> aligned faces, optical flow, HDF5 shards.

    Example:

        mer-prep synth casme2 data/raw/casme2 && mer-prep casme2 data/raw/casme2 data/shards/casme2
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    click.get_current_context().obj = {"verbose": verbose}


def _quiet_dask() -> None:
    """Dask's own INFO chatter only with -vv. Importing distributed configures its loggers, so the
    levels are set after that import."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_root().obj or {}).get("verbose", 0) >= 2:
        return
    import distributed  # noqa: F401

    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.ERROR)


@cli.command("verify")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@cli_errors
def verify_command(out):
    """Check every shard against the manifest (sha256, counts, schema).

    Exits non-zero and names each mismatching file.

    Example:

        mer-prep verify data/shards/casme2
    """
    from .shards import verify_shards

    problems = verify_shards(out)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise click.ClickException(f"{out}: {len(problems)} problem(s); rerun mer-prep on it to rebuild")
    from .shards import load_manifest

    manifest = load_manifest(out)
    click.echo(f"{out}: OK ({len(manifest['shards'])} shards, {manifest['counts']['ok']} samples, "
               f"schema {manifest['schema']})")


@cli.command("inspect")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [default: OUT/contact_sheet.png].")
@click.option("--max-samples", type=click.IntRange(1), default=24, show_default=True)
@cli_errors
def inspect_command(out, output, max_samples):
    """Contact sheet: aligned onset, apex and colour-coded flow per sample.

    Example:

        mer-prep inspect data/shards/casme2 -o sheet.png
    """
    from .contact_sheet import contact_sheet

    path = contact_sheet(out, output or Path(out) / "contact_sheet.png", max_samples=max_samples)
    click.echo(f"wrote {path}")


@cli.command("list")
@cli_errors
def list_command():
    """Datasets, face backends and flow methods available.

    Example:

        mer-prep list
    """
    from .datasets import available
    from .flow import check_flow_available

    click.echo("datasets:")
    for name, adapter in available().items():
        click.echo(f"  {name:10s} {adapter.kind:5s}  {adapter.description}")
    click.echo("face backends: " + ", ".join(BACKENDS))
    methods = []
    for method in FLOW_METHODS:
        try:
            check_flow_available(method)
            methods.append(method)
        except MerError:
            methods.append(f"{method} (unavailable: reinstall opencv-contrib-python)")
    click.echo("flow methods: " + ", ".join(methods))


@cli.command("export")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["ststnet", "npz"]), required=True,
              help="ststnet: <subject>/u_train|u_test/<class>/*.png, 28x28 (STSTNet, HTNet, ...); "
                   "npz: <dataset>.npz (N, 3, S, S) [u, v, strain] + <dataset>.csv.")
@click.option("--classes", default=None,
              help="Class set for the labels: megc2019-3, casme2-5, samm-5, casme3-7 or as-written "
                   "[default: megc2019-3 for ststnet; none for npz, labels -1].")
@click.option("--strain", type=click.Choice(list(STRAIN_FORMULAS)), default="ours", show_default=True,
              help="ours: the shards' strain (1/2 (du/dy + dv/dx)^2 shear term); other: 1/2 (du/dy^2 + dv/dx^2).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in DEST.")
@cli_errors
def export_command(out, dest, fmt, classes, strain, overwrite):
    """Export a shard set (or a folder of shard sets) into the layouts peers' code reads.

    See docs/shard-format.md, "Exports".

    Example:

        mer-prep export data/shards/casme2 data/ststnet --format ststnet --classes megc2019-3
    """
    from .export import export

    click.echo(str(export(out, dest, format=fmt, classes=classes, strain=strain, overwrite=overwrite)))


@cli.command("spot")
@click.argument("dataset", type=click.Choice(["videos", "cas2", "samm-lv"]))
@click.argument("raw", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ground-truth sheet (default: found in RAW; videos: RAW/spot_truth.csv when present).")
@click.option("--backend", type=click.Choice(BACKENDS), default="dlib", show_default=True)
@click.option("--size", type=click.IntRange(32, 1024), default=128, show_default=True,
              help="Side of the aligned crop of the shards of spotted intervals.")
@click.option("--flow", "flow_method", type=click.Choice(FLOW_METHODS), default="tvl1",
              show_default=True, help="Flow onset -> apex of each spotted interval (the scan always uses DIS).")
@click.option("--fps", type=click.FloatRange(min=1.0), default=None,
              help="Frame rate of frame folders [default: the dataset's; video files give their own].")
@click.option("--p", "p", type=click.FloatRange(0.0, 1.0), default=None,
              help="Threshold T = mean(C) + p (max(C) - mean(C)) of the contrast C [default: 0.1].")
@click.option("--min-score", type=click.FloatRange(min=0.0), default=None,
              help="Smallest peak contrast, in robust z units [default: 6].")
@click.option("--shard-size", type=click.IntRange(1, 100000), default=64, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N videos (by name).")
@click.option("--workers", type=click.IntRange(1, 512), default=None,
              help="Worker processes of the local Dask cluster, one video per task [default: all cores].")
@click.option("--scheduler", default=None,
              help="Address of an existing dask.distributed scheduler, or 'synchronous' to run in this process.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@cli_errors
def spot_command(dataset, raw, out, annotations, backend, size, flow_method, fps, p, min_score, shard_size, limit,
                 workers, scheduler, quiet):
    """Spot micro- and macro-expression intervals in long videos (docs/spotting.md).

    Writes OUT/intervals.csv (video, onset, apex, offset, kind, score, sample_id), OUT/videos.csv,
    OUT/ground_truth.csv when the dataset has a sheet, and a shard set with one sample per interval
    (emotion empty) for `mer-train predict`. DATASET: videos (video files or frame folders), cas2
    (CAS(ME)^2 rawpic + CAS(ME)^2code_final.xlsx), samm-lv (SAMM_longvideos + its release sheet).

    Example:

    \b
        mer-prep synth cas2 data/raw/cas2-long --long
        mer-prep spot cas2 data/raw/cas2-long data/spot/cas2
    """
    from dataclasses import replace

    from .spotting import SpotConfig, spot

    config = SpotConfig(backend=backend, size=size, flow=flow_method)
    changes = {k: v for k, v in (("p", p), ("min_score", min_score)) if v is not None}
    if scheduler != "synchronous":
        _quiet_dask()
    summary = spot(dataset, raw, out, config=replace(config, **changes), annotations=annotations, fps=fps,
                   shard_size=shard_size, limit=limit, workers=workers, scheduler=scheduler, progress=not quiet)
    click.echo(str(summary))
    if summary.failed:
        click.echo(f"{summary.failed} failed: see {Path(out) / 'failures.jsonl'}")


@cli.command("spot-eval")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Ground-truth CSV (video, onset, apex, offset, kind) [default: OUT/ground_truth.csv].")
@click.option("--predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A recogniser's predictions (sample_id + class) of OUT's shards: adds the spot-then-recognise "
                   "score.")
@click.option("--column", default=None, help="Predicted-class column of --predictions [default: predicted].")
@cli_errors
def spot_eval_command(out, truth, predictions, column):
    """MEGC spotting F1 of a `mer-prep spot` run: IoU >= 0.5, one-to-one, pooled; micro, macro, overall.

    Writes OUT/spotting_metrics.json (also false positives per minute, per video counts, and with
    --predictions the spot-then-recognise score).

    Example:

        mer-prep spot-eval data/spot/cas2
    """
    from .spotting.evaluate import METRICS, evaluate, summary_line

    metrics = evaluate(out, truth=truth, predictions=predictions, column=column)
    click.echo(summary_line(metrics))
    click.echo(f"wrote {Path(out) / METRICS}")


def _add_synth() -> None:
    try:
        from .synth.cli import synth
    except ImportError:  # the generator is optional at import time of the CLI module
        return
    cli.add_command(synth, "synth")


def main(argv=None) -> None:
    """The `mer-prep` entry point. Every command's errors take the one path `errors.cli_errors`;
    a MerError raised while a command is being built (before its callback runs) takes it here."""
    _add_synth()
    try:
        with cli.make_context("mer-prep", list(sys.argv[1:] if argv is None else argv)) as ctx:
            try:
                cli.invoke(ctx)
            except MerError as error:
                raise click_error(error) from error
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as done:  # --help, --version
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
