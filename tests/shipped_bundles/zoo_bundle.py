# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A bundle as the MONAI model zoo holds it (``models/<name>/``) and a small NIfTI dataset as the zoo's unit tests
write one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.helpers import copy_bundle, smooth_noise, write_nifti

ZOO_EXCLUDED = ("eval", "runs", "checkpoint.pt", "__pycache__")
"""What a zoo submission leaves out of a bundle folder: outputs of local runs and training checkpoints."""

SIZE = 32
"""The working grid of the small workflows (``image_size``)."""

SMALL = {
    "vtn_addd": {"image_size": SIZE},
    "vtn_addd_inv": {"image_size": SIZE},
    # the AffineNet's total stride 32 leaves one voxel at 32^3, too few for instance normalisation: stride 16 there
    "miregnet": {"image_size": SIZE, "network_def#affine_strides": [2, 2, 2, 1, 2, 1, 1, 1]},
    "midiceregnet": {"image_size": SIZE, "network_def#affine_strides": [2, 2, 2, 1, 2, 1, 1, 1]},
}
"""Overrides that run each bundle on the small grid (with ``configs/quick.json``: 4 channels, 2 x 2 iterations)."""

FAKE_SPLITS = {"training": 2, "validation": 1, "test": 1}
FAKE_SHAPE = (24, 28, 20)
FAKE_AFFINE = np.diag([1.2, 1.0, 1.5, 1.0])


def zoo_copy(models_dir: Path, name: str, weights: bool = True) -> Path:
    """Copy ``bundles/<name>`` to ``<models_dir>/<name>`` as a zoo submission (without :data:`ZOO_EXCLUDED`; without
    ``models/`` too unless ``weights``) and return the copy."""
    return copy_bundle(name, models_dir / name, ZOO_EXCLUDED if weights else (*ZOO_EXCLUDED, "models"))


def _save(path: Path, array: np.ndarray) -> str:
    return write_nifti(path, array, FAKE_AFFINE).name


def _labels(image: np.ndarray) -> np.ndarray:
    """0 background and 1, 2, 3 by intensity quantile, as the demo and brain data have three structures."""
    return np.digitize(image, np.quantile(image, [0.4, 0.6, 0.8])).astype(np.int16)


def write_fake_dataset(folder: Path, seed: int = 0) -> Path:
    """Paired NIfTI images and labels of :data:`FAKE_SHAPE` (anisotropic voxels) for every split of
    :data:`FAKE_SPLITS`, the moving image a shifted copy of the fixed one, and ``datalist.json``; returns
    ``folder`` (the bundles' ``dataset_dir``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    datalist = {}
    for split, count in FAKE_SPLITS.items():
        datalist[split] = []
        for index in range(count):
            fixed = smooth_noise(FAKE_SHAPE, rng, sigma=2.0, scale=1.0)
            moving = np.roll(fixed, (2, -1, 1), axis=(0, 1, 2))
            stem = f"{split}{index}"
            datalist[split].append(
                {
                    "fixed_image": _save(folder / f"{stem}_fixed.nii.gz", fixed),
                    "moving_image": _save(folder / f"{stem}_moving.nii.gz", moving),
                    "fixed_label": _save(folder / f"{stem}_fixed_seg.nii.gz", _labels(fixed)),
                    "moving_label": _save(folder / f"{stem}_moving_seg.nii.gz", _labels(moving)),
                }
            )
    (folder / "datalist.json").write_text(json.dumps(datalist, indent=1))
    return folder
