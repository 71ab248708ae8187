# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""An output lock: one writer at a time for an output path, so that two runs never replace each other's results.

The lock is an ``fcntl.flock`` on a hidden file ``.<name>.lock`` beside the output, holding the writer's process
id. The kernel releases it when the process exits, however it exits, so the lock of a killed run is stale by
construction: the next run takes it over without a word.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["lock_path", "output_lock"]


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output path: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _holder(lock: Path) -> str:
    """The process id written in a lock file, for messages (``"unknown"`` when unreadable)."""
    try:
        return lock.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``path`` for the duration of the block; the lock file is removed when it ends.

    Raises:
        OSError: ``EBUSY``, naming ``path`` and the process id of the run that holds it, when another live process
            writes ``path``; of the original kind when the lock file cannot be created.
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise OSError(
                errno.EBUSY,
                f"the output {path} is being written by another run (process {_holder(lock)}, lock file {lock}): "
                "wait for it to end, or choose another output",
            ) from None
        try:  # the holder before us may have removed the file after we opened it: lock the file that is there now
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(descriptor)):
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        os.close(descriptor)
