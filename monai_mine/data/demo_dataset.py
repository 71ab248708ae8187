# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The embedded demo dataset: synthetic pairs written once as NIfTI files plus a datalist JSON.

The dataset is generated on first use into a cache folder: ``$MONAI_MINE_DATA`` when set, else
``~/.cache/monai_mine``; each flavour and size gets its own subfolder (e.g. ``demo_mono_64``). A finished
dataset holds ``datalist.json`` (written last), and is reused as long as its recorded specification matches.
Generation happens in a temporary folder that is renamed at the end, so an interrupted run leaves no partial
dataset, and an existing folder without a matching datalist is never written into.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from monai_mine.data.synthetic import synthetic_pair
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL

__all__ = ["DEMO_FLAVOURS", "default_cache_dir", "demo_datalist"]

DEMO_FLAVOURS = ("mono", "contrast")
_SPLIT_SEEDS = {"training": 1000, "validation": 2000, "test": 3000}


def default_cache_dir() -> Path:
    """``$MONAI_MINE_DATA`` if set, else ``~/.cache/monai_mine``."""
    return Path(os.environ.get("MONAI_MINE_DATA", Path.home() / ".cache" / "monai_mine"))


def _write_pair(folder: Path, name: str, size: int, contrast: bool, seed: int) -> dict[str, str]:
    pair = synthetic_pair(size=size, contrast=contrast, seed=seed)
    files = {
        FIXED_IMAGE: pair.fixed,
        MOVING_IMAGE: pair.moving,
        FIXED_LABEL: pair.fixed_label,
        MOVING_LABEL: pair.moving_label,
        "displacement": pair.displacement,
    }
    item = {}
    for key, tensor in files.items():
        relative = f"{name}_{key}.nii.gz"
        save_nifti(tensor, folder / relative)
        item[key] = relative
    return item


def demo_datalist(
    flavour: str = "mono",
    size: int = 64,
    num_pairs: dict[str, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Path of the demo dataset's ``datalist.json``, generating the dataset first if needed.

    Each item has ``fixed_image``, ``moving_image``, ``fixed_label``, ``moving_label`` and ``displacement`` (the
    ground-truth DDF in voxels, (X, Y, Z, 3): ``moving = warp(fixed, displacement)``, or of the fixed anatomy
    rendered in the other contrast for the ``"contrast"`` flavour), relative to the datalist's folder. Seeds are
    fixed per split, so the dataset is the same on every machine.

    Args:
        flavour: ``"mono"`` (same contrast) or ``"contrast"`` (the moving image in another contrast).
        size: edge of each cubic volume, in voxels.
        num_pairs: pairs per split; default ``{"training": 24, "validation": 4, "test": 4}``.
        cache_dir: parent folder; default :func:`default_cache_dir`.

    Raises:
        ValueError: on an unknown flavour or a folder that holds something other than this dataset.
    """
    if flavour not in DEMO_FLAVOURS:
        raise ValueError(f"flavour must be one of {DEMO_FLAVOURS}, got {flavour!r}.")
    counts = dict(num_pairs or {"training": 24, "validation": 4, "test": 4})
    unknown = set(counts) - set(_SPLIT_SEEDS)
    if unknown:
        raise ValueError(f"num_pairs keys must be among {sorted(_SPLIT_SEEDS)}, got {sorted(unknown)}.")
    spec = {"flavour": flavour, "size": size, "num_pairs": counts, "version": 1}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"demo_{flavour}_{size}"
    datalist_path = folder / "datalist.json"
    if datalist_path.is_file():
        if json.loads(datalist_path.read_text()).get("spec") == spec:
            return datalist_path
        raise ValueError(f"{folder} holds a demo dataset of another specification; remove it or choose cache_dir.")
    if folder.exists():
        raise ValueError(f"{folder} exists but is not a finished demo dataset (no datalist.json); not writing into it.")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder.name}."))
    try:
        datalist: dict = {"spec": spec}
        for split, count in counts.items():
            datalist[split] = [
                _write_pair(staging, f"{split}_{index:03d}", size, flavour == "contrast", _SPLIT_SEEDS[split] + index)
                for index in range(count)
            ]
        (staging / "datalist.json").write_text(json.dumps(datalist, indent=2))
        try:
            os.replace(staging, folder)
        except OSError:  # another process (e.g. a second torchrun rank) finished the same dataset first
            if not (datalist_path.is_file() and json.loads(datalist_path.read_text()).get("spec") == spec):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return datalist_path
