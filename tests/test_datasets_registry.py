"""Every adapter is registered, documented, and reachable from the command line with its own options."""
import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from mer_pipeline.datasets import _ADAPTER_MODULES, available

DOCS = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def test_every_adapter_module_registers_its_dataset():
    assert set(available()) >= set(_ADAPTER_MODULES)


@pytest.mark.parametrize("name", sorted(_ADAPTER_MODULES))
def test_adapter_contract(name):
    adapter = available()[name]
    module = inspect.getmodule(adapter.scan)
    assert module.__doc__ and "Quirks handled" in module.__doc__, f"{name}: the module docstring lists no quirks"
    assert adapter.kind in ("micro", "macro") and adapter.description
    params = inspect.signature(adapter.scan).parameters
    assert "annotations" in params
    for option in adapter.options:
        assert option.name in params, f"{name}: option --{option.name} is not a parameter of scan()"
    assert f"(`{name}`)" in DOCS.read_text(), f"docs/datasets.md has no section for {name}"


@pytest.mark.parametrize("name, expected", [("smic", ["--subset"]), ("casme3", ["--part", "--macro"]),
                                            ("cas2", ["--macro"]), ("oulu", ["--spectrum", "--lighting"]),
                                            ("megc2019", ["--casme2", "--samm", "--smic"])])
def test_dataset_options_reach_the_command_line(name, expected):
    from mer_pipeline.cli import cli

    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    for option in expected:
        assert option in result.output
    assert ("RAW OUT" in result.output) == (name != "megc2019")
