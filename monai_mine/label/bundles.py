# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The bundle folders a MONAI Label app serves: ``<app>/model/<name>``, as MONAI Label's bundle app keeps them.

A bundle not yet in the app's model folder is copied there from monai-mine's ``bundles/<name>`` (configs, docs,
LICENSE and any trained ``models/``), so that training in the app writes its weights inside the app and the
repository's bundles are left untouched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from monai_mine.bundle import shipped_bundle_dir

__all__ = ["BUNDLE_NAMES", "prepare_app_bundles"]

BUNDLE_NAMES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")


def prepare_app_bundles(
    model_dir: str | os.PathLike,
    names: str | Sequence[str] = BUNDLE_NAMES,
    source: Callable[[str], str | os.PathLike] = shipped_bundle_dir,
) -> dict[str, Path]:
    """``{name: <model_dir>/<name>}`` for each bundle, copying a missing one from ``source(name)``.

    Args:
        model_dir: the app's model folder (created when missing).
        names: bundle names, or one comma-separated string as given with ``--conf models vtn_addd,miregnet``.
        source: where a bundle is copied from (default:
            :func:`monai_mine.bundle.shipped_bundle_dir`, this source tree's ``bundles/<name>``).

    Raises:
        ValueError: for a name that is not a monai-mine bundle.
        FileNotFoundError: when a bundle is in neither place.
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUNDLE_NAMES]
    if unknown or not names:
        raise ValueError(f"models must name monai-mine bundles from {list(BUNDLE_NAMES)}, got {list(names)}.")
    folder = Path(model_dir)
    bundles = {}
    for name in names:
        target = folder / name
        if not (target / "configs" / "metadata.json").is_file():
            origin = Path(source(name))
            staging = folder / f".{name}.copying"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(origin, staging, ignore=shutil.ignore_patterns("eval", "runs", "__pycache__"))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        bundles[name] = target
    return bundles
