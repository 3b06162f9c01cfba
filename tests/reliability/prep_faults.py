"""Run `mer-prep` with one fault injected at a named point: the test-only fault-injection hook.

    python prep_faults.py POINT ACTION [mer-prep arguments ...]

POINT   write:N       while shard N is being written (its temporary file is open, part of its data stored)
        rename:NAME   NAME is complete under its temporary name, just before the rename to NAME
        renamed:NAME  just after a file got its final name NAME
ACTION  kill          SIGKILL this process (nothing of Python runs afterwards: no finally, no atexit)
        pause         create the file $MER_FAULT_PAUSED and sleep until killed

Nothing is patched in the package itself: the hook wraps h5py and os.replace in this process only.
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
        import h5py

        shard = f"-{int(arg):05d}.h5.tmp-"
        create = h5py.Group.create_dataset

        def create_dataset(self, name, *args, **kwargs):
            if name == "flow" and shard in self.file.filename:  # onset and apex are stored already
                self.file.flush()
                strike(action)
            return create(self, name, *args, **kwargs)

        h5py.Group.create_dataset = create_dataset
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
