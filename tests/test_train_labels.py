"""Class sets: emotions as written in each dataset map to a run's classes (datasets.md section 9)."""
import pytest

from mer_train.errors import LabelSetError
from mer_train.labels import CLASS_SETS, canonical_emotion, infer_class_set


def classify(set_name, emotion, dataset=""):
    index = CLASS_SETS[set_name].index(emotion, dataset)
    return None if index is None else CLASS_SETS[set_name].classes[index]


@pytest.mark.parametrize("written, canonical", [("Happiness", "happiness"), ("happy", "happiness"),
                                                ("REPRESSION", "repression"), ("Others", "others"),
                                                ("other", "others"), (" Sad ", "sadness")])
def test_case_and_synonyms_are_folded(written, canonical):
    assert canonical_emotion(written) == canonical


def test_casme2_5():
    assert [classify("casme2-5", e) for e in ("Happiness", "disgust", "Repression", "SURPRISE", "others")] == \
        ["happiness", "disgust", "repression", "surprise", "others"]
    assert classify("casme2-5", "fear") is None and classify("casme2-5", "sadness") is None
    assert classify("casme2-5", "happy", "ckplus") == "happiness"  # CK+ macro-expressions map too
    assert classify("casme2-5", "anger", "ckplus") is None


def test_samm_5():
    assert [classify("samm-5", e, "samm") for e in ("Anger", "Contempt", "Happiness", "Surprise", "Other")] == \
        ["anger", "contempt", "happiness", "surprise", "other"]
    assert {classify("samm-5", e, "samm") for e in ("Disgust", "Fear", "Sadness")} == {None}


def test_megc2019_3_follows_the_official_mapping():
    negative = [("casme2", "disgust"), ("casme2", "repression"), ("samm", "Anger"), ("samm", "Contempt"),
                ("samm", "Disgust"), ("samm", "Fear"), ("samm", "Sadness"), ("smic", "negative"),
                ("ckplus", "anger"), ("ckplus", "contempt")]
    assert {classify("megc2019-3", e, d) for d, e in negative} == {"negative"}
    assert classify("megc2019-3", "happiness", "casme2") == "positive"
    assert classify("megc2019-3", "positive", "smic") == "positive"
    assert classify("megc2019-3", "happy", "ckplus") == "positive"
    assert classify("megc2019-3", "Surprise", "samm") == "surprise"
    # CASME II fear and sadness are not folded into negative; others are omitted everywhere
    assert classify("megc2019-3", "fear", "casme2") is None and classify("megc2019-3", "sadness", "casme2") is None
    assert classify("megc2019-3", "others", "casme2") is None and classify("megc2019-3", "Other", "samm") is None


def test_casme3_7_accepts_others_in_any_case():
    assert [classify("casme3-7", e) for e in ("happy", "Fear", "sad", "disgust", "Anger", "surprise", "Others")] == \
        ["happy", "fear", "sad", "disgust", "anger", "surprise", "others"]


def test_default_class_set_is_inferred_only_when_unambiguous():
    assert infer_class_set(["casme2"]) == "casme2-5"
    assert infer_class_set(["SAMM"]) == "samm-5"
    assert infer_class_set(["casme3"]) == "casme3-7"
    assert infer_class_set(["casme2", "samm", "smic"]) == "megc2019-3"
    with pytest.raises(LabelSetError, match=r"cannot infer the class set from dataset\(s\) mmew; pass --classes "
                                            r"casme2-5\|samm-5\|megc2019-3\|casme3-7"):
        infer_class_set(["mmew"])


def test_the_class_sets_have_one_home_in_stage_one():
    """mer_train.labels keeps its names, and they are mer_pipeline.classes' own objects (no copy)."""
    import mer_pipeline.classes as classes
    import mer_train.labels as labels

    assert labels.__all__ and all(getattr(labels, name) is getattr(classes, name) for name in labels.__all__)
    assert LabelSetError is classes.LabelSetError


def test_stage_one_never_imports_stage_two():
    import re
    from pathlib import Path

    import mer_pipeline

    root = Path(mer_pipeline.__file__).parent
    offenders = [str(p.relative_to(root)) for p in sorted(root.rglob("*.py"))
                 if re.search(r"^\s*(from|import)\s+mer_train\b", p.read_text(), re.M)]
    assert not offenders, f"stage one imports stage two in {offenders}"
