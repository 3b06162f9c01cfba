"""The reference docs generated from the code (docs/generate_*.py) are current.

Every generator exposes DOC (the file it writes) and render(current text) -> the text it would
write; one test per generator, so a new generated page is covered the day its script lands.
Regenerate them all with `make docs`.
"""
import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GENERATORS = sorted(DOCS.glob("generate_*.py"))


def load_generator(path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(DOCS))  # as when run as a script: its siblings are importable
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", GENERATORS, ids=lambda path: path.stem)
def test_the_generated_doc_is_current(script, monkeypatch):
    generator = load_generator(script, monkeypatch)
    text = generator.DOC.read_text(encoding="utf-8") if generator.DOC.exists() else ""
    assert generator.render(text) == text, (
        f"docs/{generator.DOC.name} is stale: run `make docs` (or `python docs/{script.name}`) and commit it")


def test_the_api_page_lists_every_public_module_and_name(monkeypatch):
    """docs/api.md documents what the packages' __all__ lists (and nothing is lost on the way): every
    name of every public module has its entry, each top-level name points at one."""
    generator = load_generator(DOCS / "generate_api.py", monkeypatch)
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    for package in generator.PACKAGES:
        top, *modules = generator.public_modules(importlib.import_module(package))
        for module in modules:
            assert f"## `{module.__name__}`\n" in text, module.__name__
            for name in module.__all__:
                if not isinstance(getattr(module, name), type(module)):
                    assert f"### `{module.__name__}.{name}`\n" in text, f"{module.__name__}.{name}"
        for name in top.__all__:
            assert f"`{package}.{name}`" in text, f"{package}.{name}"


def test_a_name_listed_in_all_but_gone_is_an_error_that_names_it(monkeypatch):
    """A module renamed without its package's __all__ following stops the generator with the fix."""
    generator = load_generator(DOCS / "generate_api.py", monkeypatch)
    import mer_train

    monkeypatch.setattr(mer_train, "__all__", [*mer_train.__all__, "no_such_module"])
    with pytest.raises(SystemExit, match=r"mer_train.__all__ names 'no_such_module', which is neither defined there "
                                         r"nor a submodule: fix mer_train's __all__ \(a renamed module\?\)"):
        generator.render("")
