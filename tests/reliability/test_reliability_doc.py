"""docs/reliability.md names the test behind every guarantee: each one it names must exist."""
import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "reliability.md"


def test_every_test_named_in_docs_reliability_exists():
    named = set(re.findall(r"`((?:reliability/)?test_\w+\.py)::(test_\w+)", DOC.read_text(encoding="utf-8")))
    assert len(named) > 40
    missing = []
    for file, name in sorted(named):
        source = TESTS / file
        functions = {n.name for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef)} \
            if source.is_file() else set()
        if name not in functions:
            missing.append(f"{file}::{name}")
    assert not missing, missing


def test_every_reliability_test_is_listed_in_docs_reliability():
    listed = set(re.findall(r"::(test_\w+)", DOC.read_text(encoding="utf-8")))
    here = Path(__file__).parent
    tests = {f"{path.name}::{node.name}" for path in here.glob("test_*.py")
             for node in ast.parse(path.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and path != Path(__file__)}
    assert not {t for t in tests if t.split("::")[1] not in listed}
