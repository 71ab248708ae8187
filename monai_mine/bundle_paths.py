# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Finding a bundle's folder, so that its configs work from the repository root and from the bundle itself."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_bundle_root"]

_REPOSITORY = Path(__file__).resolve().parents[1]


def find_bundle_root(name: str) -> str:
    """The folder of bundle ``name`` (e.g. ``"vtn_addd"``), where ``models/`` and ``eval/`` are written.

    Looked up, in order: the working directory when it is the bundle (it holds ``configs/metadata.json`` and is
    called ``name``), ``./bundles/<name>``, and ``bundles/<name>`` in the source tree this package was installed
    from. Anywhere else (e.g. a bundle copied into a MONAI Label app) pass ``--bundle_root``.

    Raises:
        FileNotFoundError: when none of these holds the bundle.
    """
    cwd = Path.cwd()
    candidates = [cwd] if cwd.name == name else []
    candidates += [cwd / "bundles" / name, _REPOSITORY / "bundles" / name]
    for candidate in candidates:
        if (candidate / "configs" / "metadata.json").is_file():
            return os.fspath(candidate)
    tried = ", ".join(os.fspath(candidate) for candidate in candidates)
    raise FileNotFoundError(f"cannot find bundle {name!r} (tried {tried}); pass --bundle_root <folder of the bundle>.")
