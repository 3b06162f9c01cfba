"""A Dask worker process that dies in the middle of a shard (os._exit: no exception, no cleanup),
under a real LocalCluster with worker processes.

Dying once: the scheduler gives the shard to a fresh worker and the run ends byte-identical to a
clean one. Dying every time: the run still completes and failures.jsonl names exactly the clips of
that shard; a rerun retries them.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import cloudpickle
import dask
import pytest

import mer_pipeline.runner as prepare_module
from reliability_helpers import failures, output_files, prep, shard_records

pytestmark = pytest.mark.slow
# The wrapper below travels to the workers by value (they cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def dying_clip_records(index, samples, *args, real, victim: int, marker: Path | None, **kwargs):
    """clip_records, except that the worker process exits in the middle of shard `victim`: once when
    `marker` names a file to create, on every attempt when it is None."""
    if index == victim and (marker is None or not marker.exists()):
        if marker is not None:
            marker.touch()
        os._exit(1)
    return real(index, samples, *args, **kwargs)


def test_a_worker_dying_once_is_retried_and_the_run_matches_a_clean_one(tiny_raw, clean_out, tmp_path, monkeypatch):
    marker = tmp_path / "died-once"
    monkeypatch.setattr(prepare_module, "clip_records", functools.partial(
        dying_clip_records, real=prepare_module.clip_records, victim=1, marker=marker))
    out = tmp_path / "out"
    summary = prep(tiny_raw, out, scheduler=None, workers=1)
    assert marker.exists(), "the worker did die"
    assert (summary.ok, summary.failed) == (4, 0)
    assert output_files(out) == output_files(clean_out)


def test_a_worker_dying_every_time_loses_exactly_its_shards_clips(tiny_raw, clean_out, tmp_path, monkeypatch):
    real = prepare_module.clip_records
    monkeypatch.setattr(prepare_module, "clip_records", functools.partial(
        dying_clip_records, real=real, victim=1, marker=None))
    out = tmp_path / "out"
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # two deaths, then give up
        summary = prep(tiny_raw, out, scheduler=None, workers=1)
    lost = sorted(shard_records(clean_out))[1]  # shard 1 holds the second sample id
    failed = failures(out)
    assert list(failed) == [lost] and failed[lost]["stage"] == "worker"
    assert failed[lost]["error"] == "KilledWorker"
    assert "worker process died" in failed[lost]["message"] and "Rerun mer-prep to retry" in failed[lost]["message"]
    landed, reference = shard_records(out), shard_records(clean_out)
    assert set(landed) == set(reference) - {lost} and all(landed[k] == reference[k] for k in landed)
    assert (summary.ok, summary.failed, summary.shards) == (3, 1, 3)

    monkeypatch.setattr(prepare_module, "clip_records", real)  # the cause is gone: a rerun retries the lost clip
    summary = prep(tiny_raw, out)
    assert (summary.reused, summary.failed) == (3, 0) and output_files(out) == output_files(clean_out)
