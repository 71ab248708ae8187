# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Where a bundle lives: the folder of the bundle whose configs are running (``bundle_root``), and the bundles
shipped in this source tree.

A bundle's ``bundle_root`` is the folder that holds its ``configs/`` (MONAI's ``ConfigWorkflow`` takes the first
config file's folder as ``config_root_path``, and the bundle folder is its parent). Everything a bundle writes goes
below it, so a bundle folder copied anywhere (the model zoo's ``models/<name>/``, a MONAI Label app) runs against
and writes into itself.
"""

from __future__ import annotations

import logging
import os
from importlib.resources import files
from pathlib import Path

from monai_mine.bundle.context import running_workflow

__all__ = ["announce_bundle_root", "bundle_root", "bundle_weights", "shipped_bundle_dir"]

logger = logging.getLogger(__name__)

_PACKAGE_DATA = "shipped_bundles"
"""The folder of the installed package that holds the shipped bundles (setup.py copies ``bundles/`` there)."""


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "metadata.json").is_file()


def bundle_root() -> str:
    """The folder of the bundle whose configs are being run; what the bundles' ``"bundle_root"`` evaluates to.

    It is the parent of the running ``ConfigWorkflow``'s config folder (``--config_file bundles/b/configs/train.json``
    gives ``bundles/b``), else the working directory when it is a bundle folder. Found inside a workflow, the value
    is written into the workflow's config as a plain string, so that it stays put when the config is parsed again
    outside the workflow's own methods (e.g. ``workflow.parser.get_parsed_content(...)`` after ``initialize()``;
    the bundles' ``initialize`` lists resolve it first). Tools that parse a bundle's configs themselves (MONAI Label,
    MONAI Deploy, :func:`monai_mine.bundle.load_trained_model`) set ``bundle_root`` explicitly.

    Raises:
        FileNotFoundError: when neither is a bundle folder (one with ``configs/metadata.json``).
    """
    workflow = running_workflow()
    if workflow is not None and _is_bundle(Path(workflow.config_root_path).parent):
        found = os.fspath(Path(workflow.config_root_path).parent)
        workflow.parser.config["bundle_root"] = found  # not through __setitem__: the parser is mid-resolution
        return found
    if _is_bundle(Path.cwd()):
        return os.fspath(Path.cwd())
    searched = [os.fspath(Path(workflow.config_root_path).parent)] if workflow is not None else []
    tried = ", ".join([*searched, os.fspath(Path.cwd())])
    raise FileNotFoundError(
        f"cannot tell which bundle is running ({tried} holds no configs/metadata.json): pass --bundle_root <folder of "
        "the bundle>, or run its configs as --config_file <bundle>/configs/<name>.json."
    )


def announce_bundle_root(root: str | os.PathLike) -> str:
    """Log where the running bundle writes, and return ``root``. The bundles' ``initialize`` lists call it first
    with ``@bundle_root``, which also fixes ``bundle_root`` while the workflow is on the call stack."""
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
