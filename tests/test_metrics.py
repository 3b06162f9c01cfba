"""UF1 / UAR / accuracy of mer_train.metrics against scikit-learn on the same predictions."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from mer_train.metrics import classification_metrics, pooled_metrics

CLASSES = ("happiness", "disgust", "repression", "surprise", "others")


def sklearn_reference(y_true, y_pred):
    present = sorted(set(np.asarray(y_true).tolist()))  # the classes present in the ground truth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": expected here
        return (f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
                balanced_accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("seed", range(20))
def test_uf1_uar_equal_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    # some classes absent from the labels, some from the predictions
    y_true = rng.choice(rng.permutation(5)[: rng.integers(2, 6)], n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(rng.permutation(5)[: rng.integers(1, 6)], n))
    metrics = classification_metrics(y_true, y_pred, CLASSES)
    uf1, uar = sklearn_reference(y_true, y_pred)
    assert metrics["uf1"] == pytest.approx(uf1, abs=1e-12)
    assert metrics["uar"] == pytest.approx(uar, abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert np.array_equal(metrics["confusion"], confusion_matrix(y_true, y_pred, labels=range(5)))


def test_class_absent_from_ground_truth_is_not_scored_and_never_predicted_class_scores_zero():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 4, 0, 0]  # class 4 predicted but absent from the labels; class 1 never predicted
    metrics = classification_metrics(y_true, y_pred, CLASSES)
    assert metrics["classes_scored"] == ["happiness", "disgust"]
    assert metrics["per_class"]["disgust"] == {"support": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert metrics["uf1"] == pytest.approx((2 * 1 / (2 + 3)) / 2)  # happiness F1 = 2TP/(2TP+FP+FN) = 2/5
    assert metrics["uar"] == pytest.approx(0.25)


def test_pooled_metrics_score_each_dataset_on_its_own_classes():
    y_true = np.array([0, 1, 2, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 0, 0, 1])
    datasets = np.array(["casme2", "casme2", "casme2", "samm", "samm", "samm"], dtype=object)
    metrics = pooled_metrics(y_true, y_pred, datasets, ("negative", "positive", "surprise"))
    assert metrics["overall"]["uf1"] == pytest.approx(sklearn_reference(y_true, y_pred)[0])
    for name in ("casme2", "samm"):
        part = datasets == name
        uf1, uar = sklearn_reference(y_true[part], y_pred[part])
        assert metrics["per_dataset"][name]["uf1"] == pytest.approx(uf1)
        assert metrics["per_dataset"][name]["uar"] == pytest.approx(uar)
    assert metrics["per_dataset"]["samm"]["classes_scored"] == ["negative", "positive"]
