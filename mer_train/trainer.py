"""LOSO training of LightmanNet and its baselines, in one loop.

    method     levels   branches                      loss
    erm        one      primary                       CE
    multitask  one      primary + auxiliary           CE + lambda * align
    maml       two      primary                       inner CE, outer CE
    lightman   two      primary + auxiliary           inner CE + lambda * align, outer CE (+ lambda * align)

`train_fold(config, data, fold, subject, device)` trains one leave-one-subject-out fold with a
schedule fixed by the config and predicts its test subject. Read it top to bottom: it is the whole
method; docs/method.md explains the choices. `mer_train.loso` runs the folds and pools them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import FoldSampler, MerData, macro_targets, training_set
from .errors import TrainError
from .models import create_model

log = logging.getLogger("mer_train")

#            (bi-level, auxiliary branch)
METHODS = {"erm": (False, False), "multitask": (False, True), "maml": (True, False), "lightman": (True, True)}


@dataclass
class Align:
    """What the alignment loss compares a decoded field with: per-class macro fields and the face."""

    targets: torch.Tensor     # (K, 2, H, W) unit norm over the face
    has_target: torch.Tensor  # (K,) bool
    mask: torch.Tensor        # (1, 1, H, W)


# ----------------------------------------------------------------------------------------------
# losses and the level-one (inner) loop


def align_loss(field: torch.Tensor, y: torch.Tensor, align: Align, weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - cosine between each decoded field and the macro field of its class, over the face region.
    Cosine ignores magnitude (micro ~0.3 px vs macro ~10 px). Samples of classes without a macro
    field (e.g. `others`) do not count, nor samples of `weight` 0; with none left the loss is 0."""
    field = field * align.mask                            # (B, 2, H, W); autocast runs cosine and CE in fp32
    target = align.targets[y] * align.mask                # (B, 2, H, W)
    cosine = F.cosine_similarity(field.flatten(1), target.flatten(1), dim=1, eps=1e-8)  # (B,)
    counted = align.has_target[y].to(cosine.dtype)        # (B,)
    if weight is not None:
        counted = counted * weight
    return ((1 - cosine) * counted).sum() / counted.sum().clamp_min(1)


def branch_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                align: Align | None = None, align_weight: float = 0.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """CE of the primary branch (+ align_weight * alignment loss of the auxiliary branch), evaluated
    with `params` in place of the model's own weights. `weight` (B,) of 0/1 leaves samples out (the
    padding of a batched meta-batch); None counts every sample."""
    aux = align is not None and align_weight != 0
    out = functional_call(model, params, (x,), {"aux": aux})  # logits (B, K), or (logits, field (B, 2, H, W))
    logits = out[0] if aux else out
    if weight is None:
        ce = F.cross_entropy(logits, y)
    else:
        ce = (F.cross_entropy(logits, y, reduction="none") * weight).sum() / weight.sum()
    return ce + align_weight * align_loss(out[1], y, align, weight) if aux else ce


def adapt(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
          align: Align | None, align_weight: float, inner_lr: float, inner_steps: int,
          first_order: bool, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Level one: fast weights = weights - inner_lr * grad(support loss), `inner_steps` times.
    Second order: the meta-gradient flows through the adaptation (`torch.func.grad` keeps the graph
    for the outer backward); first order treats the step's gradient as a constant. Runs as it is
    inside `torch.func.vmap` (the batched meta-batch of `outer_loss`)."""
    fast = dict(params)
    for _ in range(inner_steps):
        grads = torch.func.grad(lambda w: branch_loss(model, w, x, y, align, align_weight, weight))(fast)
        fast = {name: w - inner_lr * (grads[name].detach() if first_order else grads[name]) for name, w in fast.items()}
    return fast


# The tasks of a meta-batch run as one batch (torch.func.vmap): the support sets share the
# weights, so level one is one forward/backward of meta_batch x support samples, and level two
# a grouped convolution over the tasks' fast weights. Same loss and meta-gradient as the loop
# (tests/test_train_meta.py); benchmarks/bench_train.py measures both. False: one task at a time.
VMAP_TASKS = True


def outer_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], config: TrainConfig, x: torch.Tensor,
               y: torch.Tensor, sampler: FoldSampler, align: Align | None) -> torch.Tensor:
    """The loss of one outer step of `config.method`, on samples drawn by `sampler`."""
    bilevel, auxiliary = METHODS[config.method]
    align_weight = config.align_weight if auxiliary else 0.0
    if not bilevel:
        batch = torch.as_tensor(sampler.batch(config.batch_size), device=x.device)
        return branch_loss(model, params, x[batch], y[batch], align, align_weight)  # x[batch]: (B, 3, H, W)
    query_weight = align_weight if config.outer_align else 0.0
    tasks = [sampler.episode(config.shots, config.query_shots) for _ in range(config.meta_batch)]

    def task_loss(xs, ys, xq, yq, ws=None, wq=None):
        # level one: task-specific learning in both branches, on the support subjects
        fast = adapt(model, params, xs, ys, align=align, align_weight=align_weight, inner_lr=config.inner_lr,
                     inner_steps=config.inner_steps, first_order=config.first_order, weight=ws)
        # level two: the adapted weights meet new people (the query subjects); their loss refines the shared weights
        return branch_loss(model, fast, xq, yq, align, query_weight, wq)

    if not VMAP_TASKS:
        loss = 0.0
        for support, query in tasks:
            s, q = torch.as_tensor(support, device=x.device), torch.as_tensor(query, device=x.device)
            loss = loss + task_loss(x[s], y[s], x[q], y[q])
        return loss / config.meta_batch
    (support, ws), (query, wq) = (padded([task[i] for task in tasks], x.device) for i in (0, 1))  # (T, n) each
    losses = torch.func.vmap(task_loss, randomness="different")(x[support], y[support], x[query], y[query], ws, wq)
    return losses.mean()  # (T,) -> ()


def padded(sets: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index sets of different sizes (a class can be missing from a half of the subjects) -> (T, n)
    indices, each set repeated to the longest, and (T, n) weights: 1 for its own samples, 0 for the padding."""
    n = max(len(s) for s in sets)
    index = np.stack([np.resize(s, n) for s in sets])
    weight = np.arange(n) < np.array([len(s) for s in sets])[:, None]
    return torch.as_tensor(index, device=device), torch.as_tensor(weight, dtype=torch.float32, device=device)


# ----------------------------------------------------------------------------------------------
# one fold


def train_fold(config: TrainConfig, data: MerData, fold: int, test_subject: str, device: torch.device,
               progress: bool = False) -> dict[str, Any]:
    """Train on every subject but `test_subject` for exactly `config.steps` steps, then predict it."""
    is_test = data.subject == test_subject
    train_index, test_index = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    torch.manual_seed(config.seed * 1_000_003 + fold)  # the model's initial weights
    rng = np.random.default_rng([config.seed, fold])    # the batches and tasks
    train_index, y = training_set(config, fold, data, train_index)  # subject_fraction, label_noise (training only)
    sampler = FoldSampler(y.cpu().numpy(), data.subject, train_index, rng)

    model = create_model(config.model, num_classes=len(data.classes), input_size=config.input_size).to(device)
    params = dict(model.named_parameters())
    # foreach: each Adam op runs over all tensors at once, not per tensor (~1 ms less per CPU step); same bits
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    align = None
    if METHODS[config.method][1]:
        targets, has_target = macro_targets(data, exclude_subject=test_subject)  # (K, 2, H, W), (K,)
        align = Align(targets, has_target, data.face_mask)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    curve, start = [], time.perf_counter()
    for step in tqdm(range(config.steps), desc=f"fold {fold} ({test_subject})", leave=False, disable=not progress):
        with autocast:
            loss = outer_loss(model, params, config, data.x, y, sampler, align)
        if not torch.isfinite(loss):  # stop before the weights (and any checkpoint) are poisoned
            raise TrainError(
                f"fold {fold} ({test_subject}): the training loss is {loss.item()} at step {step + 1} of "
                f"{config.steps}; this fold is not saved (completed folds keep their checkpoints). Check the "
                f"shards for NaN or infinite flow values, or lower lr (now {config.lr})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curve.append(loss.item())

    # The meta-learned weights are evaluated as they are: no adaptation at test time.
    probs = predict(model, data.x[torch.as_tensor(test_index, device=device)], config.eval_batch_size, autocast)
    return {
        "fold": {"index": fold, "subject": test_subject, "n_train": len(train_index), "n_test": len(test_index),
                 "train_subjects": sorted(set(data.subject[train_index].tolist()))},
        "sample_id": data.sample_id[test_index].tolist(),
        "probs": probs.tolist(),
        "curve": curve,
        "seconds": time.perf_counter() - start,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, autocast) -> np.ndarray:
    """(N, 3, H, W) -> (N, K) class probabilities."""
    model.eval()
    chunks = []
    for i in range(0, len(x), batch_size):
        with autocast:
            chunks.append(model(x[i:i + batch_size]).float().softmax(dim=1).cpu())
    model.train()
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
