"""LOSO folds as Dask tasks (mer_train.distributed): a local cluster of worker processes, an existing
cluster by address (a real `dask scheduler` + `dask worker` started here), and in this process.

One LocalCluster of two worker processes is shared by the module (a start costs seconds); the tests
that need their own (`--workers 2`, a worker dying in a fold) start one.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import mer_train
from mer_train import distributed, loso, trainer
from mer_train.ablation import comparison_tables, markdown_table
from mer_train.cli import main
from mer_train.errors import ConfigError, TrainError

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"
SUBJECTS = 5
DASK = Path(sys.executable).parent / "dask"


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 single-threaded worker processes; yields (address, client)."""
    from distributed import Client

    with distributed.local_cluster(2) as local, Client(local) as client:
        client.wait_for_workers(2, timeout=120)
        yield local.scheduler_address, client


@pytest.fixture
def by_value():
    """This module's functions travel to the workers by value (they cannot import a test module)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def train_cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def files(run: Path) -> tuple[bytes, dict]:
    return (run / "predictions.csv").read_bytes(), json.loads((run / "metrics.json").read_text())["overall"]


def test_two_workers_give_the_predictions_of_the_synchronous_run(fake_root, tmp_path):
    quick = ["--shards", fake_root, "--config", CI, "--method", "lightman", "--set", "steps=4", "-q"]
    train_cli(*quick, "--scheduler", "synchronous", "--out", tmp_path / "sync")
    output = train_cli(*quick, "--workers", "2", "--out", tmp_path / "workers")
    assert output.startswith(f"lightman on casme2-5, {SUBJECTS} LOSO folds, 50 samples: UF1 ")
    assert files(tmp_path / "workers") == files(tmp_path / "sync")  # bit for bit, metrics and predictions
    metrics = json.loads((tmp_path / "workers" / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["protocol"] == "inductive"
    assert len(list((tmp_path / "workers" / "checkpoints").glob("fold-*.pt"))) == SUBJECTS


class Bars:
    """Stands in for tqdm in mer_train.loso: records every bar made."""

    made: list[dict] = []

    def __init__(self, total=None, initial=0, **kwargs):
        self.n, self.total = initial, total
        Bars.made.append({"total": total, "initial": initial, "bar": self})

    def update(self, n=1):
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_compare_submits_every_fold_of_every_run_under_one_bar_and_workers_load_the_shards_once(
        fake_root, tmp_path, cluster, monkeypatch):
    address, client = cluster
    before = client.run(distributed.cache_info)
    monkeypatch.setattr(loso, "tqdm", Bars)
    Bars.made = []
    config = mer_train.load_config(CI, {"shards": [str(fake_root)], "steps": 2})
    result = mer_train.compare(config, ["erm", "multitask"], seeds=2, out=tmp_path / "cmp", progress=True,
                               scheduler=address)
    assert [(b["total"], b["initial"], b["bar"].n) for b in Bars.made] == [(4 * SUBJECTS, 0, 4 * SUBJECTS)]
    after = client.run(distributed.cache_info)
    loads = {worker: after[worker]["loads"] - before.get(worker, {"loads": 0})["loads"] for worker in after}
    # 20 folds of 4 runs on 2 workers: each worker read the shard set at most once (never per fold)
    assert all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1, loads
    assert all(info["cached"] <= distributed.CACHE_SIZE for info in after.values())
    assert sorted(result.runs) == ["erm", "multitask"] and all(len(r) == 2 for r in result.runs.values())
    assert result.table.startswith("Inductive protocol (the test subject is never touched): LOSO, casme2-5")
    assert "Not comparable" not in result.table
    summary = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["protocol"] for r in summary["runs"]["erm"]] == ["inductive", "inductive"]


def test_a_rerun_on_workers_never_redoes_a_complete_fold(fake_root, tmp_path, cluster):
    address, _ = cluster
    first = mer_train.train(CI, shards=[str(fake_root)], out=str(tmp_path / "run"), method="erm", steps=3,
                            scheduler=address)
    checkpoints = first.out / "checkpoints"
    (checkpoints / "fold-003.pt").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("fold-*.pt")}
    again = mer_train.train(CI, shards=[str(fake_root)], out=str(tmp_path / "run"), method="erm", steps=3,
                            scheduler=address)
    assert {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("fold-*.pt") if p.name in kept} == kept
    assert (checkpoints / "fold-003.pt").is_file()
    assert again.metrics["overall"] == first.metrics["overall"]
    assert (again.out / "predictions.csv").read_bytes() == (first.out / "predictions.csv").read_bytes()


def failing_fold(config, data, fold, subject, device, progress=False):
    """A fold function whose fold 1 raises, as a NaN loss does; the others train for real."""
    if fold == 1:
        raise TrainError(f"fold {fold} ({subject}): planted failure")
    return trainer.train_fold(config, data, fold, subject, device, progress)


def test_a_failing_fold_stops_the_run_and_the_running_folds_keep_their_checkpoints(
        fake_root, tmp_path, cluster, monkeypatch, by_value):
    monkeypatch.setattr(trainer, "train_fold", failing_fold)
    with pytest.raises(TrainError, match=r"fold 1 \(casme2/sub01\): planted failure"):
        mer_train.train(CI, shards=[str(fake_root)], out=str(tmp_path / "run"), method="erm", steps=3,
                        scheduler=cluster[0])
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("fold-*.pt"))
    # folds 0 and 1 went out first (one per worker); after the failure nothing new started
    assert saved == ["fold-000.pt"]
    assert not (tmp_path / "run" / "metrics.json").exists()


def metrics_of(protocol: str | None, uf1: float) -> dict:
    part = {"uf1": uf1, "uar": uf1}
    return {"overall": part, "per_dataset": {"casme2": part}, **({"protocol": protocol} if protocol else {})}


def test_compare_never_puts_two_protocols_in_one_table():
    runs = {"erm": [metrics_of(None, 0.5), metrics_of(None, 0.7)],
            "lightman": [metrics_of("inductive", 0.6), metrics_of("transductive", 0.9)]}
    text = comparison_tables(runs, [0, 1], "casme2-5")
    lines = text.splitlines()
    assert lines[0].startswith("Not comparable: the inductive and transductive tables below use different protocols")
    titles = [line for line in lines if " protocol (" in line and line.endswith("seeds 0, 1")]
    assert [t.split(":")[0] for t in titles] == [
        "Inductive protocol (the test subject is never touched)",
        "Transductive protocol (each model adapts on its test subject's unlabelled inputs before predicting)"]
    inductive, transductive = text.split(titles[1])
    assert "| erm | 0.600 ± 0.141 |" in inductive and "| lightman | 0.600 ± 0.000 |" in inductive
    assert "erm" not in transductive and "| lightman | 0.900 ± 0.000 |" in transductive
    # one protocol: one table, no warning (absent means inductive)
    single = comparison_tables({"erm": runs["erm"]}, [0, 1], "casme2-5")
    assert single == markdown_table({"erm": runs["erm"]}, [0, 1], "casme2-5") and "Not comparable" not in single


@pytest.mark.parametrize("args, words", [
    (["--workers", "2", "--scheduler", "synchronous"],
     "--workers 2 starts a local cluster, but --scheduler synchronous runs every fold in this process"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "brings its own workers: pass one of the two"),
])
def test_contradicting_cluster_options_are_refused_before_anything_is_written(fake_root, tmp_path, args, words):
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--config", str(CI), *args,
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and words in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_data_passed_in_trains_in_this_process_only(fake_root, tmp_path):
    config = mer_train.load_config(CI, {"shards": [str(fake_root)], "out": str(tmp_path / "run")})
    data = loso.load_data(config)
    with pytest.raises(ConfigError, match="data= trains in this process"):
        mer_train.train(config, data=data, workers=2)
    assert not (tmp_path / "run").exists()


def test_an_address_without_a_scheduler_names_the_fix(fake_root, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    port = free_port()
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--config", str(CI), "--method", "erm",
                                       "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: --scheduler tcp://127.0.0.1:{port}: no dask.distributed scheduler "
                                    "answers there")
    assert "`dask scheduler`, then `dask worker ADDRESS`" in result.output and "Traceback" not in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and one `dask worker` as subprocesses on 127.0.0.1 (at most 5 minutes
    each, killed at teardown); yields the address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [open(tmp_path / name, "wb") for name in ("scheduler.log", "worker.log")]
    commands = [["timeout", "300", DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                ["timeout", "300", DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--name", "external-0"]]
    processes = []
    try:
        for command, log in zip(commands, logs):
            processes.append(subprocess.Popen([str(c) for c in command], stdout=log, stderr=subprocess.STDOUT,
                                              cwd=tmp_path))  # another working directory than the client's
            time.sleep(0.5)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


@pytest.mark.slow
def test_an_existing_cluster_started_with_the_dask_cli_runs_a_loso(fake_root, tmp_path, dask_cluster):
    quick = ["--shards", fake_root, "--config", CI, "--method", "maml", "--set", "steps=3", "-q"]
    output = train_cli(*quick, "--scheduler", dask_cluster, "--out", tmp_path / "external")
    assert output.startswith(f"maml on casme2-5, {SUBJECTS} LOSO folds, 50 samples: UF1 ")
    train_cli(*quick, "--scheduler", "synchronous", "--out", tmp_path / "sync")
    assert files(tmp_path / "external") == files(tmp_path / "sync")
    from distributed import Client

    with Client(dask_cluster, timeout=10) as client:  # the folds ran on that worker, which loaded the data once
        info = list(client.run(distributed.cache_info).values())
    assert [i["loads"] for i in info] == [1]


# ----------------------------------------------------------------------------------------------
# a worker process dying in the middle of a fold (os._exit: no exception, no cleanup), under a real
# LocalCluster with worker processes (`mer_train.train(..., workers=2)`)

VICTIM = 2  # fold 2 tests casme2/sub02
ERM = {"method": "erm", "steps": 3}


@pytest.fixture(scope="module")
def clean_run(fake_root, tmp_path_factory) -> Path:
    """The run directory of an undisturbed in-process run: what every recovery must match."""
    out = tmp_path_factory.mktemp("clean") / "run"
    mer_train.train(CI, shards=[str(fake_root)], out=str(out), scheduler="synchronous", **ERM)
    return out


def dying_fold(config, data, fold, subject, device, progress=False, *, marker: Path | None):
    """train_fold, except that the worker process exits in the middle of fold VICTIM: once when
    `marker` names a file to create, on every attempt when it is None. (On a worker,
    `trainer.train_fold` is the real one: the monkeypatch lives in the test process only.)"""
    if fold == VICTIM and (marker is None or not marker.exists()):
        if marker is not None:
            marker.touch()
        os._exit(1)
    return trainer.train_fold(config, data, fold, subject, device, progress)


@pytest.mark.slow
def test_a_worker_dying_once_in_a_fold_is_retried_and_the_run_matches_a_clean_one(
        fake_root, clean_run, tmp_path, monkeypatch, by_value):
    marker = tmp_path / "died-once"
    monkeypatch.setattr(trainer, "train_fold", functools.partial(dying_fold, marker=marker))
    result = mer_train.train(CI, shards=[str(fake_root)], out=str(tmp_path / "run"), workers=2, **ERM)
    assert marker.exists(), "the worker did die"
    assert len(result.metrics["folds"]) == SUBJECTS
    assert (result.out / "predictions.csv").read_bytes() == (clean_run / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_a_worker_dying_twice_in_a_fold_stops_the_run_naming_the_fold_and_a_rerun_resumes(
        fake_root, clean_run, tmp_path, monkeypatch, by_value):
    real = trainer.train_fold
    monkeypatch.setattr(trainer, "train_fold", functools.partial(dying_fold, marker=None))
    run = tmp_path / "run"
    with pytest.raises(TrainError) as caught:
        mer_train.train(CI, shards=[str(fake_root)], out=str(run), workers=2, **ERM)
    message = str(caught.value)
    assert message.startswith(f"fold {VICTIM} (casme2/sub02) of erm seed 0: the Dask worker process died on every "
                              "attempt")
    assert "rerun the same command to resume" in message and "--scheduler synchronous" in message
    saved = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("fold-*.pt")}
    assert f"fold-{VICTIM:03d}.pt" not in saved and saved, saved  # the finished folds are kept
    assert f"The {len(saved)} fold(s) finished" in message
    assert not (run / "metrics.json").exists()  # a LOSO missing a fold is not a result

    trained = []  # the cause is gone: the rerun (here in this process) trains only what is missing
    monkeypatch.setattr(trainer, "train_fold", lambda config, data, fold, *a: trained.append(fold)
                        or real(config, data, fold, *a))
    result = mer_train.train(CI, shards=[str(fake_root)], out=str(run), scheduler="synchronous", **ERM)
    assert {name: (run / "checkpoints" / name).stat().st_mtime_ns for name in saved} == saved
    assert sorted(trained) == sorted(set(range(SUBJECTS)) - {int(n[5:8]) for n in saved})
    assert (result.out / "predictions.csv").read_bytes() == (clean_run / "predictions.csv").read_bytes()


def test_gpu_check_script_parses_and_refuses_unknown_options():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--cpu-dry-run" in usage.stdout and "< 5 minutes" in usage.stdout
    wrong = subprocess.run(["bash", str(script), "--gpus", "2"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown option --gpus" in wrong.stderr


@pytest.mark.slow
def test_a_killed_run_on_workers_leaves_no_worker_behind_and_resumes(fake_root, tmp_path):
    import signal

    import psutil
    import torch

    steps = ["--set", "steps=60"]
    reference = tmp_path / "reference"
    train_cli("--shards", fake_root, "--config", CI, "--method", "erm", *steps, "--scheduler", "synchronous", "-q",
              "--out", reference)
    run = tmp_path / "run"
    process = subprocess.Popen([str(Path(sys.executable).parent / "mer-train"), "--shards", str(fake_root), "--config",
                                str(CI), "--method", "erm", *steps, "--workers", "2", "-q", "--out", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(list((run / "checkpoints").glob("fold-*.pt"))) < 2:
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = psutil.Process(process.pid).children(recursive=True)
    assert workers, "the local cluster runs in worker processes"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    _, alive = psutil.wait_procs(workers, timeout=60)  # they notice that their parent is gone
    assert not alive, [p.pid for p in alive]
    assert not (run / "metrics.json").exists()
    saved = {p: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("fold-*.pt")}
    for path in saved:  # every checkpoint under its final name is complete
        torch.load(path, weights_only=True)

    train_cli("--shards", fake_root, "--config", CI, "--method", "erm", *steps, "--scheduler", "synchronous", "-q",
              "--out", run)
    assert all(p.stat().st_mtime_ns == t for p, t in saved.items())  # resumed, not retrained
    assert files(run) == files(reference)
