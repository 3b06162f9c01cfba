"""mer_pipeline: stage one of mer-toolkit.

Raw micro-expression datasets (as downloaded) -> aligned faces, onset->apex optical flow and strain
-> versioned HDF5 shards (`mer-shards/1`). The public API: `prepare(...)` runs the pipeline,
`mer_pipeline.shards.open_shards(OUT)` reads its output, `mer_pipeline.synth.generate(...)` writes
synthetic raw trees. Nothing heavy is imported here.
"""

__version__ = "0.1.0"


def prepare(*args, **kwargs):
    """Run stage one; see `mer_pipeline.runner.prepare`."""
    from .runner import prepare as _prepare

    return _prepare(*args, **kwargs)


# The public names and modules (docs/api.md is generated from them: `make docs`). The module that runs
# stage one is `runner`, not `prepare`: a submodule of that name would replace the function above
# as soon as anything imported it.
__all__ = ["prepare", "runner", "sample", "shards", "synth", "export", "spotting", "errors"]
