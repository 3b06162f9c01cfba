"""Output storage that refuses writes: a read-only folder, a full disk (a real size-limited tmpfs when
this machine lets us mount one, and injected ENOSPC faults everywhere else).

Each ends with a clear error naming the file or folder, never a traceback from the CLI, never a
half-written file under a final name; the rerun after the cause is fixed matches a clean run.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mer_pipeline.cli import main
from mer_pipeline.errors import MerError
from mer_pipeline.shards import verify_shards
from reliability_helpers import CLI_OPTIONS, output_files, prep

pytestmark = pytest.mark.slow


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, required: bool = True):
    """A tmpfs of `size` at `path`; where mounting is not allowed, the test is skipped. With
    `required` False a non-root user gets a plain folder instead (its permission bits can make it
    read-only; root ignores them, so root needs the mount)."""
    path.mkdir(parents=True)
    result = mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)) if os.geteuid() == 0 else None
    if result is None and not required:
        yield path
        return
    if result is None or result.returncode:
        reason = result.stderr.strip() if result else "not root"
        pytest.skip(f"cannot mount a size-limited tmpfs ({reason}); test_injected_enospc_* cover the error paths")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(path: Path):
    """Make the folder `path` read-only: a read-only remount as root (root ignores permission bits),
    the permission bits otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield path
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    result = mount("-o", "remount,ro", str(path))
    if result.returncode:
        pytest.skip(f"cannot remount {path} read-only ({result.stderr.strip()})")
    try:
        yield path
    finally:
        mount("-o", "remount,rw", str(path))


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


def test_read_only_output_folder_is_a_clear_error(tiny_raw, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", "4m", required=False) as disk, read_only(disk):
        out = disk / "out"
        code, err = run_cli(capsys, "casme2", tiny_raw, out, *CLI_OPTIONS)
        assert code == 1 and err.startswith(f"Error: {out}: cannot write to the output folder ("), err
        assert "Read-only file system" in err or "Permission denied" in err
        assert "choose a writable output folder" in err and "Traceback" not in err
        assert not out.exists()


def test_resuming_into_a_read_only_set_leaves_it_intact(tiny_raw, clean_out, tmp_path):
    with tmpfs(tmp_path / "disk", "4m", required=False) as disk:
        out = disk / "out"
        shutil.copytree(clean_out, out)
        with read_only(disk):
            with pytest.raises(MerError, match=f"{out}: cannot write to the output folder"):
                prep(tiny_raw, out)
        assert verify_shards(out) == [] and output_files(out) == output_files(clean_out)


def test_full_disk_stops_with_a_clear_error_and_resumes_when_space_is_freed(tiny_raw, clean_out, tmp_path):
    reference = output_files(clean_out)
    shard = max(len(v) for k, v in reference.items() if k.endswith(".h5"))
    pages = -(-shard // 4096)
    with tmpfs(tmp_path / "disk", f"{(2 * pages + 3) * 4}k") as disk:  # room for two shards, not three
        out = disk / "out"
        with pytest.raises(MerError) as error:
            prep(tiny_raw, out)
        message = str(error.value)
        assert f"{out / 'shards' / 'casme2-00002.h5'}: cannot write (No space left on device)" in message, message
        assert "free some space" in message and "rerun mer-prep to resume" in message
        names = sorted(p.name for p in (out / "shards").iterdir())
        assert names == ["casme2-00000.h5", "casme2-00001.h5"]  # complete ones only, no temporary file
        assert all((out / "shards" / n).read_bytes() == reference[f"shards/{n}"] for n in names)
        assert not (out / "manifest.json").exists()

        assert mount("-o", f"remount,size={4 * (8 * pages + 8)}k", str(disk)).returncode == 0
        summary = prep(tiny_raw, out)
        assert summary.reused == 2 and output_files(out) == reference


def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_injected_enospc_while_writing_a_shard(tiny_raw, clean_out, tmp_path, monkeypatch):
    """The same error path without a mount: fsync of the third shard's temporary file fails."""
    fsync, calls = os.fsync, []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise enospc(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    out = tmp_path / "out"
    with pytest.raises(MerError) as error:
        prep(tiny_raw, out)
    assert f"{out / 'shards' / 'casme2-00002.h5'}: cannot write (No space left on device)" in str(error.value)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["casme2-00000.h5", "casme2-00001.h5"]
    monkeypatch.undo()
    assert prep(tiny_raw, out).reused == 2 and output_files(out) == output_files(clean_out)


@pytest.mark.parametrize("name", ["manifest.json", "failures.jsonl"])
def test_injected_enospc_while_writing_the_manifest_or_failures(name, tiny_raw, clean_out, tmp_path, monkeypatch):
    """Half of the file is written, then the disk is full: no file of that name appears, no temporary
    file is left behind, and the set is not taken for complete."""
    real_open = open

    class HalfFull:
        def __init__(self, handle, path):
            self.handle, self.path = handle, path

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise enospc(self.path)

        def __getattr__(self, attr):
            return getattr(self.handle, attr)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def patched_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return HalfFull(handle, path) if "w" in mode and Path(path).name.startswith(f".{name}.tmp-") else handle

    import builtins
    import pathlib

    monkeypatch.setattr(builtins, "open", patched_open)
    monkeypatch.setattr(pathlib.Path, "open", lambda self, mode="r", *a, **k: patched_open(self, mode, *a, **k))
    out = tmp_path / "out"
    with pytest.raises(MerError) as error:
        prep(tiny_raw, out)
    monkeypatch.undo()
    assert f"{out / name}: cannot write (No space left on device)" in str(error.value), str(error.value)
    assert not (out / name).exists()
    assert not list(out.glob(f".{name}.tmp-*")) and not (out / "manifest.json").exists()
    assert prep(tiny_raw, out).reused == 4 and output_files(out) == output_files(clean_out)
