"""Property: the CASME II coding-sheet parser (`casme2.parse_sheet` as `casme2.scan` uses it, the one sheet
parser that tests/test_datasets_properties.py does not reach) takes any cell contents without crashing, raises
only AnnotationError, and accounts for every row: each non-empty row becomes one sample or one
failure naming its row, and every sample it yields is usable."""
from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from mer_pipeline.datasets import casme2
from mer_pipeline.errors import AnnotationError

HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
          "Estimated Emotion"]
FOLDERS = {("sub01", "EP01_01"): range(10, 20), ("sub02", "EP02_02f"): range(5, 9), ("sub12", "EP09_06"): range(1, 4)}

cells = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["/", "1_2", "-", " 12 ", "3.0", "1e1", "，", "sub"]),
    st.datetimes(min_value=datetime.datetime(1990, 1, 1), max_value=datetime.datetime(2030, 1, 1)),
)


def mostly(likely, other, share=7):
    """`likely` in `share` of 10 draws (one_of would weigh each branch of a nested one_of alike)."""
    return st.integers(0, 9).flatmap(lambda k: likely if k < share else other)


frames = mostly(st.one_of(st.integers(0, 25), st.sampled_from(["12", 12.0, "15"])), cells)
plausible = st.tuples(
    st.sampled_from(["1", "01", 1, 1.0, "sub01", "2", 2, "12", "3", "x"]),
    st.sampled_from(["EP01_01", "ep01_01", "EP02_02f", "EP09_06", "EP99", None]),
    cells, frames, frames, frames, cells, cells, cells,
).map(list)


def _matching(key):
    numbers = mostly(st.integers(min(FOLDERS[key]) - 2, max(FOLDERS[key]) + 2), frames)
    subject = st.sampled_from([key[0][3:], int(key[0][3:]), float(key[0][3:]), key[0]])
    return st.tuples(subject, st.just(key[1]), cells, numbers, numbers, numbers, cells, cells, cells).map(list)


# rows that name a real folder (sub12/EP09_06 is reached by `plausible` only: its fix refuses most values)
matching = st.sampled_from([("sub01", "EP01_01"), ("sub02", "EP02_02f")]).flatmap(_matching)
rows = st.lists(mostly(matching, st.one_of(plausible, st.lists(cells, max_size=10)), share=6), max_size=8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("casme2-property")
    for (subject, clip), numbers in FOLDERS.items():
        folder = raw / "CASME2_RAW_selected" / subject / clip
        folder.mkdir(parents=True)
        for number in numbers:
            (folder / f"img{number}.jpg").touch()  # the parser lists names only
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=rows, junk=st.lists(st.lists(cells, max_size=6), max_size=2), header_is_valid=st.sampled_from([True, True, True, False]))
def test_casme2_sheet_parser_accounts_for_every_row(tree, body, junk, header_is_valid, monkeypatch_module):
    table = junk + ([HEADER] if header_is_valid else []) + body
    monkeypatch_module.setattr(casme2, "read_table", lambda path: table)
    sheet = tree / "CASME2-coding-20190701.xlsx"
    try:
        result = casme2.scan(tree, annotations=sheet)
    except AnnotationError as error:
        assert sheet.name in str(error) or "Subject" in str(error) or "fix" in str(error)
        return
    event(f"samples: {min(len(result.samples), 2)}")
    ids = [s.sample_id for s in result.samples]
    assert len(ids) == len(set(ids))
    for sample in result.samples:
        inside = [n for n in sample.frames if sample.onset <= n <= sample.offset]
        assert inside and 0 <= sample.onset <= sample.offset
        assert sample.apex is None or sample.onset <= sample.apex <= sample.offset
    row_failures = [f for f in result.failures if f.message.startswith(f"{sheet.name} row ")]
    folder_failures = [f for f in result.failures if "folder has no row" in f.message]
    assert len(row_failures) + len(folder_failures) == len(result.failures)
    header_at = next(i for i, row in enumerate(table) if {"Subject", "Filename", "OnsetFrame", "ApexFrame",
                                                         "OffsetFrame"} <= {str(c).strip() for c in row if c})
    filled = [row for row in table[header_at + 1:] if any(c is not None for c in row)]
    assert len(result.samples) + len(row_failures) == len(filled)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
