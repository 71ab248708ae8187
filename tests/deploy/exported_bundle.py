# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A tiny VTN-ADDD bundle exported with ckpt_export, and a NIfTI pair, for the MONAI Deploy adapter tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle.scripts import ckpt_export

REPOSITORY = Path(__file__).resolve().parents[2]
SIZE = 16
"""Working grid edge of the tiny bundle (a multiple of the depth-3 VTN's stride 8)."""

AFFINE = np.array([[2.0, 0, 0, -20.0], [0, 1.5, 0, 10.0], [0, 0, 1.0, 5.0], [0, 0, 0, 1]])
"""Voxel-to-world matrix of the test pair (RAS, anisotropic voxels, shifted origin)."""


def blob(shape: tuple[int, int, int], centre: tuple[float, float, float]) -> np.ndarray:
    """A Gaussian blob (peak 110 on a background of 10) centred at ``centre`` (voxels)."""
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    squared = sum((grid[i] - centre[i]) ** 2 for i in range(3))
    return (100.0 * np.exp(-squared / 18.0) + 10.0).astype(np.float32)


def write_pair(folder: Path) -> dict[str, Path]:
    """``moving.nii.gz`` and ``fixed.nii.gz`` (20^3, AFFINE): a blob shifted by 2 voxels along axis 0."""
    paths = {}
    for name, centre in (("moving", (11.0, 9.0, 10.0)), ("fixed", (9.0, 9.0, 10.0))):
        paths[name] = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(blob((20, 20, 20), centre), AFFINE), paths[name])
    return paths


def export_tiny_bundle(folder: Path) -> SimpleNamespace:
    """Copy ``bundles/vtn_addd`` to ``folder`` with 4-channel networks (``configs/quick.json``) at 16^3, save
    untrained weights as ``models/model.pt`` and export ``models/model.ts`` with ``ckpt_export`` (traced at
    1 x 2 x 16^3). Returns ``folder``, ``ts`` (the archive) and ``network`` (the eager network, eval mode)."""
    shutil.copytree(
        REPOSITORY / "bundles" / "vtn_addd", folder, ignore=shutil.ignore_patterns("models", "eval", "runs")
    )
    inference = folder / "configs" / "inference.json"
    config = json.loads(inference.read_text())
    config["network_channels"] = json.loads((REPOSITORY / "configs" / "quick.json").read_text())["network_channels"]
    config["image_size"] = SIZE
    inference.write_text(json.dumps(config, indent=4))
    parser = ConfigParser()
    parser.read_config(str(inference))
    parser["bundle_root"] = str(folder)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    (folder / "models").mkdir()
    torch.save(network.state_dict(), folder / "models" / "model.pt")
    ts = folder / "models" / "model.ts"
    ckpt_export(
        "network_def",
        filepath=str(ts),
        ckpt_file=str(folder / "models" / "model.pt"),
        meta_file=str(folder / "configs" / "metadata.json"),
        config_file=str(inference),
        use_trace=True,
        input_shape=[1, 2, SIZE, SIZE, SIZE],
        bundle_root=str(folder),
    )
    return SimpleNamespace(folder=folder, ts=ts, network=network)
