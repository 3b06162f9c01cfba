"""The robustness knobs of the LightmanNet study (docs/method.md, Results): `subject_fraction` and
`label_noise` change a fold's training data only, drawn with the fold's seed; the test subject's
samples and labels are never touched, and at their defaults a run is exactly what it was before.
"""
import numpy as np
import pytest
import torch

import mer_train
from mer_train import trainer
from mer_train.config import load_config
from mer_train.data import flip_labels, keep_subjects, load_data, training_set
from mer_train.errors import ConfigError

from test_train import CI, SUBJECTS


@pytest.fixture(scope="module")
def data(fake_root):
    return load_data(load_config(CI, {"shards": [str(fake_root)]}))


def fold_sets(config, data, fold):
    test_subject = data.subjects[fold]
    train_index = np.flatnonzero(data.subject != test_subject)
    return test_subject, train_index, training_set(config, fold, data, train_index)


@pytest.mark.parametrize("key, value", [("subject_fraction", 0), ("subject_fraction", 1.5),
                                        ("label_noise", -0.1), ("label_noise", 1)])
def test_out_of_range_values_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(CI, {key: value})


def test_defaults_leave_the_training_set_untouched(data):
    config = load_config(CI)
    assert (config.subject_fraction, config.label_noise) == (1.0, 0.0)
    _, train_index, (kept, y) = fold_sets(config, data, 0)
    assert np.array_equal(kept, train_index) and y is data.y


def test_subject_fraction_keeps_whole_subjects_never_the_test_one_seeded_by_fold(data):
    config = load_config(CI, {"subject_fraction": 0.5})
    test_subject, train_index, (kept, y) = fold_sets(config, data, 1)
    subjects = set(data.subject[kept].tolist())
    assert len(subjects) == 2 and test_subject not in subjects  # round(0.5 x 4 training subjects)
    # whole subjects: every sample of a kept subject is kept
    assert np.array_equal(kept, train_index[np.isin(data.subject[train_index], sorted(subjects))])
    assert torch.equal(y, data.y)
    again = fold_sets(config, data, 1)[2][0]
    assert np.array_equal(again, kept)                        # same (seed, fold): same subjects
    draws = {tuple(sorted(set(data.subject[fold_sets(config.replace(seed=s), data, 1)[2][0]].tolist())))
             for s in range(8)}
    assert len(draws) > 1                                     # another seed draws other subjects
    # the same subjects for every method: the draw does not depend on the method
    assert np.array_equal(fold_sets(config.replace(method="erm"), data, 1)[2][0], kept)


def test_subject_fraction_keeps_at_least_two_subjects():
    subject = np.array(["a", "a", "b", "c", "d"], dtype=object)
    kept = keep_subjects(np.arange(5), subject, 0.01, np.random.default_rng(0))
    assert len(set(subject[kept])) == 2


def test_label_noise_flips_that_fraction_of_training_labels_to_another_class_only(data):
    config = load_config(CI, {"label_noise": 0.2})
    test_subject, train_index, (kept, y) = fold_sets(config, data, 2)
    assert np.array_equal(kept, train_index)
    changed = np.flatnonzero((y != data.y).numpy())
    assert len(changed) == round(0.2 * len(train_index))     # each flip lands on another class
    assert set(changed) <= set(train_index.tolist())
    test = data.subject == test_subject
    assert torch.equal(y[torch.from_numpy(test)], data.y[torch.from_numpy(test)])
    assert y.min() >= 0 and y.max() < len(data.classes)
    assert torch.equal(fold_sets(config, data, 2)[2][1], y)   # seeded by (seed, fold)
    assert not torch.equal(fold_sets(config, data, 3)[2][1], y)


def test_flip_labels_reaches_every_other_class():
    y = torch.zeros(3000, dtype=torch.long)
    flipped = flip_labels(y, np.arange(3000), 0.5, 4, np.random.default_rng(0))
    counts = np.bincount(flipped.numpy(), minlength=4)
    assert counts[0] == 1500 and all(450 < c < 550 for c in counts[1:])
    assert torch.equal(y, torch.zeros(3000, dtype=torch.long))  # the input is not modified


def test_training_uses_the_selection_and_scores_the_true_test_labels(fake_root, tmp_path, monkeypatch):
    seen = []
    real = trainer.FoldSampler

    def spy(y, subject, train_index, rng):
        seen.append((y.copy(), train_index.copy()))
        return real(y, subject, train_index, rng)

    monkeypatch.setattr(trainer, "FoldSampler", spy)
    result = mer_train.train(CI, shards=[str(fake_root)], out=str(tmp_path / "run"), method="erm", steps=2,
                             subject_fraction=0.5, label_noise=0.3)
    assert len(seen) == SUBJECTS
    for fold, (y, train_index) in zip(result.metrics["folds"], seen):
        assert len(fold["train_subjects"]) == 2 and fold["subject"] not in fold["train_subjects"]
        assert fold["n_train"] == len(train_index)
    assert result.metrics["overall"]["n"] == 50               # every test sample scored, with its true label
