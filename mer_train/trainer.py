"""LightmanNet and its baselines: the losses, level one and level two, and one LOSO fold.

    method     levels   branches                      loss
    erm        one      primary                       CE
    multitask  one      primary + auxiliary           CE + lambda * L_aux
    maml       two      primary                       inner CE, outer CE (+ beta * CE at the base weights)
    lightman   two      primary + auxiliary           inner CE + lambda * L_aux (task_unit subject: L_aux only),
                                                      outer CE + lambda * L_aux (+ beta * the support loss at the base weights)

L_aux has a label-free target by default (the nearest macro prototype, or masked self-alignment);
the evaluation is inductive (base or training-support-adapted weights) or, with test_adapt_steps,
transductive (adapted on the test person's unlabelled clips).

`train_fold(config, data, fold, subject, device)` trains one leave-one-subject-out fold with a
schedule fixed by the config and predicts its test subject. Read it top to bottom: it is the whole
method; docs/method.md explains the choices. `mer_train.loso` runs the folds and pools them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from .config import METHODS, TrainConfig, protocol
from .data import FoldSampler, MerData, macro_prototypes, macro_targets, subject_centered, training_set, unit_field
from .errors import TrainError
from .models import create_model, get_input_spec

log = logging.getLogger("mer_train")


@dataclass
class Align:
    """What the auxiliary loss compares a decoded field with (docs/method.md, "The auxiliary targets").

    `kind` class_macro: `targets[k]` is the mean macro field of class k, chosen by the sample's label;
    nearest_macro: `targets` are macro prototypes (one per source emotion) and a sample's target is
    the prototype nearest to its own input flow, none when that cosine is below `gate`; self: the
    decoded displacement must explain the brightness change from onset to apex where the auxiliary
    branch's input was hidden (+ `macro_pull` toward the nearest prototype). `permutation` maps a
    chosen target to another one (the shuffled-templates control)."""

    targets: torch.Tensor     # (P, 2, H, W) unit norm over the face
    has_target: torch.Tensor  # (P,) bool
    mask: torch.Tensor        # (1, 1, H, W)
    kind: str = "class_macro"
    gate: float = 0.0
    permutation: torch.Tensor | None = None  # (P,) long
    smooth: float = 0.1
    macro_pull: float = 0.0


ALIGN_TENSORS = ("targets", "has_target", "permutation")  # an Align's tensors (the rest are settings)

MODEL_CHANNELS = 3  # [u, v, strain]; a fold's input tensor may carry more channels for the losses:
SELF_CHANNELS = 5   # + [apex - onset, d/dx, d/dy, flow RMS, visible cells] with aux_target self


# ----------------------------------------------------------------------------------------------
# losses and the level-one (inner) loop


def cosine(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) x (B or P, 2, H, W) fields -> (B,) cosine over the face region."""
    return F.cosine_similarity((a * mask).flatten(1), (b * mask).flatten(1), dim=1, eps=1e-8)


def nearest_prototype(x: torch.Tensor, align: Align) -> tuple[torch.Tensor, torch.Tensor]:
    """For each input's own flow (B, 2, H, W): the index of the nearest prototype and that cosine.
    Reads only the input, never a label, so it works on a new person's clips too."""
    flow = F.normalize((x[:, :2] * align.mask).flatten(1), dim=1, eps=1e-8)         # (B, 2HW)
    protos = F.normalize((align.targets * align.mask).flatten(1), dim=1, eps=1e-8)  # (P, 2HW)
    best, index = (flow @ protos.T).max(dim=1)                                       # (B,), (B,)
    return index, best


def align_loss(field: torch.Tensor, y: torch.Tensor, align: Align, weight: torch.Tensor | None = None,
               x: torch.Tensor | None = None) -> torch.Tensor:
    """The auxiliary loss of decoded fields (B, 2, H, W), averaged over the samples that have a target.

    class_macro: 1 - cosine with the macro field of the sample's class (micro ~0.3 px vs macro ~10 px:
    cosine ignores magnitude); classes without a macro field (e.g. `others`) do not count.
    nearest_macro: 1 - cosine with the prototype nearest to the input `x`'s flow, when it is near enough.
    self: see `self_alignment`. Samples of `weight` 0 never count; with none left the loss is 0."""
    if align.kind == "self":
        per_sample, counted = self_alignment(field, x, align), torch.ones_like(field[:, 0, 0, 0])
    else:
        if align.kind == "class_macro":
            index = y
            counted = align.has_target[index].to(field.dtype)
        else:
            index, best = nearest_prototype(x, align)
            counted = (best >= align.gate).to(field.dtype)
        if align.permutation is not None:
            index = align.permutation[index]
        per_sample = 1 - cosine(field, align.targets[index], align.mask)  # autocast runs it in fp32
    if weight is not None:
        counted = counted * weight
    return (per_sample * counted).sum() / counted.sum().clamp_min(1)


def self_alignment(field: torch.Tensor, x: torch.Tensor, align: Align) -> torch.Tensor:
    """(B,) image alignment proper: the decoded displacement (in the input's RMS units, times the
    sample's flow RMS in pixels) must warp the aligned onset onto the aligned apex. Scored by the
    linearised brightness constancy residual I_t + I_x u + I_y v (Charbonnier), relative to the
    residual of no motion, over the face cells hidden from the auxiliary branch's input: there the
    decoder cannot copy its input flow and must infer the motion from the visible face. Plus
    `smooth` x the squared gradient of the field, and `macro_pull` x (1 - cosine with the nearest macro
    prototype of the unmasked input)."""
    it, ix, iy, scale, visible = (x[:, MODEL_CHANNELS + i] for i in range(SELF_CHANNELS))  # (B, H, W) each
    u, v = field[:, 0] * scale, field[:, 1] * scale
    region = align.mask[:, 0] * (1 - visible)                                              # (B, H, W)
    eps = 1e-3  # a quarter of a grey level

    def charbonnier(r):
        return torch.sqrt(r * r + eps * eps) - eps

    residual = (charbonnier(it + ix * u + iy * v) * region).sum((1, 2))
    still = (charbonnier(it) * region).sum((1, 2)).clamp_min(1e-6)
    dx, dy = field[..., :, 1:] - field[..., :, :-1], field[..., 1:, :] - field[..., :-1, :]
    smooth = dx.pow(2).mean((1, 2, 3)) + dy.pow(2).mean((1, 2, 3))
    loss = residual / still + align.smooth * smooth
    if align.macro_pull and len(align.targets):
        index, _ = nearest_prototype(x, align)
        loss = loss + align.macro_pull * (1 - cosine(field, align.targets[index], align.mask))
    return loss


def branch_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                align: Align | None = None, align_weight: float = 0.0, weight: torch.Tensor | None = None,
                ce_weight: float = 1.0) -> torch.Tensor:
    """ce_weight x CE of the primary branch + align_weight x the auxiliary loss, evaluated with
    `params` in place of the model's own weights. `x` (B, C, H, W): the model reads its first
    MODEL_CHANNELS; the losses may read the rest. `weight` (B,) of 0/1 leaves samples out (the padding
    of a batched meta-batch); None counts every sample. With ce_weight 0, `y` is never read unless the
    target is class_macro (label-free adaptation)."""
    aux = align is not None and align_weight != 0
    inputs = x[:, :MODEL_CHANNELS]
    logits = field = None
    if aux and align.kind == "self":  # the auxiliary branch sees the input with cells hidden
        visible = x[:, MODEL_CHANNELS + SELF_CHANNELS - 1: MODEL_CHANNELS + SELF_CHANNELS]  # (B, 1, H, W)
        field = functional_call(model, params, (inputs * visible,), {"aux": True})[1]
        if ce_weight:
            logits = functional_call(model, params, (inputs,))
    elif aux:
        logits, field = functional_call(model, params, (inputs,), {"aux": True})  # (B, K), (B, 2, H, W)
    elif ce_weight:
        logits = functional_call(model, params, (inputs,))
    loss = 0.0
    if ce_weight:
        if weight is None:
            ce = F.cross_entropy(logits, y)
        else:
            ce = (F.cross_entropy(logits, y, reduction="none") * weight).sum() / weight.sum()
        loss = ce_weight * ce
    if aux:
        loss = loss + align_weight * align_loss(field, y, align, weight, x)
    return loss


def sgd_steps(loss_fn, params: dict[str, torch.Tensor], *, lr: float, steps: int, first_order: bool,
              trainable: set[str] | None = None) -> dict[str, torch.Tensor]:
    """params - lr * grad(loss_fn), `steps` times, on the `trainable` names only (None: all).
    Second order: the gradient keeps its graph (`torch.func.grad`), so a loss of the result can be
    differentiated through the steps; first order treats each step's gradient as a constant."""
    fast = dict(params)
    for _ in range(steps):
        moving = {k: v for k, v in fast.items() if trainable is None or k in trainable}
        grads = torch.func.grad(lambda w: loss_fn({**fast, **w}))(moving)
        fast = {**fast, **{k: w - lr * (grads[k].detach() if first_order else grads[k]) for k, w in moving.items()}}
    return fast


def adapt(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
          align: Align | None, align_weight: float, inner_lr: float, inner_steps: int,
          first_order: bool, weight: torch.Tensor | None = None, ce_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Level one: fast weights = weights - inner_lr * grad(support loss), `inner_steps` times. Runs as
    it is inside `torch.func.vmap` (the batched meta-batch of `outer_loss`)."""
    return sgd_steps(lambda w: branch_loss(model, w, x, y, align, align_weight, weight, ce_weight), params,
                     lr=inner_lr, steps=inner_steps, first_order=first_order)


# The tasks of a meta-batch run as one batch (torch.func.vmap): the support sets share the
# weights, so level one is one forward/backward of meta_batch x support samples, and level two
# a grouped convolution over the tasks' fast weights. Same loss and meta-gradient as the loop
# (tests/test_train_meta.py); benchmarks/bench_train.py measures both. False: one task at a time.
VMAP_TASKS = True


def outer_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], config: TrainConfig, x: torch.Tensor,
               y: torch.Tensor, sampler: FoldSampler, align: Align | None) -> torch.Tensor:
    """The loss of one outer step of `config.method`, on samples drawn by `sampler`.

    Bi-level, task_unit halves: support and query from two halves of the training subjects; the
    adapted weights' loss on the query people (+ beta x the support loss of the base weights, which
    trains the weights that are evaluated when eval_adapt is 0). task_unit subject: one training
    subject per task; level one adapts on its clips with the label-free auxiliary loss only (as a
    new person is adapted at test time), level two scores the adapted weights' CE on the same clips.
    The draws and the arithmetic are apart (`batch_loss`, `meta_batch_loss`), so that
    `mer_train.fold_batch` can draw each fold's samples itself and run the same arithmetic over folds."""
    if not METHODS[config.method].bilevel:
        batch = torch.as_tensor(sampler.batch(config.batch_size), device=x.device)
        return batch_loss(model, params, config, x[batch], y[batch], align)  # x[batch]: (B, C, H, W)
    tasks = [draw_task(sampler, config) for _ in range(config.meta_batch)]
    if not VMAP_TASKS:
        loss = 0.0
        for support, query in tasks:
            s, q = torch.as_tensor(support, device=x.device), torch.as_tensor(query, device=x.device)
            loss = loss + task_loss(model, params, config, align, x[s], y[s], x[q], y[q])
        return loss / config.meta_batch
    (support, ws), (query, wq) = (padded([task[i] for task in tasks], x.device) for i in (0, 1))  # (T, n) each
    return meta_batch_loss(model, params, config, align, x[support], y[support], x[query], y[query], ws, wq)


def batch_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], config: TrainConfig, x: torch.Tensor,
               y: torch.Tensor, align: Align | None) -> torch.Tensor:
    """A single-level method's loss on one mini-batch (B, C, H, W): CE (+ lambda L_aux for multitask)."""
    align_weight = config.align_weight if METHODS[config.method].auxiliary else 0.0
    return branch_loss(model, params, x, y, align, align_weight)


def task_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], config: TrainConfig, align: Align | None,
              xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor,
              ws: torch.Tensor | None = None, wq: torch.Tensor | None = None) -> torch.Tensor:
    """A bi-level method's loss of one task: support (xs, ys), query (xq, yq), with 0/1 sample weights."""
    align_weight = config.align_weight if METHODS[config.method].auxiliary else 0.0
    query_weight = align_weight if config.outer_align else 0.0
    beta = config.outer_base_weight
    inner_align, inner_ce = level_one_weights(config)
    # level one: task-specific learning in both branches, on the support subjects
    # (task_unit subject: the auxiliary branch alone, label-free, on one subject's clips)
    fast = adapt(model, params, xs, ys, align=align, align_weight=inner_align, inner_lr=config.inner_lr,
                 inner_steps=config.inner_steps, first_order=config.first_order, weight=ws, ce_weight=inner_ce)
    # level two: the adapted weights meet new people (the query subjects); their loss refines the shared weights
    loss = branch_loss(model, fast, xq, yq, align, query_weight, wq)
    if beta:  # MLDG-style: the base weights themselves must be good too (their CE, + lambda L_aux on halves)
        loss = loss + beta * branch_loss(model, params, xs, ys, align, align_weight * inner_ce, ws)
    return loss


def meta_batch_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], config: TrainConfig, align: Align | None,
                    xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor, ws: torch.Tensor,
                    wq: torch.Tensor) -> torch.Tensor:
    """The mean task loss of a meta-batch: (T, n, C, H, W) support and query sets with (T, n) labels and
    weights (padding 0), the T tasks as one torch.func.vmap batch."""
    def one(xs, ys, xq, yq, ws, wq):
        return task_loss(model, params, config, align, xs, ys, xq, yq, ws, wq)

    losses = torch.func.vmap(one, randomness="different")(xs, ys, xq, yq, ws, wq)
    return losses.mean()  # (T,) -> ()


def level_one_weights(config: TrainConfig) -> tuple[float, float]:
    """(lambda, CE weight) of level one's support loss: CE + lambda L_aux, or with task_unit subject the
    label-free auxiliary loss alone (as a new person is adapted at test time)."""
    if config.task_unit == "subject":
        return 1.0, 0.0
    return (config.align_weight if METHODS[config.method].auxiliary else 0.0), 1.0


def draw_task(sampler: FoldSampler, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """One task's (support, query) training indices: two halves of the training subjects, or
    (task_unit subject) one subject's clips for both."""
    if config.task_unit == "subject":
        clips = sampler.subject_episode(config.batch_size)
        return clips, clips
    return sampler.episode(config.shots, config.query_shots)


def padded(sets: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index sets of different sizes (a class can be missing from a half of the subjects) -> (T, n)
    indices, each set repeated to the longest, and (T, n) weights: 1 for its own samples, 0 for the padding."""
    n = max(len(s) for s in sets)
    index = np.stack([np.resize(s, n) for s in sets])
    weight = np.arange(n) < np.array([len(s) for s in sets])[:, None]
    return torch.as_tensor(index, device=device), torch.as_tensor(weight, dtype=torch.float32, device=device)


# ----------------------------------------------------------------------------------------------
# what a fold trains on and how it is evaluated


def make_align(config: TrainConfig, data: MerData, test_subject: str) -> Align | None:
    """The auxiliary targets of a fold (None without the auxiliary branch); the test subject's own
    macro-expressions are left out. Controls: `shuffled` permutes the templates (a fixed derangement),
    `random` replaces them by random smooth fields; both seeded by config.seed."""
    if not METHODS[config.method][1]:
        return None
    if config.aux_target == "class_macro":
        targets, has_target = macro_targets(data, exclude_subject=test_subject)  # (K, 2, H, W), (K,)
    else:
        targets = macro_prototypes(data, exclude_subject=test_subject)            # (P, 2, H, W)
        has_target = torch.ones(len(targets), dtype=torch.bool, device=targets.device)
    generator = torch.Generator().manual_seed(config.seed)
    if config.aux_control == "random" and len(targets):
        targets = random_smooth_fields(len(targets), targets.shape[-1], generator).to(targets.device)
        targets = unit_field(targets, data.face_mask)
    permutation = None
    if config.aux_control == "shuffled" and len(targets) > 1:
        order = torch.randperm(len(targets), generator=generator)
        permutation = torch.empty_like(order)
        permutation[order] = order.roll(1)  # order[i] -> order[i + 1]: no target keeps its place
        permutation = permutation.to(targets.device)
    return Align(targets, has_target, data.face_mask, config.aux_target, config.aux_gate, permutation,
                 config.aux_smooth, config.aux_macro_pull)


def random_smooth_fields(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, size, size) Gaussian noise blurred to blobs of about a sixth of the face: the
    random-field control, as smooth as a macro-expression field but carrying no expression."""
    coarse = torch.randn(n, 2, 6, 6, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def fold_inputs(config: TrainConfig, data: MerData) -> torch.Tensor:
    """(N, C, H, W): the model input [u, v, strain] (centred per subject with subject_norm), plus the
    channels the self target reads: the photometric terms and a fixed per-sample mask of visible
    cells (a 6 x 6 grid, aux_mask_ratio of the cells hidden), drawn from config.seed."""
    x = subject_centered(data.x, data.subject) if config.subject_norm else data.x
    if not (METHODS[config.method][1] and config.aux_target == "self"):
        return x
    n, _, h, w = x.shape
    generator = torch.Generator().manual_seed(config.seed)
    cells = (torch.rand(n, 1, 6, 6, generator=generator) >= config.aux_mask_ratio).float()
    visible = F.interpolate(cells, size=(h, w), mode="nearest").to(x.device)
    return torch.cat([x, data.photo, visible], dim=1)


def norm_parameter_names(model: torch.nn.Module) -> set[str]:
    """The affine parameters of the normalisation layers (what TENT adapts)."""
    norms = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)
    return {f"{name}.{p}" if name else p for name, module in model.named_modules() if isinstance(module, norms)
            for p, _ in module.named_parameters(recurse=False)}


def test_time_adapt(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, config: TrainConfig,
                    align: Align | None) -> dict[str, torch.Tensor]:
    """The transductive protocol: `test_adapt_steps` SGD steps on one test subject's inputs `x`,
    label-free (the auxiliary loss, or TENT's prediction entropy); no label is passed in."""
    trainable = norm_parameter_names(model) if config.test_adapt_params == "norm" else None
    no_labels = torch.zeros(len(x), dtype=torch.long, device=x.device)  # never read: ce_weight 0

    def loss(w):
        if config.test_adapt_loss == "entropy":
            logp = functional_call(model, w, (x[:, :MODEL_CHANNELS],)).float().log_softmax(dim=1)
            return -(logp.exp() * logp).sum(1).mean()
        return branch_loss(model, w, x, no_labels, align, 1.0, ce_weight=0.0)

    start = {k: v.detach() for k, v in params.items()}
    with torch.enable_grad():
        fast = sgd_steps(loss, start, lr=config.test_adapt_lr, steps=config.test_adapt_steps, first_order=True,
                         trainable=trainable)
    return {k: v.detach() for k, v in fast.items()}


def support_adapted(model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    config: TrainConfig, sampler: FoldSampler, align: Align | None) -> dict[str, torch.Tensor]:
    """eval_adapt: the trained weights adapted as level one adapts them, on one support episode
    drawn from the training subjects (their labels only), so what is evaluated is what level two
    optimised."""
    s = torch.as_tensor(draw_task(sampler, config)[0], device=x.device)
    inner_align, inner_ce = level_one_weights(config)
    start = {k: v.detach() for k, v in params.items()}
    with torch.enable_grad():
        fast = adapt(model, start, x[s], y[s], align=align, align_weight=inner_align, inner_lr=config.inner_lr,
                     inner_steps=config.inner_steps, first_order=True, ce_weight=inner_ce)
    return {k: v.detach() for k, v in fast.items()}


# ----------------------------------------------------------------------------------------------
# one fold


@dataclass
class Trained:
    """A model trained on a fold's training subjects, with what evaluating it needs."""

    model: torch.nn.Module
    x: torch.Tensor             # (N, C, H, W) the fold's inputs, every sample of the data
    y: torch.Tensor             # (N,) training labels (label_noise applied); test rows never read
    train_index: np.ndarray
    align: Align | None
    curve: list[float]
    seconds: float


def train_model(config: TrainConfig, data: MerData, fold: int, test_subject: str | None, device: torch.device,
                progress: bool = False, after_step: Callable[[int, torch.nn.Module, torch.Tensor], None] | None = None
                ) -> Trained:
    """Train on every subject but `test_subject` (None: on all, as `mer-train fit`) for exactly
    `config.steps` outer steps. `after_step(step, model, x)` is called after each (step counted from
    1; x the fold's inputs): a schedule pilot reads the predictions of a shorter schedule on the way,
    the same as that schedule's own run would give (the learning rate is constant)."""
    model, sampler, y, train_index, align = start_fold(config, data, fold, test_subject, device)
    params = dict(model.named_parameters())
    optimizer = adam(model.parameters(), config)
    x = fold_inputs(config, data)  # (N, C, H, W)
    autocast = autocast_for(device)

    curve, start = [], time.perf_counter()
    label = f"fold {fold} ({test_subject})" if test_subject is not None else "all subjects"
    for step in tqdm(range(config.steps), desc=label, leave=False, disable=not progress):
        with autocast:
            loss = outer_loss(model, params, config, x, y, sampler, align)
        if not torch.isfinite(loss):  # stop before the weights (and any checkpoint) are poisoned
            raise TrainError(
                f"{label}: the training loss is {loss.item()} at step {step + 1} of "
                f"{config.steps}; this fold is not saved (completed folds keep their checkpoints). Check the "
                f"shards for NaN or infinite flow values, or lower lr (now {config.lr})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curve.append(loss.item())
        if after_step is not None:
            after_step(step + 1, model, x)
    return Trained(model, x, y, train_index, align, curve, time.perf_counter() - start)


def start_fold(config: TrainConfig, data: MerData, fold: int, test_subject: str | None, device: torch.device):
    """What a fold starts from: its initial model (weights seeded by (seed, fold)), its sampler of
    training indices (seeded by (seed, fold)), its training labels and indices, its auxiliary targets."""
    train_index = np.flatnonzero(data.subject != test_subject)
    torch.manual_seed(config.seed * 1_000_003 + fold)  # the model's initial weights
    rng = np.random.default_rng([config.seed, fold])    # the batches and tasks
    train_index, y = training_set(config, fold, data, train_index)  # subject_fraction, label_noise (training only)
    sampler = FoldSampler(y.cpu().numpy(), data.subject, train_index, rng)
    model = build_model(config, data).to(device)
    return model, sampler, y, train_index, make_align(config, data, test_subject)


def adam(parameters, config: TrainConfig) -> torch.optim.Adam:
    # foreach: each Adam op runs over all tensors at once, not per tensor (~1 ms less per CPU step); same bits
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def build_model(config: TrainConfig, data: MerData) -> torch.nn.Module:
    """The config's model for the data's classes; region models get the template's landmarks."""
    extra = {"landmarks": data.landmarks} if get_input_spec(config.model).landmarks and data.landmarks is not None else {}
    return create_model(config.model, num_classes=len(data.classes), input_size=config.input_size, **extra)


def autocast_for(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def support_weights(config: TrainConfig, trained: Trained, data: MerData, fold: int) -> list[dict | None]:
    """The inductive evaluation weights: the trained ones (eval_adapt 0, [None]), or those adapted on
    eval_adapt support episodes of the training subjects (what level two optimised)."""
    if not config.eval_adapt:
        return [None]
    model, params = trained.model, dict(trained.model.named_parameters())
    sampler = FoldSampler(trained.y.cpu().numpy(), data.subject, trained.train_index,
                          np.random.default_rng([config.seed, fold, 11]))
    with autocast_for(trained.x.device):
        return [support_adapted(model, params, trained.x, trained.y, config, sampler, trained.align)
                for _ in range(config.eval_adapt)]


def predict_subject(model: torch.nn.Module, weights: list[dict | None], x: torch.Tensor, config: TrainConfig,
                    align: Align | None) -> np.ndarray:
    """(n, K) probabilities of one subject's inputs `x`: averaged over `weights`; with test_adapt_steps
    each weight set is first adapted on `x` itself (transductive; `x` carries no label)."""
    autocast = autocast_for(x.device)
    model.eval()  # no dropout while adapting at test time and predicting
    probs = []
    for w in weights:
        if config.test_adapt_steps:
            with autocast:
                w = test_time_adapt(model, w if w is not None else dict(model.named_parameters()), x, config, align)
        probs.append(predict(model, x, config.eval_batch_size, autocast, w))
    model.train()
    return np.mean(probs, axis=0)


def train_fold(config: TrainConfig, data: MerData, fold: int, test_subject: str, device: torch.device,
               progress: bool = False) -> dict[str, Any]:
    """Train on every subject but `test_subject` for exactly `config.steps` steps, then predict it
    (inductive: the test subject's inputs are read only to be predicted; transductive, with
    test_adapt_steps or subject_norm: its unlabelled inputs also adapt the model; never its labels)."""
    return fold_result(config, data, fold, test_subject, train_model(config, data, fold, test_subject, device, progress))


def fold_result(config: TrainConfig, data: MerData, fold: int, test_subject: str, trained: Trained) -> dict[str, Any]:
    """Predict a trained fold's test subject (as `predict_subject` says); the fold's result and weights."""
    device = trained.x.device
    test_index = np.flatnonzero(data.subject == test_subject)
    test_x = trained.x[torch.as_tensor(test_index, device=device)]
    probs = predict_subject(trained.model, support_weights(config, trained, data, fold), test_x, config, trained.align)
    return {
        "fold": {"index": fold, "subject": test_subject, "n_train": len(trained.train_index), "n_test": len(test_index),
                 "train_subjects": sorted(set(data.subject[trained.train_index].tolist()))},
        "protocol": protocol(config),
        "sample_id": data.sample_id[test_index].tolist(),
        "probs": probs.tolist(),
        "curve": trained.curve,
        "seconds": trained.seconds,
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
    }


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, autocast,
            params: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """(N, C, H, W) -> (N, K) class probabilities, with the model's weights or `params`."""
    was_training = model.training
    model.eval()
    chunks = []
    for i in range(0, len(x), batch_size):
        batch = x[i:i + batch_size, :MODEL_CHANNELS]
        with autocast:
            logits = model(batch) if params is None else functional_call(model, params, (batch,))
        chunks.append(logits.float().softmax(dim=1).cpu())
    model.train(was_training)
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
