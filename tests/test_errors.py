"""One error root and one CLI error path for mer-prep, mer-prep synth and mer-train."""
from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mer_pipeline.classes
import mer_pipeline.errors
import mer_pipeline.synth.errors
import mer_train.errors
from mer_pipeline.cli import _add_synth, cli as prep_cli
from mer_pipeline.errors import MerError
from mer_pipeline.shards import config_hash, write_manifest, write_shard
from mer_train.cli import main as train_cli
from mer_train.errors import TrainError


def error_classes():
    for module in (mer_pipeline.errors, mer_pipeline.classes, mer_pipeline.synth.errors, mer_train.errors):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                yield value


def test_every_error_class_of_the_family_derives_from_mer_error():
    from mer_pipeline.clip import ClipError
    from mer_pipeline.runner import UnexpectedClipErrors

    classes = [*error_classes(), ClipError, UnexpectedClipErrors]
    assert {c.__name__ for c in classes} >= {"ShardError", "SynthError", "TrainError", "ConfigError", "DataError",
                                             "LabelSetError", "MissingMacroShards", "NoFaceFound"}
    assert all(issubclass(c, MerError) for c in classes), [c for c in classes if not issubclass(c, MerError)]
    with pytest.raises(MerError):  # stage two's errors and the shard errors it surfaces: one except
        raise mer_train.errors.DataError("x")
    with pytest.raises(ValueError):  # existing catchability kept
        raise mer_pipeline.synth.errors.SynthError("x")


def commands(group: click.Group, prefix: str):
    ctx = click.Context(group, info_name=prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_command_takes_the_one_error_path():
    _add_synth()
    found = dict(commands(prep_cli, "mer-prep")) | dict(commands(train_cli, "mer-train"))
    assert {"mer-prep casme2", "mer-prep synth", "mer-prep inspect", "mer-train train", "mer-train predict"} <= set(found)
    missing = [name for name, command in found.items() if not getattr(command.callback, "handles_mer_errors", False)]
    assert not missing, missing


@pytest.fixture
def empty_set(tmp_path) -> Path:
    """A valid shard set whose only shard holds no sample (every clip failed)."""
    out = tmp_path / "empty"
    (out / "shards").mkdir(parents=True)
    sha = write_shard(out / "shards" / "casme2-00000.h5", [], size=16, landmarks=68, config_hash=config_hash({}))
    write_manifest(out, dataset="casme2", config={}, failed=0, class_counts={}, pipeline_version="0",
                   shards=[{"file": "casme2-00000.h5", "n": 0, "sha256": sha}])
    return out


def test_inspect_of_an_empty_set_is_a_clear_error_without_traceback(empty_set):
    result = CliRunner().invoke(prep_cli, ["inspect", str(empty_set)])
    assert result.exit_code == 1
    assert f"Error: {empty_set}: the shard set holds no samples" in result.output
    assert "failures.jsonl" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash


def test_minus_v_adds_the_traceback(empty_set):
    result = CliRunner().invoke(prep_cli, ["-v", "inspect", str(empty_set)])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.output and "contact_sheet" in result.output
    assert "Error: " in result.output


def test_the_mer_prep_entry_point_takes_the_same_path(empty_set, capsys):
    from mer_pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main(["inspect", str(empty_set)])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {empty_set}: the shard set holds no samples") and "Traceback" not in err


def test_mer_train_errors_with_and_without_minus_v(tmp_path):
    missing = tmp_path / "nope"
    plain = CliRunner().invoke(train_cli, ["--shards", str(missing), "-q"])
    assert plain.exit_code == 1 and f"Error: {missing}: no such folder" in plain.output
    assert "Traceback" not in plain.output
    verbose = CliRunner().invoke(train_cli, ["-v", "--shards", str(missing), "-q"])  # -v before the implicit `train`
    assert verbose.exit_code == 1 and f"Error: {missing}: no such folder" in verbose.output
    assert "Traceback (most recent call last)" in verbose.output and "ShardError" in verbose.output


def test_api_errors_name_the_parameter_and_the_cli_the_flag(tmp_path):
    from mer_pipeline.runner import prepare

    with pytest.raises(MerError, match="^shard_size must be at least 1, not 0") as raised:
        prepare("casme2", tmp_path, tmp_path / "out", shard_size=0)
    assert raised.value.param == "shard_size"

    from mer_train import compare, load_config

    with pytest.raises(TrainError, match="^methods: unknown method"):
        compare(load_config(None, {"shards": [str(tmp_path)]}), ["nomethod"], seeds=1)
    result = CliRunner().invoke(train_cli, ["compare", "--shards", str(tmp_path), "--methods", "nomethod", "-q"])
    assert result.exit_code == 1 and "Error: --methods: unknown method(s) nomethod" in result.output


def test_export_maps_classes_to_its_flag(empty_set, tmp_path):
    from mer_pipeline.export import export

    with pytest.raises(MerError, match="^classes: unknown class set 'casme9'"):
        export(empty_set, tmp_path / "x", format="npz", classes="casme9")
    result = CliRunner().invoke(prep_cli, ["export", str(empty_set), str(tmp_path / "x"), "--format", "npz",
                                           "--classes", "casme9"])
    assert result.exit_code == 1 and "Error: --classes: unknown class set 'casme9'" in result.output


def test_synth_names_faces_as_the_flag(tmp_path):
    from mer_pipeline.synth import generate
    from mer_pipeline.synth.errors import SynthFaceError

    (tmp_path / "photos").mkdir()
    with pytest.raises(SynthFaceError, match=f"^faces {tmp_path / 'photos'}: no image files"):
        generate("ckplus", tmp_path / "raw", subjects=1, clips_per_subject=1, faces=tmp_path / "photos")
    _add_synth()
    result = CliRunner().invoke(prep_cli, ["synth", "ckplus", str(tmp_path / "raw"), "--faces", str(tmp_path / "photos")])
    assert result.exit_code == 1 and f"Error: --faces {tmp_path / 'photos'}: no image files" in result.output
