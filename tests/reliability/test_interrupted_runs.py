"""Runs killed with SIGKILL at every stage of writing, and two runs on one output folder.

Real `mer-prep` processes; the fault is placed exactly by tests/reliability/prep_faults.py. After a
kill, only complete shards carry a final name, the set is never taken for a complete one (no
manifest), and a rerun reuses what was complete and ends byte-identical to an undisturbed run.
(tests/test_prepare.py::test_sigkill_midway_then_rerun_is_byte_identical kills at a random time.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mer_pipeline.errors import ShardError
from mer_pipeline.shards import open_shards
from reliability_helpers import CLI_OPTIONS, output_files, prep

pytestmark = pytest.mark.slow
FAULTS = Path(__file__).with_name("prep_faults.py")
MER_PREP = Path(sys.executable).parent / "mer-prep"

# point -> number of shards complete (under their final name) when the process dies
KILL_POINTS = {
    "write:0": 0,                    # in the middle of writing the first shard
    "rename:casme2-00000.h5": 0,     # first shard complete under its temporary name
    "renamed:casme2-00001.h5": 2,    # between shards
    "renamed:casme2-00003.h5": 4,    # after the last shard, before failures.jsonl and the manifest
    "rename:manifest.json": 4,       # manifest complete under its temporary name
}


def faulty_prep(point: str, action: str, raw: Path, out: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, str(FAULTS), point, action, "casme2", str(raw), str(out), *CLI_OPTIONS]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_point_then_rerun_matches_a_clean_run(point, tiny_raw, clean_out, tmp_path):
    out = tmp_path / "out"
    process = faulty_prep(point, "kill", tiny_raw, out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, err.decode()

    reference = output_files(clean_out)
    finals = sorted((out / "shards").glob("*.h5"))
    assert len(finals) == KILL_POINTS[point]
    for path in finals:  # a final name is only ever given to a complete shard
        assert path.read_bytes() == reference[f"shards/{path.name}"], path
    if point == "write:0":
        assert [p.name for p in (out / "shards").iterdir()][0].startswith(".casme2-00000.h5.tmp-")
    assert not (out / "manifest.json").exists()
    with pytest.raises(ShardError, match="manifest.json is missing.*rerun it to resume"):
        open_shards(out)

    summary = prep(tiny_raw, out)
    assert (summary.ok, summary.reused) == (4, KILL_POINTS[point])
    assert output_files(out) == reference  # shards, manifest and failures byte for byte; no leftovers


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the first run ended early: {process.communicate()[1].decode()}")
        assert time.monotonic() < deadline, "the first run never reached its pause point"
        time.sleep(0.1)


def test_a_second_mer_prep_on_the_same_output_is_refused(tiny_raw, clean_out, tmp_path):
    out, paused = tmp_path / "out", tmp_path / "paused"
    first = faulty_prep("renamed:casme2-00001.h5", "pause", tiny_raw, out,
                        env={**os.environ, "MER_FAULT_PAUSED": str(paused)})
    reference = output_files(clean_out)
    try:
        wait_for(paused, first)  # the first run holds the lock, two shards written
        for extra in ([], ["--overwrite"]):
            second = subprocess.run([MER_PREP, "casme2", tiny_raw, out, *CLI_OPTIONS, *extra],
                                    capture_output=True, text=True, timeout=300)
            assert second.returncode == 1, second.stderr
            assert second.stderr.startswith(f"Error: {out}: another mer-prep process is writing here; wait for it "
                                            "to finish or choose another output folder"), second.stderr
            assert "Traceback" not in second.stderr
            names = sorted(p.name for p in (out / "shards").glob("*.h5"))
            assert names == ["casme2-00000.h5", "casme2-00001.h5"]  # the first run's work is untouched
            assert all((out / "shards" / n).read_bytes() == reference[f"shards/{n}"] for n in names)
    finally:
        first.kill()
        first.communicate()
    # the lock dies with its holder (flock): the next run resumes without any manual cleanup
    summary = prep(tiny_raw, out)
    assert summary.reused == 2 and output_files(out) == reference
