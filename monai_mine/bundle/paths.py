# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Where a bundle lives: the folder of the bundle whose configs are running (``bundle_root``), and the bundles
shipped with this installation.

A bundle's ``bundle_root`` is the folder that holds its ``configs/``; everything a bundle writes goes below it
(``models/``, ``eval/``, ``runs/``). As in the model zoo, the configs hold a plain default (``"bundle_root": "."``,
a bundle run from inside its own folder) and a command run from elsewhere passes the folder
(``--bundle_root bundles/vtn_addd``); tools that read a bundle's configs themselves (MONAI Label, MONAI Deploy,
:func:`monai_mine.bundle.load_trained_model`) set it to the bundle folder. Every workflow's ``initialize`` list
first calls :func:`check_bundle_root`, so a ``bundle_root`` that is not a bundle folder stops the run before anything
is written.
"""

from __future__ import annotations

import logging
import os
from importlib.resources import files
from pathlib import Path

__all__ = ["BundleRootError", "bundle_weights", "check_bundle_root", "shipped_bundle_dir"]

logger = logging.getLogger(__name__)

_PACKAGE_DATA = "shipped_bundles"
"""The folder of the installed package that holds the shipped bundles (setup.py copies ``bundles/`` there)."""


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "metadata.json").is_file()


class BundleRootError(FileNotFoundError):
    """``bundle_root`` is not a bundle folder (one with ``configs/metadata.json``)."""


def check_bundle_root(root: str | os.PathLike) -> str:
    """Check that ``root`` is a bundle folder, log where the bundle writes, and return ``root``.

    The bundles' ``initialize`` lists call it first with ``@bundle_root``: the configs' default ``"."`` is right only
    when a command runs inside the bundle's folder, and a wrong one would write ``models/``, ``eval/`` and ``runs/``
    into whatever folder the command runs in.

    Raises:
        BundleRootError: (a ``FileNotFoundError``) naming the folder when it holds no ``configs/metadata.json``,
            with what to pass instead.
    """
    folder = Path(root)
    if not _is_bundle(folder):
        raise BundleRootError(
            f"bundle_root {os.fspath(root)!r} ({folder.resolve()}) is not a bundle folder: it has no "
            "configs/metadata.json. Pass --bundle_root <the folder of the bundle whose configs you run> (e.g. "
            "--bundle_root bundles/<name> from the repository's root), or run the command inside that folder."
        )
    logger.info(f"bundle_root: {os.fspath(root)} (models/, eval/ and runs/ are written below it)")
    return os.fspath(root)


def bundle_weights(bundle_dir: str | os.PathLike, weights: str | os.PathLike | None = None) -> Path:
    """``weights``, or by default the bundle's trained weights ``<bundle_dir>/models/model.pt``."""
    return Path(bundle_dir) / "models" / "model.pt" if weights is None else Path(weights)


def _source_tree_bundles() -> Path | None:
    """``bundles/`` of the source checkout this package is imported from (an editable install), if any."""
    package = Path(os.fspath(files("monai_mine")))
    folder = package.parent / "bundles"
    return folder if (package.parent / "setup.cfg").is_file() and folder.is_dir() else None


def shipped_bundle_dir(name: str) -> Path:
    """The folder of bundle ``name`` (e.g. ``"vtn_addd"``) that ships with monai-mine, the copy that the benchmark and
    the MONAI Label app start from: the package data ``monai_mine/shipped_bundles/<name>`` of an installed wheel, or
    ``bundles/<name>`` of the source checkout of an editable install.

    Raises:
        FileNotFoundError: when this installation has no such bundle.
    """
    candidates = [Path(os.fspath(files("monai_mine"))) / _PACKAGE_DATA / name]
    source = _source_tree_bundles()
    if source is not None:
        candidates.insert(0, source / name)
    for folder in candidates:
        if _is_bundle(folder):
            return folder
    raise FileNotFoundError(
        f"no bundle {name!r} in this installation (looked in {', '.join(os.fspath(c) for c in candidates)})."
    )
