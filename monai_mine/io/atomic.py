# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Atomic file output: write to a temporary file beside the target, then rename it into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "atomic_write_text"]


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
