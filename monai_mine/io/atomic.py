# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Atomic output: write a file (or a folder of files) beside the target under a temporary name, then rename it into
place, so that a reader sees the whole result or none of it."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from monai_mine.io.lock import output_lock

__all__ = ["atomic_folder", "atomic_output", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DEFAULT_FILE_MODE = 0o666 & ~_umask()


def _naming(error: OSError, action: str) -> OSError:
    """The same kind of ``OSError`` (same errno, so the same subclass: ``PermissionError``, ...), its message naming
    what was being done."""
    return OSError(error.errno, f"{action}: {error.strerror or error}")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (same suffix); on success it replaces ``path``.

    A reader never sees a partial file, and a failure (or a kill) leaves any previous ``path`` untouched; the
    temporary file is removed on failure (a killed process may leave a ``.<name>.*`` file behind, never ``path``).

    Raises:
        OSError: of the original kind (e.g. ``PermissionError``), naming ``path``, when its folder cannot be created
            or written to, or the disk is full.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as error:
        if error.errno is None:
            raise
        raise _naming(error, f"cannot write {path} (in folder {path.parent})") from error
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _DEFAULT_FILE_MODE)  # mkstemp creates 0600; give the file open()'s usual permissions
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            raise _naming(error, f"could not write {path}") from error
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def _check_parents(path: Path) -> None:
    """Refuse a folder path that is, or lies below, a file."""
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise OSError(errno.ENOTDIR, f"cannot write the folder {path}: {folder} is a file, not a folder")
            break


def _remove_stale(path: Path) -> None:
    """Remove the hidden ``.<name>.partial-*`` and ``.<name>.earlier-*`` folders that killed runs left beside
    ``path`` (called with ``path``'s lock held, so no live run is writing them)."""
    for pattern in (f".{path.name}.partial-*", f".{path.name}.earlier-*"):
        for stale in path.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _check_replaceable(path: Path, overwrite: bool, replaceable: Callable[[str], bool]) -> None:
    """Refuse to replace a non-empty folder without ``overwrite``, or one holding files ``replaceable`` rejects."""
    entries = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise OSError(
            errno.EEXIST,
            f"the output folder {path} holds {len(entries)} file(s) of an earlier run ({', '.join(entries[:4])}"
            f"{', ...' if len(entries) > 4 else ''}): pass --overwrite to replace it as a whole, or choose another",
        )
    foreign = [name for name in entries if not replaceable(name)]
    if foreign:
        raise OSError(
            errno.EEXIST,
            f"the output folder {path} holds files that this command does not write ({', '.join(foreign[:4])}"
            f"{', ...' if len(foreign) > 4 else ''}): --overwrite replaces only earlier results; choose another",
        )


@contextmanager
def atomic_folder(
    path: str | os.PathLike, overwrite: bool = False, replaceable: Callable[[str], bool] = lambda name: True
) -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; on success it becomes ``path``, whole.

    ``path`` must not exist, be empty, or (with ``overwrite``) hold only files whose names ``replaceable``
    accepts: the earlier folder is then replaced as a whole once the new one is complete. On failure the temporary
    folder is removed; a killed process leaves at most a hidden ``.<name>.partial-*`` folder beside ``path``, never
    a mix of two runs in ``path``, and the next run to ``path`` removes it. One run at a time writes ``path``
    (:func:`~monai_mine.io.lock.output_lock`, held for the whole block).

    Raises:
        OSError: naming ``path``: another live run writing it (``EBUSY``), a folder of earlier results without
            ``overwrite``, files ``replaceable`` rejects, a file where the folder should be, or a folder that
            cannot be created or written.
    """
    path = Path(path)
    _check_parents(path)
    with ExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(output_lock(path))
        except OSError as error:
            if error.errno in (None, errno.EBUSY):
                raise
            raise _naming(error, f"cannot write {path} (in folder {path.parent})") from error
        _remove_stale(path)
        _check_replaceable(path, overwrite, replaceable)
        yield stack.enter_context(_staged_folder(path))


@contextmanager
def _staged_folder(path: Path) -> Iterator[Path]:
    """The temporary folder of :func:`atomic_folder`, renamed to ``path`` on success and removed on failure."""
    try:
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    except OSError as error:
        if error.errno is None:
            raise
        raise _naming(error, f"cannot write {path} (in folder {path.parent})") from error
    try:
        yield temporary
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder mkdir()'s usual permissions
        if path.exists():
            earlier = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.earlier-"))
            os.replace(path, earlier / path.name)
            os.replace(temporary, path)
            shutil.rmtree(earlier, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
