"""MEGC2019 composite: selection by the official list, id spellings, failures for listed samples."""
from pathlib import Path

import openpyxl
import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.datasets.megc2019 import GT_LIST, match_key, parse_sheet, parse_table
from mer_pipeline.errors import AnnotationError, MerError


def write_xlsx(path: Path, rows):
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def touch_frames(folder: Path, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def build_trees(root: Path, casme2_rows, samm_rows, smic_clips):
    """Minimal raw trees: one frame file per frame number onset..offset (empty files: never decoded)."""
    casme2, samm, smic = root / "casme2", root / "samm", root / "smic"
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Estimated Emotion"]
    casme2.mkdir(parents=True)
    write_xlsx(casme2 / "CASME2-coding-20190701.xlsx", [header] + [list(r) for r in casme2_rows])
    for r in casme2_rows:
        touch_frames(casme2 / "CASME2_RAW_selected" / f"sub{int(r[0]):02d}" / r[1], [f"img{r[3]}.jpg", f"img{r[5]}.jpg"])
    samm.mkdir(parents=True)
    write_xlsx(samm / "SAMM_Micro_FACS_Codes_v2.xlsx",
               [["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
                 "Estimated Emotion"]] + [list(r) for r in samm_rows])
    for r in samm_rows:
        touch_frames(samm / "SAMM" / f"{int(r[0]):03d}" / r[1], [f"{int(r[0]):03d}_{r[2]:05d}.jpg"])
    for subject, emotion, clip in smic_clips:
        touch_frames(smic / "SMIC_all_raw" / "HS" / subject / "micro" / emotion / clip, ["image000100.bmp",
                                                                                       "image000101.bmp"])
    return casme2, samm, smic


CASME2_ONE = [("01", "EP02_01f", None, 46, 59, 86, None, "12", "happiness")]
SAMM_ONE = [("006", "006_1_2", 5562, 5588, 5632, "4+7", "Anger")]
SMIC_ONE = [("s1", "negative", "s1_ne_01")]


def scan(casme2, samm, smic, annotations=None):
    return get_adapter("megc2019").scan(annotations=annotations, casme2=casme2, samm=samm, smic=smic)


def test_selection_follows_the_list_across_id_spellings(tmp_path):
    trees = build_trees(
        tmp_path,
        casme2_rows=[("01", "EP02_01f", None, 46, 59, 86, None, "12", "happiness"),
                     ("01", "EP03_02", None, 131, 139, 161, None, "18", "others")],  # not listed: left out
        samm_rows=[("006", "006_1_2", 5562, 5588, 5632, "4+7", "Anger"),
                   ("028", "028_4_1", 1071, 1143, 1134, "A14C", "Contempt")],  # apex outside: spotted, kept
        smic_clips=[("s1", "negative", "s1_ne_01"), ("s3", "positive", "s3_po_08")],
    )
    listed = write_xlsx(tmp_path / "gt.xlsx", [
        ["casme2", "sub01", "EP02_01f", 1], ["samm", 6, "006_1_2", 0], ["samm", 28, "028_4_1", 0],
        ["smic", "s01", "s01_ne_01", 0], ["smic", "s03", "s03_po_08", 1],
        ["samm", 7, "007_7_1", 2],  # listed but absent from the tree
    ])
    result = scan(*trees, annotations=listed)
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["casme2/sub01/EP02_01f", "samm/006/006_1_2", "samm/028/028_4_1",
                             "smic/s1/s1_ne_01", "smic/s3/s3_po_08"]
    assert by_id["samm/006/006_1_2"].emotion == "Anger"  # the dataset's own emotion is kept
    assert by_id["samm/006/006_1_2"].extra["megc2019_class"] == "negative"
    assert by_id["smic/s3/s3_po_08"].extra["megc2019_label"] == 1
    assert by_id["samm/028/028_4_1"].apex is None
    assert not any("MEGC2019 list says" in n for s in result.samples for n in s.notes)
    (failure,) = result.failures
    assert failure.sample_id == "samm/007/007_7_1" and "gt.xlsx row 6" in failure.message


def test_listed_sample_rejected_by_its_adapter_carries_the_cause(tmp_path):
    trees = build_trees(tmp_path, casme2_rows=[("04", "EP12_01f", None, 261, "/", 200, None, "4", "disgust")],
                        samm_rows=SAMM_ONE, smic_clips=SMIC_ONE)
    listed = write_xlsx(tmp_path / "gt.xlsx", [["casme2", "sub04", "EP12_01f", 0]])
    (failure,) = scan(*trees, annotations=listed).failures
    assert failure.sample_id == "casme2/sub04/EP12_01f" and "rejected" in failure.message


def test_disagreeing_label_is_noted(tmp_path):
    trees = build_trees(tmp_path, CASME2_ONE, SAMM_ONE, SMIC_ONE)
    listed = write_xlsx(tmp_path / "gt.xlsx", [["samm", 6, "006_1_2", 1]])
    (sample,) = scan(*trees, annotations=listed).samples
    assert any("maps to negative but the MEGC2019 list says positive" in n for n in sample.notes)


def test_all_three_trees_are_required(tmp_path):
    with pytest.raises(MerError, match="--samm --smic"):
        get_adapter("megc2019").scan(annotations=None, casme2=tmp_path)


def test_match_key_spellings():
    assert match_key("samm", "6", "006_1_2") == match_key("samm", "006", "006_1_2")
    assert match_key("smic", "s01", "s01_ne_01") == match_key("smic", "s1", "s1_ne_01")
    assert match_key("casme2", "sub01", "EP01_2") != match_key("casme2", "sub01", "EP01_02")


def test_packaged_list_is_the_official_one():
    listed = parse_sheet(GT_LIST)
    counts = {name: sum(item.dataset == name for item in listed) for name in ("casme2", "samm", "smic")}
    assert (len(listed), counts) == (442, {"casme2": 145, "samm": 133, "smic": 164})
    classes = [sum(item.megc_class == c and item.dataset == d for item in listed)
               for d in ("smic", "casme2", "samm") for c in ("negative", "positive", "surprise")]
    assert classes == [70, 51, 43, 88, 32, 25, 92, 26, 15]  # the guidelines PDF table


def test_packaged_list_is_the_reference_copy(reference_annotations):
    assert GT_LIST.read_bytes() == (reference_annotations / "combined_3class_gt.csv").read_bytes()


def test_malformed_list_rows_are_annotation_errors(tmp_path):
    with pytest.raises(AnnotationError, match="row 2"):
        parse_table([["samm", 6, "006_1_2", 0], ["casme", "x", "y", 4]], tmp_path / "gt.csv")


def test_composite_from_the_real_sheets_is_442(reference_annotations, tmp_path):
    """Skeleton trees built from the real CASME II and SAMM sheets: the official list selects 145 + 133 + 164."""
    from mer_pipeline.annotations import as_int, find_header, read_table, rows_as_dicts
    from mer_pipeline.datasets import casme2 as casme2_adapter
    from mer_pipeline.datasets.samm import parse_sheet as parse_samm

    casme2, samm, smic = tmp_path / "casme2", tmp_path / "samm", tmp_path / "smic"
    sheet = reference_annotations / "CASME2-coding-20190701.xlsx"
    table = read_table(sheet)
    for row in rows_as_dicts(table, find_header(table, casme2_adapter.COLUMNS, sheet)):
        folder = casme2 / "CASME2_RAW_selected" / f"sub{as_int(row['Subject']):02d}" / row["Filename"]
        touch_frames(folder, [f"img{row['OnsetFrame']}.jpg"])
    casme2.joinpath("CASME2-coding-20190701.xlsx").symlink_to(sheet)
    for label in parse_samm(reference_annotations / "SAMM_Micro_FACS_Codes_v2.xlsx"):
        touch_frames(samm / "SAMM" / label.subject / label.clip, [f"{label.subject}_{label.onset:05d}.jpg"])
    samm.joinpath("SAMM_Micro_FACS_Codes_v2.xlsx").symlink_to(reference_annotations / "SAMM_Micro_FACS_Codes_v2.xlsx")
    emotions = {"ne": "negative", "po": "positive", "sur": "surprise"}
    for item in parse_sheet(GT_LIST):
        if item.dataset == "smic":
            subject = f"s{int(item.subject[1:])}"
            clip = subject + item.clip[len(item.subject):]
            touch_frames(smic / "SMIC_all_raw" / "HS" / subject / "micro" / emotions[clip.split("_")[1]] / clip,
                         ["image000001.bmp", "image000002.bmp"])
    result = scan(casme2, samm, smic)
    counts = {name: sum(s.dataset == name for s in result.samples) for name in ("casme2", "samm", "smic")}
    assert (len(result.samples), counts) == (442, {"casme2": 145, "samm": 133, "smic": 164})
    assert not result.failures
    assert not any("MEGC2019 list says" in n for s in result.samples for n in s.notes)
