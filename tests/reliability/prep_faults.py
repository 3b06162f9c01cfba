"""Run `mer-prep` with one fault injected at a named point: the test-only fault-injection hook.

    python prep_faults.py POINT ACTION [mer-prep arguments ...]

POINT   write:N       while shard N is being written (half of it is in its temporary file)
        rename:NAME   NAME is complete under its temporary name, just before the rename to NAME
        renamed:NAME  just after a file got its final name NAME
ACTION  kill          SIGKILL this process (nothing of Python runs afterwards: no finally, no atexit)
        pause         create the file $MER_FAULT_PAUSED and sleep until killed

Nothing is patched in the package itself: the hook wraps open and os.replace in this process only.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def strike(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    Path(os.environ["MER_FAULT_PAUSED"]).touch()
    while True:
        time.sleep(1)


def install(point: str, action: str) -> None:
    where, _, arg = point.partition(":")
    if where == "write":
        import builtins

        shard, real_open = f"-{int(arg):05d}.h5.tmp-", builtins.open

        class HalfWritten:
            def __init__(self, handle):
                self.handle = handle

            def write(self, data):
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                os.fsync(self.handle.fileno())
                strike(action)

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

        def patched_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            return HalfWritten(handle) if "w" in mode and shard in str(file) else handle

        builtins.open = patched_open
    elif where in ("rename", "renamed"):
        replace = os.replace

        def patched(src, dst, *args, **kwargs):
            hit = Path(dst).name == arg
            if hit and where == "rename":
                strike(action)
            replace(src, dst, *args, **kwargs)
            if hit:
                strike(action)

        os.replace = patched
    else:
        raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    install(sys.argv[1], sys.argv[2])
    from mer_pipeline.cli import main

    main(sys.argv[3:])
