"""The level-one / level-two gradients: second order against finite differences, first order exact."""
import copy

import numpy as np
import pytest
import torch

from mer_train import trainer
from mer_train.config import TrainConfig
from mer_train.models import create_model
from mer_train.trainer import Align, adapt, branch_loss

ALIGN_WEIGHT, INNER_LR, INNER_STEPS = 0.5, 0.1, 2
# the models whose meta-gradient is checked exactly: ours, and the smallest of the field's (ststnet, 1.7k
# parameters: ReLU + max-pool + GroupNorm, so second order through non-smooth layers too)
MODELS = {"slimcnn_tiny": {"input_size": 16}, "ststnet": {"input_size": 12, "drop": 0.0}}


def make_problem(name):
    torch.manual_seed(0)
    size, classes = MODELS[name]["input_size"], 3
    model = create_model(name, num_classes=classes, **MODELS[name]).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    xs, xq = torch.randn(6, 3, size, size, dtype=torch.float64), torch.randn(6, 3, size, size, dtype=torch.float64)
    ys, yq = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 1, 0, 0, 1, 2])
    targets = torch.nn.functional.normalize(torch.randn(classes, 2 * size * size, dtype=torch.float64), dim=1)
    align = Align(targets.view(classes, 2, size, size), torch.tensor([True, True, False]),
                  torch.ones(1, 1, size, size, dtype=torch.float64))
    return model, params, (xs, ys, xq, yq), align


@pytest.fixture(scope="module")
def problem():
    return make_problem("slimcnn_tiny")


@pytest.fixture(scope="module", params=sorted(MODELS))
def each_problem(request):
    """The same problem for every model of MODELS."""
    return make_problem(request.param)


def query_loss_after_adaptation(problem, params, first_order):
    model, _, (xs, ys, xq, yq), align = problem
    fast = adapt(model, params, xs, ys, align=align, align_weight=ALIGN_WEIGHT, inner_lr=INNER_LR,
                 inner_steps=INNER_STEPS, first_order=first_order)
    return branch_loss(model, fast, xq, yq, align, ALIGN_WEIGHT), fast


def meta_gradient(problem, first_order):
    params = {k: v.clone().requires_grad_() for k, v in problem[1].items()}
    loss, fast = query_loss_after_adaptation(problem, params, first_order)
    return torch.autograd.grad(loss, list(params.values())), fast


def test_second_order_meta_gradient_matches_finite_differences(each_problem):
    problem = each_problem
    grads, _ = meta_gradient(problem, first_order=False)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = [torch.randn(g.shape, generator=generator, dtype=torch.float64) for g in grads]
        eps = 1e-6  # central differences in float64: error ~ eps^2, measured 2e-8 relative here
        # the inner loop differentiates the support loss, so the probes must require grad too
        plus = {k: (v + eps * d).requires_grad_() for (k, v), d in zip(problem[1].items(), direction)}
        minus = {k: (v - eps * d).requires_grad_() for (k, v), d in zip(problem[1].items(), direction)}
        numeric = (query_loss_after_adaptation(problem, plus, False)[0]
                       - query_loss_after_adaptation(problem, minus, False)[0]) / (2 * eps)
        analytic = sum((g * d).sum() for g, d in zip(grads, direction))
        assert analytic.item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9)


def test_first_order_is_the_gradient_at_the_adapted_weights_and_drops_the_second_order_term(each_problem):
    problem = each_problem
    model, _, (xs, ys, xq, yq), align = problem
    first, fast = meta_gradient(problem, first_order=True)
    at_fast = {k: v.detach().requires_grad_() for k, v in fast.items()}
    expected = torch.autograd.grad(branch_loss(model, at_fast, xq, yq, align, ALIGN_WEIGHT), list(at_fast.values()))
    for a, b in zip(first, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)

    second, fast_second = meta_gradient(problem, first_order=False)
    for k in fast:  # same adapted weights either way; only the meta-gradient differs
        torch.testing.assert_close(fast[k], fast_second[k], rtol=1e-12, atol=1e-14)
    difference = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(first, second)))
    size = torch.sqrt(sum((b ** 2).sum() for b in second))
    assert difference / size > 1e-3, "the second-order term should change the meta-gradient"


def test_zero_inner_steps_is_the_plain_gradient(problem):
    model, params, (xs, ys, xq, yq), align = problem
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    fast = adapt(model, leaves, xs, ys, align=align, align_weight=ALIGN_WEIGHT, inner_lr=INNER_LR,
                 inner_steps=0, first_order=False)
    assert all(fast[k] is leaves[k] for k in leaves)


class FixedTasks:
    """A sampler stand-in that hands out given (support, query) index sets, one per `episode` call."""

    def __init__(self, tasks):
        self.tasks = iter(tasks)

    def episode(self, shots, query_shots):
        return next(self.tasks)


@pytest.mark.parametrize("overrides", [{}, {"first_order": True}, {"inner_steps": 2}, {"outer_align": False},
                                       {"method": "maml"}])
def test_the_batched_meta_batch_gives_the_loop_s_loss_and_meta_gradient(problem, monkeypatch, overrides):
    """trainer.VMAP_TASKS runs the tasks of a meta-batch as one torch.func.vmap batch, padded to the
    largest set (a class can be missing from a half of the subjects); the loss and the meta-gradient
    must be the loop's, padding included."""
    model, params, (xs, ys, xq, yq), align = problem
    x, y = torch.cat([xs, xq]), torch.cat([ys, yq])  # (12, 3, H, W), (12,)
    tasks = [(np.array([0, 1, 2, 3]), np.array([6, 7, 8])), (np.array([0, 1, 2, 3, 4, 5]), np.array([9, 10, 11, 6])),
             (np.array([1, 2]), np.array([6, 7, 8, 9, 10, 11]))]  # sizes differ: padding is exercised
    config = TrainConfig(meta_batch=len(tasks), inner_lr=INNER_LR, align_weight=ALIGN_WEIGHT, **overrides)
    results = []
    for batched in (False, True):
        monkeypatch.setattr(trainer, "VMAP_TASKS", batched)
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        loss = trainer.outer_loss(model, leaves, config, x, y, FixedTasks(tasks), align)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
        results.append((loss, grads))
    (loop_loss, loop_grads), (vmap_loss, vmap_grads) = results
    torch.testing.assert_close(vmap_loss, loop_loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(vmap_grads, loop_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert max(g.abs().max() for g in loop_grads) > 0


def test_the_batched_meta_batch_runs_under_bf16_autocast_and_agrees_with_the_loop(problem, monkeypatch):
    """A GPU trains under bf16 autocast: vmap + torch.func.grad through GroupNorm must run there too
    (the CPU's autocast here) and give the loop's meta-gradient to bf16 precision."""
    model, params, (xs, ys, xq, yq), align = problem
    model = copy.deepcopy(model).float()
    params = {k: v.float() for k, v in params.items()}
    align = Align(align.targets.float(), align.has_target, align.mask.float())
    x, y = torch.cat([xs, xq]).float(), torch.cat([ys, yq])
    tasks = [(np.array([0, 1, 2, 3, 4]), np.array([6, 7, 8])), (np.array([0, 1, 2]), np.array([9, 10, 11, 6]))]
    config = TrainConfig(meta_batch=len(tasks), inner_lr=INNER_LR, align_weight=ALIGN_WEIGHT)
    grads = []
    for batched in (False, True):
        monkeypatch.setattr(trainer, "VMAP_TASKS", batched)
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = trainer.outer_loss(model, leaves, config, x, y, FixedTasks(tasks), align)
        assert torch.isfinite(loss)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(leaves.values()))]))
    assert (grads[1] - grads[0]).norm() / grads[0].norm() < 0.05  # bf16: ~3 significant digits per op
