"""Typed errors of mer-toolkit, and the one way a command line shows them.

`MerError` is the one root of the package family: stage one's errors below, the generator's
(`mer_pipeline.synth.errors`) and stage two's (`mer_train.errors`). Each message says what went
wrong, where, and what to do next. Library messages name the parameter (`shard_size must be ...`)
and say so in `param`; `cli_errors` names the command's flag instead (`--shard-size must be ...`).
"""
from __future__ import annotations

import functools


class MerError(Exception):
    """Base class of every error mer-toolkit raises on purpose (stage one, the generator, stage two).

    `param`: the keyword argument of the public function the message is about, when there is one;
    its message then starts with that name."""

    def __init__(self, *args, param: str | None = None):
        super().__init__(*args)
        self.param = param


class DatasetLayoutError(MerError):
    """The raw dataset folder does not look like the dataset's documented layout."""


class AnnotationError(MerError):
    """An annotation sheet is missing, unreadable, or holds values that cannot be used."""


class FrameError(MerError):
    """A frame is missing, unreadable or of an unusable format."""


class NoFaceFound(MerError):
    """The face backend found no face on a frame."""


class FlowUnavailable(MerError):
    """The requested optical-flow method is not available in the installed OpenCV."""


class ShardError(MerError):
    """A shard set is missing, incomplete, corrupt or of an unknown schema."""


class OutputLocked(MerError):
    """Another mer-prep process is writing into the same output folder."""


def cli_errors(command):
    """The one error path of every command of `mer-prep`, `mer-prep synth` and `mer-train`: a
    MerError becomes its message on stderr and exit status 1 (a `click.ClickException`), with the
    traceback above it only under the root command's `-v`. Any other exception is a bug and keeps
    its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MerError as error:
            raise click_error(error) from error

    wrapper.handles_mer_errors = True
    return wrapper


def click_error(error: MerError):
    """`error` as the click exception a command raises: the parameter it names becomes the flag."""
    import traceback

    import click

    ctx = click.get_current_context(silent=True)
    message = str(error)
    if ctx is not None:
        if ctx.find_root().params.get("verbose"):
            click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
        flag = _flag(ctx.command, error.param)
        if flag and message.startswith(error.param):
            message = flag + message[len(error.param):]
    return click.ClickException(message)


def _flag(command, param: str | None) -> str | None:
    for option in getattr(command, "params", ()):
        if param and option.name == param and option.opts and option.opts[0].startswith("-"):
            return max(option.opts, key=len)
    return None


__all__ = ["MerError", "DatasetLayoutError", "AnnotationError", "FrameError", "NoFaceFound", "FlowUnavailable",
           "ShardError", "OutputLocked", "cli_errors"]
