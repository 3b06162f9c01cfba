"""Every dataset is one adapter file plus one synth layout file, found by one discovery: each adapter is
documented and reachable from the command line with its own options, each pairs with a layout."""
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mer_pipeline.datasets as datasets_package
import mer_pipeline.synth.layouts as layouts_package
from mer_pipeline.datasets import Adapter, Option, available
from mer_pipeline.discover import discover
from mer_pipeline.synth.layouts import LAYOUTS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def public_modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}


def test_every_module_file_is_found_by_the_discovery():
    assert set(available()) == public_modules(datasets_package)
    assert set(LAYOUTS) == public_modules(layouts_package)
    assert "casme2" in available() and "casme2" in LAYOUTS  # the discovery found something at all


@pytest.mark.parametrize("name", sorted(available()))
def test_every_adapter_has_a_synth_layout(name):
    """Pairs from the discovery, not from a list: a new adapter without a layout fails here."""
    adapter = available()[name]
    if adapter.sources:  # a composite (MEGC2019) is made of its sources' trees
        missing = [s for s in adapter.sources if s not in LAYOUTS or s not in available()]
        assert not missing, f"{name}: sources without an adapter or a layout: {missing}"
        return
    assert name in LAYOUTS, f"adapter {name} has no mer_pipeline/synth/layouts/{name}.py"
    layout = LAYOUTS[name]
    assert layout.kind == adapter.kind, name
    assert adapter.fps in (layout.fps, 0.0), name  # 0: the recording gives its own (videos)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_synth_layout_has_an_adapter(name):
    assert name in available(), f"layout {name} has no mer_pipeline/datasets/{name}.py"
    assert available()[name].takes_raw


@pytest.mark.parametrize("name", sorted(available()))
def test_adapter_contract(name):
    adapter = available()[name]
    module = inspect.getmodule(adapter.scan)
    assert module.__name__ == f"mer_pipeline.datasets.{name}"
    assert module.__doc__ and "Quirks handled" in module.__doc__, f"{name}: the module docstring lists no quirks"
    assert "import click" not in inspect.getsource(module), f"{name}: adapters declare options as data"
    assert adapter.kind in ("micro", "macro") and adapter.description
    params = inspect.signature(adapter.scan).parameters
    assert "annotations" in params
    for option in adapter.options:
        assert isinstance(option, Option)
        assert option.name in params, f"{name}: option --{option.name} is not a parameter of scan()"
        if not option.required:
            assert params[option.name].default == option.default, f"{name}: --{option.name} defaults differ"
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


def test_options_become_click_options_with_their_type_default_and_choices():
    from mer_pipeline.cli import cli

    params = {p.name: p for p in cli.get_command(None, "smic").params}
    subset = params["subset"]
    assert subset.default == "HS" and subset.show_default and tuple(subset.type.choices) == ("HS", "VIS", "NIR")
    assert subset.type.convert("vis", subset, None) == "VIS"  # case-insensitive, passed as spelled in the adapter
    macro = {p.name: p for p in cli.get_command(None, "cas2").params}["macro"]
    assert macro.is_flag and macro.default is False
    megc = {p.name: p for p in cli.get_command(None, "megc2019").params}
    assert all(megc[s].required and megc[s].type.exists for s in ("casme2", "samm", "smic"))
    assert "raw" not in megc


def test_source_folders_are_left_out_of_the_recipe_other_options_kept():
    """The config hash must not depend on where the MEGC2019 trees are, but on SMIC's --subset it must."""
    megc, smic = available()["megc2019"], available()["smic"]
    assert megc.recorded_options({"casme2": Path("/a"), "samm": Path("/b"), "smic": Path("/c")}) == {}
    assert smic.recorded_options({"subset": "HS"}) == {"subset": "HS"}


# ---- the discovery itself -------------------------------------------------------------------------

def _package(tmp_path, monkeypatch, files: dict[str, str]) -> str:
    name = f"fake_adapters_{len(files)}_{abs(hash(tuple(files.values()))) % 10**8}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for file, text in files.items():
        (folder / file).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    return name


DECLARES = ("from pathlib import Path\nfrom mer_pipeline.datasets import Adapter\n"
            "def scan(raw, annotations=None): ...\nADAPTER = Adapter('{name}', scan, description='x')\n")


def test_discovery_finds_declared_modules_and_skips_helpers(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, {"alpha.py": DECLARES.format(name="alpha"),
                                               "_helper.py": "VALUE = 1\n"})
    found = discover(package, "ADAPTER", Adapter)
    assert list(found) == ["alpha"] and found["alpha"].name == "alpha"


def test_a_module_that_fails_to_import_is_an_error_naming_it(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, {"alpha.py": DECLARES.format(name="alpha"),
                                               "broken.py": "import a_module_that_is_not_installed\n"})
    with pytest.raises(ImportError, match=rf"{package}\.broken failed to import \(ModuleNotFoundError"):
        discover(package, "ADAPTER", Adapter)


def test_a_module_that_declares_nothing_or_another_name_is_an_error(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, {"quiet.py": "X = 1\n"})
    with pytest.raises(ImportError, match=rf"{package}\.quiet declares no ADAPTER"):
        discover(package, "ADAPTER", Adapter)
    package = _package(tmp_path, monkeypatch, {"beta.py": DECLARES.format(name="gamma")})
    with pytest.raises(ImportError, match="declares ADAPTER named 'gamma'; name it 'beta'"):
        discover(package, "ADAPTER", Adapter)
