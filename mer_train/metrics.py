"""UF1, UAR, accuracy and the confusion matrix, on predictions pooled over all LOSO folds (MEGC).

UF1 is the mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c); UAR the mean over classes of
recall_c = TP_c / (TP_c + FN_c). Both average over the classes *present in the ground truth* of the
samples scored: a class with no sample (e.g. `others` when scoring one dataset that lacks it) has
no recall and would otherwise count as 0. With that choice UF1 equals scikit-learn's
`f1_score(y, p, labels=<classes in y>, average="macro")` and UAR equals
`balanced_accuracy_score(y, p)`. A class present in the ground truth but never predicted has F1 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; rows are the true class, columns the predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(matrix)
    support, predicted = matrix.sum(1), matrix.sum(0)
    present = np.flatnonzero(support > 0)
    per_class = {}
    for c in present:
        per_class[classes[c]] = {
            "support": int(support[c]),
            "precision": float(tp[c] / predicted[c]) if predicted[c] else 0.0,
            "recall": float(tp[c] / support[c]),
            "f1": float(2 * tp[c] / (support[c] + predicted[c])),  # = 2TP / (2TP + FP + FN)
        }
    scored = list(per_class.values())
    return {
        "n": int(len(y_true)),
        "uf1": float(np.mean([m["f1"] for m in scored])) if scored else float("nan"),
        "uar": float(np.mean([m["recall"] for m in scored])) if scored else float("nan"),
        "accuracy": float(tp.sum() / len(y_true)) if len(y_true) else float("nan"),
        "classes_scored": [classes[c] for c in present],
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def pooled_metrics(y_true: Sequence[int], y_pred: Sequence[int], datasets: Sequence[str],
                   classes: Sequence[str]) -> dict:
    """Metrics of all pooled predictions ("overall") and of each dataset's share ("per_dataset")."""
    y_true, y_pred, datasets = np.asarray(y_true), np.asarray(y_pred), np.asarray(datasets, dtype=object)
    return {
        "overall": classification_metrics(y_true, y_pred, classes),
        "per_dataset": {str(d): classification_metrics(y_true[datasets == d], y_pred[datasets == d], classes)
                        for d in sorted(set(datasets.tolist()))},
    }
