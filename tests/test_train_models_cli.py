"""`mer-train --model M`: any registered model runs a LOSO with nothing else, at its own input size."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mer_train.cli import main
from mer_train.models import get_input_spec

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("model,method", [("ststnet", "lightman"), ("htnet_lite", "multitask"), ("sssnet", "erm")])
def test_the_model_flag_takes_the_model_s_own_input_size(fake_root, tmp_path, model, method):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--config", str(CI), "--model", model,
                                       "--method", method, "--set", "steps=2", "--scheduler", "synchronous",
                                       "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"] == model and saved["input_size"] == get_input_spec(model).size
    assert "UF1" in result.output


def test_an_explicit_input_size_wins_and_an_unknown_model_is_named(fake_root, tmp_path):
    from mer_train.cli import _config

    assert _config(str(CI), ("input_size=40",), model="ststnet").input_size == 40
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--model", "resnet9000", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "resnet9000" in result.output
