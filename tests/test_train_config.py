"""Configs: YAML files fill a frozen dataclass; unknown keys and bad values are errors naming them."""
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from mer_train.cli import main
from mer_train.config import TrainConfig, load_config, parse_assignment
from mer_train.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_shipped_config_loads_and_lightman_yaml_is_the_default():
    for name in ("lightman", "erm", "multitask", "maml", "ci", "cpu"):
        config = load_config(CONFIGS / f"{name}.yaml")
        assert config.method == (name if name not in ("ci", "cpu") else "lightman")
    assert load_config(CONFIGS / "lightman.yaml") == TrainConfig()


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("method: erm\nstep: 10\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"unknown config key 'step' in {path}; did you mean 'steps'?"


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("colour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'colour' in .*mine.yaml; known keys: shards, "):
        load_config(path)


def test_overrides_win_and_are_checked_too():
    config = load_config(CONFIGS / "ci.yaml", {"steps": 7, "shards": "out/casme2", "lr": "1e-3"})
    assert (config.steps, config.shards, config.lr) == (7, ("out/casme2",), 0.001)
    with pytest.raises(ConfigError, match="unknown config key 'stepz' in overrides; did you mean 'steps'"):
        load_config(CONFIGS / "ci.yaml", {"stepz": 7})


@pytest.mark.parametrize("text, message", [
    ("steps: many", "steps = 'many' in {path}: expected an integer"),
    ("steps: 0", "steps = 0 in {path}: must be at least 1"),
    ("first_order: yes please", "first_order = 'yes please' in {path}: expected true or false"),
    ("method: adam", "method = 'adam' in {path}: choose one of lightman, erm, multitask, maml"),
    ("classes: casme2-7", "classes = 'casme2-7' in {path}: choose one of casme2-5, samm-5, megc2019-3, casme3-7, as-written"),
    ("- a\n- list", "{path}: a config is a mapping of keys to values, got list"),
])
def test_bad_values_name_the_field_and_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == message.format(path=path)


def test_config_is_frozen_and_replace_checks():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3
    assert config.replace(method="erm").method == "erm"
    with pytest.raises(ConfigError):
        config.replace(inner_lrr=0.1)


def test_set_assignments_are_read_as_yaml():
    assert parse_assignment("first_order=true") == ("first_order", True)
    assert parse_assignment("steps=100") == ("steps", 100)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignment("steps")


def test_cli_reports_an_unknown_key_in_the_config_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("meta_btach: 3\n")
    result = CliRunner().invoke(main, ["--shards", str(tmp_path), "--config", str(path)])
    assert result.exit_code == 1
    assert result.output == f"Error: unknown config key 'meta_btach' in {path}; did you mean 'meta_batch'?\n"


def test_a_bad_override_is_blamed_on_the_override_not_the_file():
    with pytest.raises(ConfigError, match=r"^steps = 0 in overrides: must be at least 1$"):
        load_config(CONFIGS / "ci.yaml", {"steps": 0})
    with pytest.raises(ConfigError, match=r"^steps = 'x' in overrides: expected an integer$"):
        load_config(CONFIGS / "ci.yaml", {"steps": "x"})
