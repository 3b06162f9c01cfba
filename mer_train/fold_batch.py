"""Several LOSO folds trained at once on one device: `mer-train train --fold-batch K`.

The K fold models' parameters (and buffers) are stacked along a new leading dimension
(`torch.func.stack_module_state`), and one outer step of all K folds is one `torch.func.vmap` over
the folds of the arithmetic of one fold (`trainer.batch_loss`, `trainer.meta_batch_loss`, whose
level one takes `torch.func.grad` inside). Adam steps the stacked tensors: it is elementwise, so a
stacked parameter moves as the K separate ones would. On a GPU the K small models become one wide
batch; on the CPU it saves the per-op overhead of K small calls.

Each fold keeps what it has alone (`trainer.start_fold`): initial weights seeded by (seed, fold), its
own sampler and generator, its training labels (label_noise) and subjects (subject_fraction), its
auxiliary targets. Its draws are made outside vmap, in the order one fold alone makes them, and go in
as index tensors; the sets of different sizes are padded with samples of weight 0, as the tasks of a
meta-batch already are. So every fold sees the same samples and the same arithmetic as alone; only
the order of the sums inside the batched kernels differs, and predictions equal the one-at-a-time
run's to float tolerance, not bit for bit (tests/test_fold_batch.py states the tolerance).

Evaluation runs fold by fold once the group has trained, with each fold's own weights
(`trainer.fold_result`: eval_adapt episodes, test-time adaptation, prediction), exactly as alone.

What cannot be batched exactly is refused before anything trains (`check_batchable`), with the
config key and `--fold-batch 1`: a model with dropout (its masks would come from another random
stream under vmap), a bi-level method with a model that keeps running statistics (level one would
update them inside the vmap over tasks), a model whose operations vmap does not support.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.func import stack_module_state
from tqdm.auto import tqdm

from . import trainer
from .distributed import folds_label
from .config import METHODS, TrainConfig
from .data import MerData
from .errors import ConfigError, TrainError
from .trainer import ALIGN_TENSORS, Align, Trained

DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
           torch.nn.FeatureAlphaDropout)


def check_batchable(config: TrainConfig, data: MerData) -> None:
    """Raise ConfigError when `config`'s folds cannot be trained together exactly (module docstring)."""
    model = trainer.build_model(config, data)
    fix = "; train it with --fold-batch 1 (one fold at a time)"
    dropout = [(name, m.p) for name, m in model.named_modules() if isinstance(m, DROPOUT) and m.p > 0]
    if dropout:
        name, p = dropout[0]
        raise ConfigError(f"--fold-batch: model = {config.model} has dropout ({name or 'the model'}, p = {p}), whose "
                          "random masks under torch.func.vmap come from other random streams than one fold's alone, "
                          f"so the folds would not train as they do alone{fix}, or choose a model without dropout "
                          "(slimcnn, slimcnn_tiny, slimcnn_wide, dual_inception)")
    if METHODS[config.method].bilevel and any(True for _ in model.buffers()):
        raise ConfigError(f"--fold-batch: model = {config.model} keeps running statistics (buffers, e.g. BatchNorm), "
                          f"which level one of method = {config.method} would update inside the vmap over tasks"
                          f"{fix}, or a single-level method (erm, multitask)")
    try:  # a vmapped forward of two stacked copies, both heads: operations vmap cannot batch fail here
        params, buffers = stack_module_state([model, copy.deepcopy(model)])
        x = torch.zeros(2, 2, trainer.MODEL_CHANNELS, config.input_size, config.input_size)
        torch.func.vmap(lambda w, xb: torch.func.functional_call(model, w, (xb,), {"aux": True})[0].sum(),
                        randomness="error")({**params, **buffers}, x)
    except RuntimeError as error:
        raise ConfigError(f"--fold-batch: model = {config.model} does not run under torch.func.vmap ({error})"
                          f"{fix}") from error


def train_folds(config: TrainConfig, data: MerData, folds: list[tuple[int, str]], device: torch.device,
                progress: bool = False) -> list[dict[str, Any]]:
    """Train the LOSO folds `folds` ((index, test subject) pairs) together and predict each one's
    test subject: one result per fold, as `trainer.train_fold` returns it."""
    trained = train_group(config, data, folds, device, progress)
    return [trainer.fold_result(config, data, fold, subject, t) for (fold, subject), t in zip(folds, trained)]


def train_group(config: TrainConfig, data: MerData, folds: list[tuple[int, str]], device: torch.device,
                progress: bool = False) -> list[Trained]:
    """`trainer.train_model` for K folds at once: exactly `config.steps` outer steps of every fold."""
    starts = [trainer.start_fold(config, data, fold, subject, device) for fold, subject in folds]
    models = [start[0] for start in starts]
    params, buffers = stack_module_state(models)  # name -> (K, ...) leaves; buffers without grad
    base = copy.deepcopy(models[0]).to("meta")      # the functional shell the stacked weights run in
    optimizer = trainer.adam(params.values(), config)
    x = trainer.fold_inputs(config, data)           # (N, C, H, W): the same for every fold
    y = torch.stack([start[2] for start in starts])  # (K, N) each fold's training labels
    align, align_tensors = _stacked_align([start[4] for start in starts], folds)
    autocast = trainer.autocast_for(device)
    bilevel = METHODS[config.method].bilevel

    def fold_loss(weights, align_k, *inputs):  # one fold: its weights, targets and drawn samples
        fold_align = replace(align, **align_k) if align_k else align
        # the meta-batch is always the vmapped one here (trainer.VMAP_TASKS False only times the loop)
        if bilevel:
            return trainer.meta_batch_loss(base, weights, config, fold_align, *inputs)
        return trainer.batch_loss(base, weights, config, *inputs, fold_align)

    label = folds_label(folds)
    curves: list[list[float]] = [[] for _ in folds]
    start = time.perf_counter()
    for step in tqdm(range(config.steps), desc=label, leave=False, disable=not progress):
        inputs = _draw(config, [s[1] for s in starts], x, y)
        with autocast:
            losses = torch.func.vmap(fold_loss, randomness="error")({**params, **buffers}, align_tensors, *inputs)  # (K,)
        values = losses.detach().float().cpu()
        if not torch.isfinite(values).all():  # stop before the weights (and any checkpoint) are poisoned
            bad = [f"fold {fold} ({subject})" for (fold, subject), v in zip(folds, values) if not torch.isfinite(v)]
            raise TrainError(
                f"{', '.join(bad)}: the training loss is {values[~torch.isfinite(values)][0].item()} at step "
                f"{step + 1} of {config.steps}; no fold of {label} is saved (completed folds keep their "
                f"checkpoints). Check the shards for NaN or infinite flow values, or lower lr (now {config.lr})")
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the folds share nothing: each fold's weights get its own loss's gradient
        optimizer.step()
        for curve, value in zip(curves, values.tolist()):
            curve.append(value)
    seconds = (time.perf_counter() - start) / len(folds)  # each fold's share of the group's training time

    trained = []
    for k, (model, sampler, y_k, train_index, align_k) in enumerate(starts):
        with torch.no_grad():
            for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
                tensor.copy_((params | buffers)[name][k])
        trained.append(Trained(model, x, y_k, train_index, align_k, curves[k], seconds))
    return trained


def _draw(config: TrainConfig, samplers: list, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """One outer step's samples of every fold, drawn from each fold's own sampler in the order
    `trainer.outer_loss` draws them: the inputs of `batch_loss` (x (K, B, C, H, W), y (K, B)) or of
    `meta_batch_loss` (support and query inputs (K, T, n, C, H, W), labels and weights (K, T, n))."""
    k = len(samplers)
    folds = torch.arange(k, device=x.device)
    if not METHODS[config.method].bilevel:
        index = torch.as_tensor(np.stack([s.batch(config.batch_size) for s in samplers]), device=x.device)  # (K, B)
        return [x[index], y[folds[:, None], index]]
    tasks = [trainer.draw_task(s, config) for s in samplers for _ in range(config.meta_batch)]  # fold-major
    out = []
    for part in (0, 1):  # support, query: padded to the largest set of any task of any fold
        index, weight = trainer.padded([task[part] for task in tasks], x.device)  # (K T, n)
        index, weight = index.view(k, config.meta_batch, -1), weight.view(k, config.meta_batch, -1)
        out += [x[index], y[folds[:, None, None], index], weight]
    xs, ys, ws, xq, yq, wq = out
    return [xs, ys, xq, yq, ws, wq]


def _stacked_align(aligns: list[Align | None], folds: list[tuple[int, str]]) -> tuple[Align | None, dict]:
    """One Align for the group and its per-fold tensors ({} when every fold has the same targets, the
    usual case: macro shards of other people than the micro ones)."""
    first = aligns[0]
    if first is None:
        return None, {}
    per_fold = {}
    for name in ALIGN_TENSORS:
        tensors = [getattr(a, name) for a in aligns]
        if tensors[0] is None or all(t.shape == tensors[0].shape and torch.equal(t, tensors[0]) for t in tensors):
            continue
        if any(t is None or t.shape != tensors[0].shape for t in tensors):
            shapes = sorted({tuple(t.shape) if t is not None else None for t in tensors}, key=str)
            raise ConfigError(
                f"--fold-batch: the folds of {folds_label(folds)} have auxiliary targets of different sizes ({name} "
                f"{', '.join(map(str, shapes))}: a test subject's own macro-expressions are left out of its fold's "
                "targets, and here that removes a whole emotion); train this data with --fold-batch 1")
        per_fold[name] = torch.stack(tensors)
    return first, per_fold

