"""Typed errors of the synthetic generator; each message says what to do next."""
from ..errors import MerError


class SynthError(MerError, ValueError):
    """Bad arguments to the generator (unknown dataset or preset, existing output, bad counts)."""


class SynthFaceError(SynthError):
    """A face photo that cannot serve as a synthetic subject."""
