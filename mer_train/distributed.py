"""LOSO folds as tasks: every (method, seed, fold) training of one or many runs, in this process, on a
local Dask cluster of worker processes, or on an existing `dask.distributed` cluster.

    scheduler = "local"        a LocalCluster of `workers` processes (default: all cores, at most one
                               per fold), one thread each, on 127.0.0.1
    scheduler = "tcp://H:P"    an existing cluster: its workers must import this mer_train and see the
                               shard sets and the run directory at the same paths (shared storage)
    scheduler = "synchronous"  in this process, one fold after another (debugging, tests)

A task trains one fold with the fold function it is given (`mer_train.trainer.train_fold`, passed
from the calling process so that a test can replace it) and writes the fold's checkpoint. A worker
loads a shard set once, keyed on `mer_train.data.DATA_KEYS`, and keeps it for every fold of every
run that reads the same data, so its memory does not grow with the number of folds.

With `--fold-batch K` a task is a `FoldGroup`: K folds of one run, trained together on the
worker's device (`mer_train.fold_batch.train_folds`); each fold's checkpoint is written when its group
finishes, and a result comes back per fold, as without groups.

At most one fold per worker thread is handed out at a time: when a fold fails, the folds already
running finish and keep their checkpoints, nothing new starts, and the run stops with the fold's
error. A fold whose worker process dies (a crash in native code, out of memory) is retried once on a
fresh worker; when that one dies too, the run stops with a `TrainError` naming the fold.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .config import TrainConfig
from .errors import ConfigError, TrainError

log = logging.getLogger("mer_train")

SYNCHRONOUS = "synchronous"
LOCAL = "local"        # --scheduler local: a local cluster of --workers processes (all cores by default)
# What runs the folds when neither --workers nor --scheduler is given: None = a local cluster of all
# cores. (The test suite sets SYNCHRONOUS in tests/conftest.py: its folds are tiny, and the cluster
# paths have their own tests in tests/test_train_dask.py.)
DEFAULT_SCHEDULER: str | None = None
ALLOWED_FAILURES = 1   # worker deaths a fold survives on a local cluster: retried once, then the run stops
CONNECT_TIMEOUT_S = 10
WORKER_WAIT_S = 60     # how long an existing cluster may take to show its first worker
CACHE_SIZE = 2         # shard sets a worker keeps (one per DATA_KEYS value; compare and a study share one)


@dataclass(frozen=True)
class FoldTask:
    """One fold of one run: what a worker needs, and nothing it could not pickle."""

    config: TrainConfig   # resolved: absolute shard paths, `out` set
    fold: int
    subject: str
    checkpoint: Path
    run: str              # "lightman seed 0": names the run in errors

    @property
    def name(self) -> str:
        return f"fold {self.fold} ({self.subject}) of {self.run}"


@dataclass(frozen=True)
class FoldGroup:
    """Folds of one run trained together (`--fold-batch K`): a task like a FoldTask, named by its folds."""

    tasks: tuple[FoldTask, ...]

    config = property(lambda self: self.tasks[0].config)
    fold = property(lambda self: self.tasks[0].fold)
    run = property(lambda self: self.tasks[0].run)
    checkpoint = property(lambda self: self.tasks[0].checkpoint)

    @property
    def name(self) -> str:
        return f"{folds_label([(t.fold, t.subject) for t in self.tasks])} of {self.run}"


def folds_label(folds: Sequence[tuple[int, str]]) -> str:
    """`fold 3 (s03)`, or for several consecutive folds `folds 0-2 (s00, s01, s02)` (more than four
    subjects: the first and the last)."""
    if len(folds) == 1:
        return f"fold {folds[0][0]} ({folds[0][1]})"
    subjects = [subject for _, subject in folds]
    named = ", ".join(subjects) if len(subjects) <= 4 else f"{subjects[0]}, ..., {subjects[-1]}"
    return f"folds {folds[0][0]}-{folds[-1][0]} ({named})"


def group_folds(tasks: Sequence[FoldTask], size: int) -> list[FoldGroup]:
    """`tasks` cut into groups of up to `size` consecutive folds of the same run."""
    groups: list[list[FoldTask]] = []
    for task in tasks:
        if groups and groups[-1][0].run == task.run and len(groups[-1]) < size:
            groups[-1].append(task)
        else:
            groups.append([task])
    return [FoldGroup(tuple(group)) for group in groups]


def choose_scheduler(workers: int | None, scheduler: str | None, data_given: bool = False) -> str | None:
    """The scheduler a run uses: SYNCHRONOUS, an address, or None for a local cluster ("local", or
    only `workers` given); in this process when the caller passed its own data (workers load theirs
    from the shards), DEFAULT_SCHEDULER when nothing is said."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if workers is not None and scheduler not in (None, LOCAL):
        what = "runs every fold in this process" if scheduler == SYNCHRONOUS else "brings its own workers"
        raise ConfigError(f"--workers {workers} starts a local cluster, but --scheduler {scheduler} {what}: "
                          "pass one of the two")
    if data_given:
        if workers is not None or scheduler not in (None, SYNCHRONOUS):
            raise ConfigError("data= trains in this process (workers read the shard sets themselves): drop data= "
                              "to run the folds on Dask workers, or drop workers= / scheduler=")
        return SYNCHRONOUS
    if scheduler == LOCAL or workers is not None:
        return None
    return DEFAULT_SCHEDULER if scheduler is None else scheduler


def is_remote(scheduler: str | None) -> bool:
    return scheduler not in (None, SYNCHRONOUS)


# ----------------------------------------------------------------------------------------------
# the task: one fold, in a worker or in this process


def train_fold_task(fold_fn: Callable[..., Any], task: FoldTask | FoldGroup, data: Any = None,
                    progress: bool = False) -> dict[str, Any] | list[dict[str, Any]]:
    """Train `task`'s fold with `fold_fn`, write its checkpoint, return its result without the
    weights (the caller pools predictions; the weights stay in the checkpoint). A FoldGroup: `fold_fn`
    takes the list of (fold, subject) pairs, and a list of results comes back."""
    from .loso import cpu_threads, save_checkpoint

    with cpu_threads(task.config.threads):
        device = worker_device(task.config.device)
        if data is None:
            data = worker_data(task.config, device)
        if isinstance(task, FoldGroup):
            results = fold_fn(task.config, data, [(t.fold, t.subject) for t in task.tasks], device, progress)
            for one, result in zip(task.tasks, results):
                save_checkpoint(one.checkpoint, one.config, data, result)
            return [{**without_weights(result), "device": str(device)} for result in results]
        result = fold_fn(task.config, data, task.fold, task.subject, device, progress)
        save_checkpoint(task.checkpoint, task.config, data, result)
    return {**without_weights(result), "device": str(device)}


def without_weights(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "state_dict"}


_DATA: OrderedDict[tuple, Any] = OrderedDict()
_LOADS = [0]  # shard-set loads by this process (cache_info)


def data_key(config: TrainConfig) -> tuple:
    """Two configs with equal keys load the same MerData."""
    from .data import DATA_KEYS

    return tuple((name, getattr(config, name)) for name in DATA_KEYS)


def worker_data(config: TrainConfig, device) -> Any:
    """The MerData of `config` on `device`, loaded on this worker's first fold that needs it."""
    from .data import load_data

    key = (data_key(config), str(device))
    if key not in _DATA:
        _DATA[key] = load_data(config).to(device)
        _LOADS[0] += 1
        while len(_DATA) > CACHE_SIZE:
            _DATA.popitem(last=False)
    _DATA.move_to_end(key)
    return _DATA[key]


def cache_info() -> dict[str, int]:
    """Loads and cached shard sets of this process (run it on workers with `client.run`)."""
    return {"loads": _LOADS[0], "cached": len(_DATA), "pid": os.getpid()}


def worker_device(name: str):
    """The torch device of `name` (auto | cpu | cuda) for this process; with several GPUs, worker
    number i of a local cluster takes GPU i mod count."""
    import torch

    from .loso import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        index = _worker_number()
        if index is not None:
            device = torch.device("cuda", index % torch.cuda.device_count())
    return device


def _worker_number() -> int | None:
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    return name if isinstance(name, int) else None


# ----------------------------------------------------------------------------------------------
# running the tasks


@contextmanager
def fold_runner(tasks: Sequence[FoldTask], *, scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """The Dask client that will train `tasks` (None: in this process, or nothing to train). Opened
    before a run writes anything, so that an unreachable scheduler leaves no trace."""
    if not tasks or scheduler == SYNCHRONOUS:
        yield None
        return
    with cluster_client(workers=workers or default_workers(tasks), scheduler=scheduler) as client:
        yield client


def run_folds(tasks: Sequence[FoldTask | FoldGroup], fold_fn: Callable[..., Any], client: Any = None, *,
              local_data: Mapping[str, Any] | None = None, progress: bool = False, bar=None,
              task_fn: Callable[..., Any] = train_fold_task) -> list[dict[str, Any]]:
    """Train every task, on `client`'s workers or (None) in this process; one result per fold, in
    task order (a group's folds in their order). `local_data` (run name -> MerData on its device)
    serves the in-process path; `bar` (a tqdm) advances once per finished fold. `task_fn(fold_fn,
    task, data, progress)` runs one task (`mer_train.tune` passes its own, for tasks with the same
    `fold`, `run`, `name`, `checkpoint`)."""
    if client is not None:
        return _per_fold(_run_on(client, tasks, fold_fn, bar, task_fn))
    results = []
    for task in tasks:
        results.append(task_fn(fold_fn, task, (local_data or {}).get(task.run), progress))
        if bar is not None:
            bar.update(_folds(task))
    return _per_fold(results)


def _folds(task: FoldTask | FoldGroup) -> int:
    return len(task.tasks) if isinstance(task, FoldGroup) else 1


def _per_fold(results: list) -> list[dict[str, Any]]:
    return [one for result in results for one in (result if isinstance(result, list) else [result])]


def default_workers(tasks: Sequence[FoldTask]) -> int:
    """All cores (one worker per visible GPU for CUDA runs), and never more workers than folds."""
    import torch

    cuda = any(t.config.device in ("cuda", "auto") for t in tasks) and torch.cuda.is_available()
    cores = torch.cuda.device_count() if cuda else os.cpu_count() or 1
    return max(1, min(cores, len(tasks)))


def _run_on(client, tasks: Sequence[FoldTask | FoldGroup], fold_fn: Callable[..., Any], bar,
            task_fn: Callable[..., Any] = train_fold_task) -> list[Any]:
    from distributed import KilledWorker, as_completed

    slots = max(1, sum(client.nthreads().values()))
    queue = iter(range(len(tasks)))
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    running: dict[Any, int] = {}
    tag = uuid.uuid4().hex[:8]  # keys unique on a cluster shared by several runs
    finished = as_completed()

    def submit() -> None:
        index = next(queue, None)
        if index is None:
            return
        task = tasks[index]
        future = client.submit(task_fn, fold_fn, task, pure=False, retries=0,
                               key=f"mer-train-{tag}-{task.run.replace(' ', '-')}-fold{task.fold:03d}")
        running[future] = index
        finished.add(future)

    for _ in range(slots):
        submit()
    failure: BaseException | None = None
    died: FoldTask | None = None
    for future in finished:
        index = running.pop(future)
        try:
            results[index] = future.result()
        except KilledWorker as error:
            if failure is None:
                failure, died = error, tasks[index]
        except Exception as error:  # noqa: BLE001  (re-raised below, once the running folds are in)
            failure = failure or error
        else:
            if bar is not None:
                bar.update(_folds(tasks[index]))
        if failure is None:
            submit()
    if died is not None:
        raise _worker_died(died, sum(r is not None for r in results), failure) from failure
    if failure is not None:
        raise failure
    return results  # type: ignore[return-value]


def _worker_died(task: FoldTask, done: int, error: BaseException) -> TrainError:
    return TrainError(
        f"{task.name}: the Dask worker process died on every attempt (a crash in native code, or out of "
        f"memory); a LOSO missing a fold is not a result, so the run stops here. The {done} fold(s) finished "
        f"in this call keep their checkpoints in {task.checkpoint.parent}: rerun the same command to resume; "
        f"to see the fold's own error, run it with --scheduler synchronous ({type(error).__name__})")


@contextmanager
def cluster_client(*, workers: int, scheduler: str | None) -> Iterator[Any]:
    """A `distributed.Client`: of an existing cluster at `scheduler`, or of a new local one."""
    import dask
    from distributed import Client

    with ExitStack() as stack:
        if scheduler is None:
            stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}))
            client = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
        else:
            client = stack.enter_context(_connect(scheduler))
        yield client


def local_cluster(workers: int):
    """`workers` processes of one thread each. Loopback only, and the dashboard on any free port."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)


def _connect(address: str):
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise TrainError(f"--scheduler {address}: no dask.distributed scheduler answers there ({error}). Start one "
                         "(`dask scheduler`, then `dask worker ADDRESS` on each machine), pass --scheduler "
                         "synchronous to train in this process, or --workers N for a local cluster") from error
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (OSError, TimeoutError) as error:
        client.close()
        raise TrainError(f"--scheduler {address}: the scheduler has no workers after {WORKER_WAIT_S} s; start "
                         f"some with `dask worker {address}`") from error
    return client


def quiet_dask() -> None:
    """Dask's own INFO chatter (worker starts, restarts) off; errors still show. Importing
    distributed configures its loggers, so the levels are set after that import."""
    import distributed  # noqa: F401

    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.ERROR)
