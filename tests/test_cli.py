"""The mer-prep command line: help texts, errors, and documentation coverage."""
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mer_pipeline.cli import _add_synth, cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def runner():
    _add_synth()
    return CliRunner()


def test_top_level_help_lists_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("casme2", "verify", "inspect", "list"):
        assert name in result.output


def test_every_command_has_help_with_an_example(runner):
    ctx = cli.make_context("mer-prep", ["--help"], resilient_parsing=True)
    for name in cli.list_commands(ctx):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.output, name


def test_unknown_dataset_lists_the_known_ones(runner):
    result = runner.invoke(cli, ["casme9", "raw", "out"])
    assert result.exit_code == 2
    assert "unknown dataset or command 'casme9'" in result.output
    assert "casme2" in result.output


def test_missing_raw_folder(runner, tmp_path):
    result = runner.invoke(cli, ["casme2", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_wrong_root_says_what_was_expected(tmp_path, capsys):
    from mer_pipeline.cli import main

    (tmp_path / "raw").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["casme2", str(tmp_path / "raw"), str(tmp_path / "out"), "-q"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "no CASME II frame tree found" in error and "CASME2_RAW_selected" in error and str(tmp_path / "raw") in error


def test_list_shows_datasets_backends_and_flows(runner):
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0
    assert "casme2" in result.output and "dlib, mediapipe" in result.output and "tvl1" in result.output


def test_every_command_is_documented(runner):
    text = (DOCS / "cli.md").read_text()
    ctx = cli.make_context("mer-prep", ["--help"], resilient_parsing=True)
    for name in cli.list_commands(ctx):
        assert re.search(rf"mer-prep {re.escape(name)}\b", text), f"docs/cli.md lacks `mer-prep {name}`"
    for option in ("--annotations", "--backend", "--size", "--flow", "--stabilize", "--keep-frames", "--workers",
                   "--scheduler", "--shard-size", "--limit", "--overwrite", "--fail-fast"):
        assert option in text, option
    train_cli = pytest.importorskip("mer_train.cli")
    tctx = train_cli.main.make_context("mer-train", ["--help"], resilient_parsing=True) if hasattr(train_cli.main, "make_context") else None
    assert "mer-train" in text and "mer-train compare" in text
    if tctx is not None and hasattr(train_cli.main, "list_commands"):
        for name in train_cli.main.list_commands(tctx):
            assert f"mer-train {name}" in text, f"docs/cli.md lacks `mer-train {name}`"


