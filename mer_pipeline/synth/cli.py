"""`mer-prep synth DATASET OUT`: a thin click layer over `mer_pipeline.synth.generate`."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import cli_errors
from .layouts import DATASETS
from .presets import CONFOUNDERS_BY, PRESETS


def factor_switches(command):
    """The difficulty factors of the hard preset, each on/off on any preset (presets.with_factors);
    unset, a preset keeps its own."""
    switches = (
        ("noise-floor", "Weak motion (0.08-3 px, log-uniform) under hard's head drift, sensor noise and JPEG; "
                        "off: default's signal and nuisances"),
        ("imbalance", "CASME II's class proportions, uneven subjects; off: balanced cyclic deal"),
        ("traits", "Per-subject amplitude, asymmetry, habitual AU and face geometry; off: none"),
        ("confounders", "Label cues inside a subject (light, head nudges); off: none"),
        ("gap", "Posed macro (full AU sets, symmetric) vs spontaneous micro (partial, one-sided, "
                "per-subject AU dropout); off: the same AU table for both"),
    )
    command = click.option("--confounders-by", type=click.Choice(CONFOUNDERS_BY), default=None,
                           help="What a confounder cue goes with: (subject, emotion) or (subject, recording "
                                "session) [default: emotion].")(command)
    for name, text in reversed(switches):
        command = click.option(f"--{name}/--no-{name}", default=None, help=f"{text} [default: the preset's].")(command)
    return command


@click.command("synth")
@click.argument("dataset")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subjects", type=click.IntRange(1, 500), default=None,
              help="Number of subjects [default: per dataset and preset, e.g. 12 for casme2, 26 with --preset hard].")
@click.option("--clips-per-subject", type=click.IntRange(1, 200), default=None,
              help="Clips (expressions) per subject; with --preset hard the mean, subjects differ "
                   "[default: per dataset and preset, e.g. 6 for casme2, 10 with --preset hard].")
@click.option("--seed", type=int, default=0, show_default=True, help="Same arguments, same bytes.")
@click.option("--quirks", is_flag=True,
              help="Plant the dataset's known annotation and file quirks ('/' apex, missing frames, ...).")
@click.option("--faces", "faces", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of your own face photos (one frontal face each) [default: skimage astronaut].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="default", show_default=True,
              help="Difficulty: motion amplitude against head drift, noise and compression; hard adds "
                   "CASME II class imbalance, per-subject traits, subject-specific confounders and the "
                   "posed-macro / spontaneous-micro gap; each switchable below (docs/synth.md).")
@factor_switches
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Rendering processes [default: all cores for large trees].")
@click.option("--overwrite", is_flag=True, help="Replace a synthetic tree already in OUT.")
@click.option("--long", "long_videos", is_flag=True,
              help="Long videos for spotting (cas2, videos): --subjects videos of 30 s with planted micro- and "
                   "macro-expressions and distractors, plus a distractor-only video (docs/spotting.md).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@cli_errors
def synth(dataset, out, subjects, clips_per_subject, seed, quirks, faces, preset, workers, overwrite, long_videos, quiet,
          **factors):
    """Write a synthetic raw DATASET tree into OUT, in the dataset's real on-disk layout.

    Real face photos become distinct subjects; each clip plants the action units of its emotion
    as a known displacement field (micro: 0.3-2 px at apex, 0.08-3 px with --preset hard; ckplus:
    5-15 px). OUT/synth_truth.json holds the truth: onset/apex/offset, AUs, head motion, the exact
    apex field per clip, and with --preset hard each subject's traits and confounders.

    DATASET is one of: {datasets}.

    Example:

    \b
        mer-prep synth casme2 data/raw/casme2 && mer-prep casme2 data/raw/casme2 data/shards/casme2
        mer-prep synth casme2 data/raw/casme2-hard --preset hard   # 26 subjects, CASME II's classes
        mer-prep synth casme2 /tmp/no-cues --preset hard --no-confounders
    """
    from tqdm import tqdm

    from .generate import generate
    from .layouts import LAYOUTS

    if long_videos:
        return _synth_long(dataset, out, subjects, seed, faces, overwrite)
    if dataset not in LAYOUTS:
        raise click.ClickException(f"unknown dataset {dataset!r} for synth; known: {', '.join(DATASETS)}")
    with tqdm(unit="clip", desc=f"synth {dataset}", disable=quiet, leave=False) as bar:

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        summary = generate(dataset, out, subjects=subjects, clips_per_subject=clips_per_subject, seed=seed,
                           quirks=quirks, faces=faces, preset=preset, workers=workers, overwrite=overwrite,
                           progress=progress, **factors)
    planted = f"; quirks planted: {', '.join(summary['quirks'])}" if summary["quirks"] else ""
    click.echo(
        f"Wrote {summary['clips']} {dataset} clips of {summary['subjects']} subjects ({summary['frames']} frames, "
        f"{summary['bytes'] / 1e6:.1f} MB) to {out} in {summary['seconds']:.1f} s; "
        f"truth: {summary['truth']}{planted}"
    )


synth.help = synth.help.replace("{datasets}", ", ".join(DATASETS))


def _synth_long(dataset, out, videos, seed, faces, overwrite):
    """`--long`: synthetic long videos (mer_pipeline.synth.long)."""
    from .long import LONG_DATASETS, generate_long, small_spec

    if dataset not in LONG_DATASETS:
        raise click.ClickException(f"--long is available for {', '.join(LONG_DATASETS)}, not {dataset!r}")
    spec = small_spec(videos=videos) if videos else small_spec()
    summary = generate_long(dataset, out, seed=seed, spec=spec, faces=faces, overwrite=overwrite)
    click.echo(f"Wrote {summary['videos']} long videos in the {dataset} layout ({summary['frames']} frames, "
               f"{summary['bytes'] / 1e6:.1f} MB; {summary['micro']} micro, {summary['macro']} macro, "
               f"{summary['distractors']} distractors) to {out} in {summary['seconds']:.1f} s; "
               f"truth: {summary['annotations']}, {summary['truth']}")
