"""The consistent, person-adaptive LightmanNet (issue #12): new objectives' meta-gradients against
finite differences, the inner_lr = 0 sanity check, label-free auxiliary targets, and the two
protocols (inductive: the test subject untouched; transductive: adapted on its unlabelled inputs,
never its labels)."""
from dataclasses import replace

import numpy as np
import yaml
import pytest
import torch

from mer_train import trainer
from mer_train.config import TrainConfig, load_config, protocol
from mer_train.data import load_data, photometric
from mer_train.errors import ConfigError
from mer_train.models import create_model
from mer_train.trainer import Align, branch_loss, make_align, outer_loss, self_alignment

SIZE, CLASSES = 16, 3


class FixedTasks:
    """A sampler stand-in: given (support, query) episodes and given one-subject sets, in order."""

    def __init__(self, tasks, subjects=()):
        self.tasks, self.subjects = iter(tasks), iter(subjects)

    def episode(self, shots, query_shots):
        return next(self.tasks)

    def subject_episode(self, n):
        return next(self.subjects)


def self_inputs(n, generator):
    """(n, 3 + 5, H, W): random model inputs plus photometric channels of a smooth image moved by a
    known small field, and a visible-cells mask hiding the right half."""
    x = torch.randn(n, 3, SIZE, SIZE, generator=generator, dtype=torch.float64)
    photo = torch.randn(n, 4, SIZE, SIZE, generator=generator, dtype=torch.float64) * 0.05
    photo[:, 3] = 0.3  # flow RMS in pixels
    visible = torch.ones(n, 1, SIZE, SIZE, dtype=torch.float64)
    visible[..., SIZE // 2:] = 0
    return torch.cat([x, photo, visible], 1)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = create_model("slimcnn_tiny", num_classes=CLASSES, input_size=SIZE).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    generator = torch.Generator().manual_seed(3)
    x = self_inputs(12, generator)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2])
    protos = torch.nn.functional.normalize(torch.randn(4, 2 * SIZE * SIZE, generator=generator, dtype=torch.float64), dim=1)
    mask = torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64)
    return model, params, x, y, protos.view(4, 2, SIZE, SIZE), mask


def aligns(problem):
    _, _, _, _, protos, mask = problem
    return {
        "class_macro": Align(protos[:CLASSES], torch.tensor([True, True, False]), mask),
        "nearest_macro": Align(protos, torch.ones(4, dtype=torch.bool), mask, "nearest_macro", gate=-1.0),
        "self": Align(protos, torch.ones(4, dtype=torch.bool), mask, "self", smooth=0.1, macro_pull=0.2),
    }


TASKS = [(np.array([0, 1, 2, 3]), np.array([6, 7, 8])), (np.array([0, 1, 2, 3, 4, 5]), np.array([9, 10, 11, 6]))]
SUBJECT_SETS = [np.array([0, 1, 2, 3, 4]), np.array([6, 7, 8])]

OBJECTIVES = [
    ("class_macro", {"outer_base_weight": 0.0}),  # the first reading
    ("class_macro", {"outer_base_weight": 0.5}),
    ("nearest_macro", {"outer_base_weight": 0.3}),
    ("self", {}),
    ("self", {"task_unit": "subject", "outer_base_weight": 0.2}),
    ("nearest_macro", {"task_unit": "subject", "inner_steps": 2}),
]


def meta_loss(problem, kind, overrides, params):
    model, _, x, y, _, _ = problem
    config = TrainConfig(meta_batch=2, inner_lr=0.1, align_weight=0.5, aux_target=kind, **overrides)
    return outer_loss(model, params, config, x, y, FixedTasks(TASKS, SUBJECT_SETS), aligns(problem)[kind])


@pytest.mark.parametrize("kind,overrides", OBJECTIVES)
def test_every_new_objective_s_second_order_meta_gradient_matches_finite_differences(problem, kind, overrides):
    leaves = {k: v.clone().requires_grad_() for k, v in problem[1].items()}
    loss = meta_loss(problem, kind, overrides, leaves)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        direction = [torch.randn(g.shape, generator=generator, dtype=torch.float64) for g in grads]
        eps = 1e-6
        plus = {k: (v + eps * d).requires_grad_() for (k, v), d in zip(problem[1].items(), direction)}
        minus = {k: (v - eps * d).requires_grad_() for (k, v), d in zip(problem[1].items(), direction)}
        numeric = (meta_loss(problem, kind, overrides, plus) - meta_loss(problem, kind, overrides, minus)) / (2 * eps)
        analytic = sum((g * d).sum() for g, d in zip(grads, direction))
        assert analytic.item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8)
    assert max(g.abs().max() for g in grads) > 0


def test_inner_lr_zero_makes_lightman_the_multitask_loss_on_the_same_samples(problem):
    """alpha = 0: the adapted weights are the base weights, so level two is multitask's loss on the
    query samples (value and gradient)."""
    model, params, x, y, _, _ = problem
    align = aligns(problem)["class_macro"]
    config = TrainConfig(meta_batch=2, inner_lr=0.0, align_weight=0.5, outer_base_weight=0.0)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    lightman = outer_loss(model, leaves, config, x, y, FixedTasks(TASKS), align)
    multitask = sum(branch_loss(model, leaves, x[q], y[q], align, 0.5) for _, q in TASKS) / len(TASKS)
    torch.testing.assert_close(lightman, multitask, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(lightman, list(leaves.values())),
                    torch.autograd.grad(multitask, list(leaves.values()))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_label_free_targets_never_read_the_label_and_class_macro_does(problem):
    model, params, x, y, _, _ = problem
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    for kind, align in aligns(problem).items():
        a = branch_loss(model, params, x, y, align, 1.0, ce_weight=0.0)
        b = branch_loss(model, params, x, shuffled, align, 1.0, ce_weight=0.0)
        if kind == "class_macro":
            assert not torch.allclose(a, b)
        else:
            assert torch.equal(a, b), kind


def test_self_alignment_rewards_the_true_displacement_where_the_input_is_hidden():
    """A smooth image moved by a known sub-pixel field: the decoded field equal to it scores far
    better than no motion (about 1 by construction) and than the opposite motion."""
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    image = lambda dx: 0.5 + 0.2 * torch.sin((xx - dx) / 3.0) * torch.cos(yy / 4.0)  # noqa: E731
    shift = 0.15  # pixels, to the right
    part = {"flow": np.stack([np.full((size, size), shift), np.zeros((size, size))])[None].astype(np.float32),
            "onset": (image(0) * 255).round().numpy().astype(np.uint8)[None],
            "apex": (image(shift) * 255).round().numpy().astype(np.uint8)[None]}
    mask = torch.ones(1, 1, size, size)
    photo = photometric(part, size, mask, "rms").double()   # scale = flow RMS = shift
    visible = torch.ones(1, 1, size, size, dtype=torch.float64)
    visible[..., :, size // 2:] = 0
    x = torch.cat([torch.zeros(1, 3, size, size, dtype=torch.float64), photo, visible], 1)
    align = Align(torch.zeros(0, 2, size, size), torch.zeros(0, dtype=torch.bool), mask.double(), "self", smooth=0.0)
    unit_right = torch.zeros(1, 2, size, size, dtype=torch.float64)
    unit_right[:, 0] = 1.0
    true, none, wrong = (self_alignment(f, x, align).item() for f in (unit_right, 0 * unit_right, -unit_right))
    assert none == pytest.approx(1.0)
    assert true < 0.5 * none and wrong > none


def test_controls_permute_every_template_or_replace_them(fake_root):
    config = load_config("configs/ci.yaml", {"shards": [str(fake_root)]})
    data = load_data(config)
    subject = data.subjects[0]
    plain = make_align(config, data, subject)
    shuffled = make_align(config.replace(aux_control="shuffled"), data, subject)
    assert shuffled.permutation is not None
    assert (shuffled.permutation != torch.arange(len(plain.targets))).all()  # a derangement
    assert sorted(shuffled.permutation.tolist()) == list(range(len(plain.targets)))
    randomised = make_align(config.replace(aux_control="random"), data, subject)
    assert randomised.targets.shape == plain.targets.shape
    cos = torch.nn.functional.cosine_similarity(randomised.targets.flatten(1), plain.targets.flatten(1), dim=1)
    assert cos.abs().max() < 0.9
    nearest = make_align(config.replace(aux_target="nearest_macro"), data, subject)
    assert len(nearest.targets) == len(set(data.macro_emotion.tolist()))  # one prototype per source emotion


def test_configs_that_would_read_labels_at_test_time_are_refused_and_test_adaptation_is_transductive():
    with pytest.raises(ConfigError, match="label-free"):
        TrainConfig().replace(aux_target="class_macro", test_adapt_steps=3)  # class_macro needs the label
    with pytest.raises(ConfigError, match="task_unit"):
        TrainConfig().replace(method="maml", task_unit="subject")
    assert TrainConfig().replace(task_unit="subject", test_adapt_steps=1).aux_target == "nearest_macro"
    assert protocol(load_config("configs/ci.yaml")) == "inductive"
    assert protocol(TrainConfig().replace(test_adapt_steps=3)) == "transductive"
    assert protocol(TrainConfig().replace(test_adapt_steps=3, test_adapt_loss="entropy")) == "transductive"
    assert protocol(TrainConfig().replace(subject_norm=True)) == "transductive"
    assert protocol(TrainConfig().replace(eval_adapt=3)) == "inductive"


TRANSDUCTIVE = [
    {"method": "lightman", "aux_target": "nearest_macro", "test_adapt_steps": 3, "test_adapt_lr": 0.1},
    {"method": "lightman", "aux_target": "self", "task_unit": "subject", "meta_batch": 1, "test_adapt_steps": 1,
     "test_adapt_lr": 0.05},
    {"method": "erm", "test_adapt_steps": 3, "test_adapt_loss": "entropy", "test_adapt_params": "norm"},  # TENT
    {"method": "erm", "subject_norm": True},
    {"method": "multitask", "aux_target": "self", "test_adapt_steps": 2, "test_adapt_params": "norm"},
]


def fold_probs(config, data, subject):
    return np.array(trainer.train_fold(config, data, 0, subject, torch.device("cpu"))["probs"])


@pytest.fixture(scope="module")
def fake_data(fake_root):
    """The fake shards loaded once: every config below differs from configs/ci.yaml in keys that
    load_data does not read (mer_train.data.DATA_KEYS)."""
    return load_data(load_config("configs/ci.yaml", {"shards": [str(fake_root)]}))


def short(fake_root, **overrides):
    return load_config("configs/ci.yaml", {"shards": [str(fake_root)], "steps": 3, "batch_size": 8, **overrides})


@pytest.mark.parametrize("overrides", TRANSDUCTIVE)
def test_the_transductive_protocol_reads_no_test_label(fake_root, fake_data, overrides):
    """Permuting the test subject's labels (to other classes) leaves its predictions identical; the
    adaptation did change them (else the test would prove nothing)."""
    config, data = short(fake_root, **overrides), fake_data
    subject = data.subjects[1]
    rows = torch.as_tensor(np.flatnonzero(data.subject == subject))
    relabelled = replace(data, y=data.y.clone())
    relabelled.y[rows] = (data.y[rows] + 1) % len(data.classes)
    probs = fold_probs(config, data, subject)
    assert np.array_equal(probs, fold_probs(config, relabelled, subject))
    assert protocol(config) == "transductive"
    plain = {k: v for k, v in overrides.items() if k not in ("test_adapt_steps", "subject_norm")}
    assert not np.allclose(probs, fold_probs(short(fake_root, **plain), data, subject))


@pytest.mark.parametrize("overrides", [{"eval_adapt": 2}, {"eval_adapt": 2, "aux_target": "nearest_macro",
                                                              "outer_base_weight": 0.5},
                                       TRANSDUCTIVE[0]])
def test_eval_adapt_and_test_time_adaptation_are_reproducible_by_seed(fake_root, fake_data, overrides):
    config, data = short(fake_root, **overrides), fake_data
    subject = data.subjects[0]
    first, again = fold_probs(config, data, subject), fold_probs(config, data, subject)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, fold_probs(config.replace(seed=1), data, subject))
    assert np.allclose(first.sum(1), 1)


def test_self_alignment_needs_no_macro_expressions_and_the_others_still_do(fake_root, fake_data):
    from mer_train.errors import MissingMacroShards
    from mer_train.loso import require_runnable

    no_macro = replace(fake_data, macro_field=fake_data.macro_field[:0], macro_y=fake_data.macro_y[:0],
                       macro_subject=fake_data.macro_subject[:0], macro_emotion=fake_data.macro_emotion[:0])
    require_runnable(short(fake_root, aux_target="self"), no_macro)
    with pytest.raises(MissingMacroShards):
        require_runnable(short(fake_root, aux_target="self", aux_macro_pull=0.5), no_macro)
    with pytest.raises(MissingMacroShards):
        require_runnable(short(fake_root), no_macro)


@pytest.mark.slow
def test_compare_runs_named_variants_and_keeps_the_protocols_apart(fake_root, tmp_path):
    from click.testing import CliRunner

    from mer_train.cli import main

    result = CliRunner().invoke(main, ["compare", "--shards", str(fake_root), "--config", "configs/ci.yaml",
                                       "--methods", "erm,lightman-v1,erm+tent,lightman+tta", "--seeds", "1",
                                       "--set", "steps=2", "--scheduler", "synchronous", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    inductive, transductive = result.output.split("Transductive protocol")
    assert "Inductive protocol" in inductive and "Not comparable" in inductive
    assert "| erm |" in inductive and "| lightman-v1 |" in inductive and "tent" not in inductive
    assert "| erm+tent |" in transductive and "| lightman+tta |" in transductive
    saved = yaml.safe_load((tmp_path / "lightman+tta-seed0" / "config.yaml").read_text())
    assert saved["task_unit"] == "subject" and saved["test_adapt_steps"] == 1
