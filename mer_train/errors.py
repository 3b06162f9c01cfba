"""Typed errors of stage two. Each message says what went wrong and what to do next; the CLI shows
them through the family's one error path (`mer_pipeline.errors.cli_errors`). `TrainError` derives
from the family's root `MerError`, so that `except MerError` catches stage two's errors and the
shard errors (`ShardError`) it surfaces alike.

`LabelSetError` is the class sets' error and lives with them in stage one (`mer_pipeline.classes`,
shared with `mer-prep export`); it is a MerError too.
"""
from mer_pipeline.classes import LabelSetError
from mer_pipeline.errors import MerError

class TrainError(MerError):
    """Base class of every error mer_train raises on purpose."""


class ConfigError(TrainError):
    """A config file or override holds an unknown key or an unusable value."""


class DataError(TrainError):
    """The shard sets cannot be used for training (too few subjects, mixed sizes, ...)."""


class MissingMacroShards(TrainError):
    """A method with the auxiliary branch was asked for, but no macro-expression samples were found."""


__all__ = ["TrainError", "ConfigError", "LabelSetError", "DataError", "MissingMacroShards"]
