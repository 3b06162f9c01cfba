"""Finding what a package's modules declare: the dataset adapters (`mer_pipeline.datasets`, each
module declares `ADAPTER`) and the synthetic layouts (`mer_pipeline.synth.layouts`, each declares
`LAYOUT`), by one mechanism.

Every module of the package whose name does not start with `_` is imported and must declare one
object under `attribute`, named like the module (`datasets/casme2.py` declares `ADAPTER` with
`name="casme2"`). Helpers shared by those modules start with `_` (`datasets/_common.py`,
`layouts/_base.py`). Adding a dataset is adding a file; no list of modules is kept by hand. A module
that fails to import or declares nothing is an error naming it, never silently skipped: a dataset
must not vanish from `mer-prep list` because of a typo or a missing dependency.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def discover(package: str, attribute: str, kind: type) -> dict[str, Any]:
    """{module name: the `kind` object it declares as `attribute`} for every public module of `package`,
    sorted by name. Raises ImportError naming the module that fails to import or to declare one."""
    root = importlib.import_module(package)
    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as error:  # any failure: the message names the module, the cause is chained
            raise ImportError(f"{name} failed to import ({type(error).__name__}: {error}); fix the module, or "
                              f"rename it to _{info.name}.py if it is a helper", name=name) from error
        declared = getattr(module, attribute, None)
        if not isinstance(declared, kind):
            raise ImportError(f"{name} declares no {attribute} (a {kind.__name__}); every public module of {package} "
                              f"must declare one, helpers start with '_'", name=name)
        if declared.name != info.name:
            raise ImportError(f"{name} declares {attribute} named {declared.name!r}; name it {info.name!r} "
                              "like its file", name=name)
        found[info.name] = declared
    return found
