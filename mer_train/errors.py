"""Typed errors of stage two. Each message says what went wrong and what to do next; the CLI turns
them into `click.ClickException`s unchanged.

`LabelSetError` is the class sets' error and lives with them in stage one (`mer_pipeline.classes`,
shared with `mer-prep export`): a MerError, not a TrainError; the CLI reports both.
"""
from mer_pipeline.classes import LabelSetError

__all__ = ["TrainError", "ConfigError", "LabelSetError", "DataError", "MissingMacroShards"]


class TrainError(Exception):
    """Base class of every error mer_train raises on purpose."""


class ConfigError(TrainError):
    """A config file or override holds an unknown key or an unusable value."""


class DataError(TrainError):
    """The shard sets cannot be used for training (too few subjects, mixed sizes, ...)."""


class MissingMacroShards(TrainError):
    """A method with the auxiliary branch was asked for, but no macro-expression samples were found."""


__all__ = ["TrainError", "ConfigError", "LabelSetError", "DataError", "MissingMacroShards"]
