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


def test_the_subject_dependent_bound_trains_on_clip_folds_with_every_person_in_training(data, tmp_path):
    """benchmarks/study.py's upper bound: the loaded data regrouped into clip folds (people mixed),
    trained by the unchanged trainer; each test fold's people are also in its training set."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from study import clip_folds, fold_of_clips

    y = data.y.numpy()
    fold = fold_of_clips(y, 5, seed=0)
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 1                                  # folds of N/k clips
    for c in np.unique(y):                                                 # each class spread evenly
        per = np.bincount(fold[y == c], minlength=5)
        assert per.max() - per.min() <= 1
    assert (fold_of_clips(y, 5, seed=0) == fold).all() and (fold_of_clips(y, 5, seed=1) != fold).any()

    folds = clip_folds(data, seed=0)
    assert len(folds.subjects) == len(data.subjects) and set(folds.subjects).isdisjoint(data.subjects)
    assert torch.equal(folds.y, data.y) and (folds.sample_id == data.sample_id).all()  # same clips and labels
    result = mer_train.train(CI, data=folds, out=str(tmp_path / "bound"), method="erm", steps=2)
    assert result.metrics["overall"]["n"] == len(data.y)                  # every clip predicted once
    person = dict(zip(data.sample_id, data.subject))
    for record in result.metrics["folds"]:
        test_people = {person[s] for s in folds.sample_id[folds.subject == record["subject"]]}
        train_people = {person[s] for s in folds.sample_id[folds.subject != record["subject"]]}
        assert len(test_people) > 1 and test_people <= train_people       # not LOSO: the people are seen
