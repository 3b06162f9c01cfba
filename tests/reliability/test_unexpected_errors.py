"""A bug (an exception none of clip.EXPECTED_ERRORS) in the per-clip code: one clip hitting it is
recorded as an unexpected failure and the dataset still gets made; every clip hitting it stops the
run loudly with the first traceback, exit status 1, and no manifest."""
from __future__ import annotations

import pytest

import mer_pipeline.clip as clip_module
import mer_pipeline.runner as prepare_module
from mer_pipeline.clip import ClipError, process_clip
from mer_pipeline.runner import UnexpectedClipErrors
from mer_pipeline.shards import MANIFEST
from reliability_helpers import CLI_OPTIONS, CONFIG, failures, output_files, prep, samples


def buggy(victims):
    """process_clip, except that it raises a TypeError (a stand-in for a bug) on `victims` (None: every clip)."""
    real = process_clip

    def run(sample, config):
        if victims is None or sample.sample_id in victims:
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
        return real(sample, config)

    return run


def test_one_clip_hitting_a_bug_is_an_unexpected_failure_and_the_rest_is_made(tiny_raw, clean_out, tmp_path,
                                                                              monkeypatch):
    victim = sorted(samples(tiny_raw))[1]
    monkeypatch.setattr(prepare_module, "process_clip", buggy({victim}))
    out = tmp_path / "out"
    summary = prep(tiny_raw, out)
    assert (summary.ok, summary.failed) == (3, 1) and (out / MANIFEST).is_file()
    failed = failures(out)
    assert list(failed) == [victim]
    assert failed[victim]["unexpected"] is True and failed[victim]["error"] == "TypeError"
    assert failed[victim]["stage"] == "clip" and "'int' and 'str'" in failed[victim]["message"]
    assert "a bug in mer-toolkit" in failed[victim]["message"]
    monkeypatch.undo()  # the bug is fixed: a rerun retries exactly that clip, the others are reused
    again = prep(tiny_raw, out)
    assert (again.reused, again.failed) == (3, 0) and output_files(out) == output_files(clean_out)


def test_every_clip_hitting_a_bug_fails_the_run_loudly(tiny_raw, tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_module, "process_clip", buggy(None))
    out = tmp_path / "out"
    with pytest.raises(UnexpectedClipErrors) as raised:
        prep(tiny_raw, out)
    message = str(raised.value)
    assert "no clip succeeded" in message and "a bug in mer-toolkit" in message
    assert "Traceback (most recent call last)" in message and "TypeError: unsupported operand" in message
    assert not (out / MANIFEST).exists(), "the set must not be taken for complete"
    assert len(failures(out)) == 4 and all(f["unexpected"] for f in failures(out).values())

    from mer_pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main(["casme2", str(tiny_raw), str(tmp_path / "cli"), *CLI_OPTIONS])
    assert done.value.code == 1


def test_only_expected_errors_become_a_stage_failure(tiny_raw, monkeypatch):
    sample = samples(tiny_raw)[sorted(samples(tiny_raw))[0]]

    def face_error(kind):
        def detect(*args, **kwargs):
            raise kind("no face here")
        return detect

    monkeypatch.setattr(clip_module, "detect_face", face_error(OSError))
    with pytest.raises(ClipError) as caught:
        process_clip(sample, CONFIG)
    assert caught.value.stage == "face" and isinstance(caught.value.cause, OSError)
    monkeypatch.setattr(clip_module, "detect_face", face_error(AttributeError))
    with pytest.raises(AttributeError):  # a bug is not dressed up as the clip's failure
        process_clip(sample, CONFIG)
