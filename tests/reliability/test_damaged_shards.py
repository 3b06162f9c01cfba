"""Damaged shard sets: every reader refuses them naming the file, and mer-prep rebuilds what is damaged.

Readers: `mer-prep verify`, `mer_pipeline.shards.open_shards` (what the trainer loads with) and
`mer-train --shards`. (tests/test_prepare.py::test_verify_names_a_flipped_shard and
tests/test_shards.py cover a flipped byte and an unknown manifest schema for the first two.)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from mer_pipeline.cli import cli as prep_cli
from mer_pipeline.errors import MerError, ShardError
from mer_pipeline.shards import open_shards, sha256_file, verify_shards
from reliability_helpers import output_files, prep

pytestmark = pytest.mark.slow
VICTIM = "casme2-00001.h5"


def edit_manifest(out: Path, edit) -> Path:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))
    return path


def entry(manifest: dict) -> dict:
    return next(e for e in manifest["shards"] if e["file"] == VICTIM)


def truncate(out):
    path = out / "shards" / VICTIM
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "sha256 differs from the manifest"


def flip(out):
    path = out / "shards" / VICTIM
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return path, "sha256 differs from the manifest"


def wrong_n(out):
    edit_manifest(out, lambda m: entry(m).update(n=entry(m)["n"] + 1))
    return out / "shards" / VICTIM, "differ from the manifest's n = 2"


def wrong_sha(out):
    edit_manifest(out, lambda m: entry(m).update(sha256="0" * 64))
    return out / "shards" / VICTIM, "sha256 differs from the manifest"


def shard_deleted(out):
    (out / "shards" / VICTIM).unlink()
    return out / "shards" / VICTIM, "shard listed in the manifest is missing"


def entry_deleted(out):
    path = edit_manifest(out, lambda m: m["shards"].remove(entry(m)))
    return path, "counts.ok = 4 but the shards hold 3 samples"


def manifest_schema(out):
    path = edit_manifest(out, lambda m: m.update(schema="mer-shards/2"))
    return path, "unknown shard schema 'mer-shards/2'; this mer-toolkit reads 'mer-shards/1'"


def shard_schema(out):
    """A shard rewritten by a future writer, its sha256 recorded: the schema check itself must refuse it."""
    path = out / "shards" / VICTIM
    with h5py.File(path, "r+") as h5:
        h5.attrs["schema"] = "mer-shards/2"
    edit_manifest(out, lambda m: entry(m).update(sha256=sha256_file(path)))
    return path, "schema 'mer-shards/2', expected 'mer-shards/1'"


def manifest_truncated(out):
    path = out / "manifest.json"
    path.write_text(path.read_text()[:100])
    return path, "unreadable manifest"


DAMAGE = {f.__name__.replace("_", "-"): f for f in (truncate, flip, wrong_n, wrong_sha, shard_deleted, entry_deleted,
                                                    manifest_schema, shard_schema, manifest_truncated)}


@pytest.fixture
def damaged(request, clean_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean_out, out)
    path, words = DAMAGE[request.param](out)
    return out, path, words


@pytest.mark.parametrize("damaged", DAMAGE, indirect=True)
def test_every_reader_refuses_a_damaged_set_naming_the_file(damaged):
    from mer_train.cli import main as train_cli

    out, path, words = damaged
    problems = verify_shards(out)
    assert any(str(path) in p and words in p for p in problems), problems

    result = CliRunner().invoke(prep_cli, ["verify", str(out)])
    assert result.exit_code == 1 and str(path) in result.output and words in result.output, result.output

    with pytest.raises(ShardError) as error:
        open_shards(out)
    assert str(path) in str(error.value) and words in str(error.value)

    result = CliRunner().invoke(train_cli, ["--shards", str(out), "--method", "erm", "--device", "cpu", "-q",
                                            "--out", str(out.parent / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert str(path) in result.output and words in result.output, result.output
    assert not (out.parent / "run" / "checkpoints").exists() or not any((out.parent / "run" / "checkpoints").iterdir())


@pytest.mark.parametrize("damaged", ["truncate", "flip", "wrong-sha", "shard-deleted"], indirect=True)
def test_rerunning_mer_prep_rebuilds_a_damaged_shard(damaged, tiny_raw, clean_out):
    """verify's advice ("rerun mer-prep to rebuild it") works: the shard is rebuilt, never re-blessed."""
    out, _, _ = damaged
    summary = prep(tiny_raw, out)
    assert (summary.shards, summary.reused) == (4, 3)
    assert output_files(out) == output_files(clean_out)
    assert verify_shards(out) == []


@pytest.mark.parametrize("damaged", ["manifest-truncated", "manifest-schema"], indirect=True)
def test_rerunning_on_an_unusable_manifest_says_why_and_names_it(damaged, tiny_raw):
    out, path, words = damaged
    before = output_files(out)
    with pytest.raises(MerError) as error:
        prep(tiny_raw, out)
    assert str(path) in str(error.value) and words in str(error.value)
    assert "another configuration" not in str(error.value)
    assert output_files(out) == before  # nothing touched
    summary = prep(tiny_raw, out, overwrite=True)  # the way out the message names
    assert summary.ok == 4 and verify_shards(out) == []
