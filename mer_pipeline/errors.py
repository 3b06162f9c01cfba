"""Typed errors of stage one. Each message says what went wrong, where, and what to do next."""


class MerError(Exception):
    """Base class of every error mer-toolkit raises on purpose."""


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


__all__ = ["MerError", "DatasetLayoutError", "AnnotationError", "FrameError", "NoFaceFound", "FlowUnavailable",
           "ShardError", "OutputLocked"]
