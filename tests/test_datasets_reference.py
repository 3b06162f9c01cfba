"""The real annotation files (../shared/reference/annotations beside the clone) parse to the published counts.

These files are not ours to ship; the tests skip, saying why, where that folder is absent (the
`reference_annotations` fixture of tests/conftest.py).
"""
from collections import Counter

from mer_pipeline.annotations import as_text, find_header, read_table, rows_as_dicts
from mer_pipeline.datasets import casme2, casme3, megc2019, samm

CASME2_5 = {"happiness", "disgust", "repression", "surprise", "others"}
SAMM_5 = {"Anger", "Contempt", "Happiness", "Surprise", "Other"}


def casme2_rows(reference_annotations):
    sheet = reference_annotations / "CASME2-coding-20190701.xlsx"
    table = read_table(sheet)
    return rows_as_dicts(table, find_header(table, casme2.COLUMNS, sheet))


def test_casme2_2019_coding_255_rows_249_in_five_classes(reference_annotations):
    rows = casme2_rows(reference_annotations)
    assert len(rows) == 255
    assert len({(as_text(r["Subject"]), r["Filename"]) for r in rows}) == 255
    assert sum(r["Estimated Emotion"] in CASME2_5 for r in rows) == 249


def test_samm_159_rows_136_in_five_classes(reference_annotations):
    labels = samm.parse_sheet(reference_annotations / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert len(labels) == 159 and not any(l.error for l in labels)
    assert len({l.subject for l in labels}) == 29
    assert sum(l.emotion in SAMM_5 for l in labels) == 136
    assert Counter(l.emotion for l in labels)["Anger"] == 57
    outside = sorted(l.clip for l in labels if not (l.onset <= l.apex <= l.offset))
    assert outside == ["028_4_1", "032_3_1"]


def test_casme3_part_a_860_mes_with_the_four_sourced_fixes(reference_annotations):
    labels = casme3.parse_sheet(reference_annotations / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    assert len(labels) == 860 and len({l.subject for l in labels}) == 94
    assert len({(l.subject, l.clip) for l in labels}) == 860  # letter + onset makes the id unique
    fixed = {(l.subject, l.clip): (l.onset, l.apex, l.offset) for l in labels if any("->" in n for n in l.notes)}
    assert fixed == {("spNO.149", "d_112"): (112, 160, 358), ("spNO.216", "d_2647"): (2647, 2668, 2694),
                     ("spNO.40", "e_1812"): (1812, 1824, 1845), ("spNO.40", "e_2327"): (2327, 2363, 2403)}
    assert sum(l.apex is None for l in labels) == 55  # apex == onset: spotted
    emotions = Counter(l.emotion for l in labels)
    assert (emotions["disgust"], emotions["others"], emotions["Others"]) == (250, 158, 3)


def test_casme3_fixed_sheet_equals_the_micro_rows_of_the_sibling_file(reference_annotations):
    """After fixes/casme3.csv, JpgIndex_v2 holds exactly the micro-expressions of CAS(ME)3_part_A_v2.xls
    (sheet AU+Emotion): every fix is the value the official sibling file gives."""
    table = read_table(reference_annotations / "CAS(ME)3_part_A_v2.xls", "AU+Emotion")
    micro = [table[0]] + [row for row in table[1:] if row[6] == "Micro-expression"]
    spans = lambda labels: {(l.subject, l.clip): (l.onset, l.apex, l.offset) for l in labels}  # noqa: E731
    fixed = spans(casme3.parse_sheet(reference_annotations / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"))
    assert fixed == spans(casme3.parse_table(micro, reference_annotations / "CAS(ME)3_part_A_v2.xls"))


def test_casme3_macro_3346_and_part_c_165(reference_annotations):
    macro = casme3.parse_sheet(reference_annotations / "CAS(ME)3_part_A_v2.xls", macro=True)
    assert len(macro) == 3346 and all(l.emotion == "" for l in macro)
    part_c = casme3.parse_sheet(reference_annotations / "CAS(ME)3_part_C_ME.xlsx", part="C")
    assert len(part_c) == 165 and len({l.subject for l in part_c}) == 30
    assert Counter(l.emotion for l in part_c) == {"negative": 99, "surprise": 30, "others": 20, "positive": 16}
    assert all("," not in l.action_units and "，" not in l.action_units for l in part_c)


def test_megc2019_list_442_and_consistent_with_the_sheets(reference_annotations):
    listed = megc2019.parse_sheet(reference_annotations / "combined_3class_gt.csv")
    assert Counter(item.dataset for item in listed) == {"smic": 164, "casme2": 145, "samm": 133}
    casme2_emotion = {(f"sub{int(as_text(r['Subject'])):02d}", r["Filename"]): r["Estimated Emotion"] for r in casme2_rows(reference_annotations)}
    samm_emotion = {(l.subject, l.clip): l.emotion for l in samm.parse_sheet(reference_annotations / "SAMM_Micro_FACS_Codes_v2.xlsx")}
    for item in listed:
        if item.dataset == "casme2":
            emotion = casme2_emotion[(item.subject, item.clip)]
        elif item.dataset == "samm":
            emotion = samm_emotion[(f"{int(item.subject):03d}", item.clip)]
        else:
            continue
        assert megc2019.OFFICIAL_MAPPING[item.dataset][emotion.lower()] == item.megc_class, item
    # SAMM = every row but Other; CASME II leaves out the '/' apex and the apex == onset rows
    assert sum(e != "Other" for e in samm_emotion.values()) == 133
    listed_casme2 = {(i.subject, i.clip) for i in listed if i.dataset == "casme2"}
    assert ("sub04", "EP12_01f") not in listed_casme2 and ("sub05", "EP09_05f") not in listed_casme2
