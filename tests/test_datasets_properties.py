"""Property: the annotation parsers of the adapters, fed arbitrary cell contents under a valid (or
arbitrary) header, never raise anything but AnnotationError, and their labels never crash `to_sample`."""
import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from mer_pipeline.datasets import cas2, casme3, megc2019, mmew, samm
from mer_pipeline.datasets._common import to_sample
from mer_pipeline.errors import AnnotationError
from mer_pipeline.sample import Failure, Sample

SOURCE = Path("sheet.xlsx")
cells = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["/", "006_1_2", "spNO.1", "J", "0", "-3", "1e3", "Micro-expression",
                                           "Macro-expression", "3.0000000e+00", " 12 ", "s01_ne_01", "，"]),
    st.datetimes(min_value=datetime.datetime(1990, 1, 1), max_value=datetime.datetime(2030, 1, 1)),
)
rows = st.lists(st.lists(cells, max_size=12), max_size=8)

HEADERS = {
    "samm": ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
             "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"],
    "casme3": ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"],
    "casme3_macro": ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"],
    "casme3_c": ["sub", "count", "onset", "offset", "au", "emotion"],
    "mmew": ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
             "remarks"],
}
PARSERS = {
    "samm": lambda table: samm.parse_table(table, SOURCE),
    "casme3": lambda table: casme3.parse_table(table, SOURCE),
    "casme3_macro": lambda table: casme3.parse_table(table, SOURCE, macro=True),
    "casme3_c": lambda table: casme3.parse_table_c(table, SOURCE),
    "mmew": lambda table: mmew.parse_table(table, SOURCE),
}


def only_annotation_errors(parse, table):
    try:
        labels = parse(table)
    except AnnotationError:
        return []
    return labels


def survives_to_sample(labels):
    for label in labels:
        item = to_sample("x", label, {}, fps=30.0)
        assert isinstance(item, (Sample, Failure))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PARSERS)), body=rows, header_is_valid=st.booleans(), junk=rows)
def test_sheet_parsers_raise_only_annotation_errors(name, body, header_is_valid, junk):
    table = junk[:2] + ([HEADERS[name]] if header_is_valid else []) + body
    survives_to_sample(only_annotation_errors(PARSERS[name], table))


@settings(max_examples=60, deadline=None)
@given(codes=rows, rule1=rows, rule2=rows, macro=st.booleans())
def test_cas2_parsers_raise_nothing(codes, rule1, rule2, macro):
    folders, names = cas2.parse_naming_rule1(rule1), cas2.parse_naming_rule2(rule2)
    labels = only_annotation_errors(lambda t: cas2.parse_table(t, SOURCE, folders, names, "macro" if macro else "micro"),
                                    codes)
    survives_to_sample(labels)


@settings(max_examples=60, deadline=None)
@given(table=rows)
def test_megc2019_list_parser_raises_only_annotation_errors(table):
    only_annotation_errors(lambda t: megc2019.parse_table(t, SOURCE), table)


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.sampled_from(["   3.0000000e+00", "7", "8.0", "inf", "1e400", ""])))
def test_ckplus_label_files_raise_only_annotation_errors(text):
    import tempfile

    from mer_pipeline.datasets.ckplus import EMOTIONS, read_emotion, read_facs

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "S005_001_00000011_emotion.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            assert read_emotion(path) in EMOTIONS
        except AnnotationError:
            pass
        assert isinstance(read_facs(path), str)
