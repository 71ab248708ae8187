# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A tiny VTN-ADDD bundle exported with ckpt_export, and a NIfTI pair, for the MONAI Deploy adapter tests."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from monai.bundle.scripts import ckpt_export

from tests.helpers import QUICK, copy_bundle, edit_configs, save_untrained_weights, voxel_blob, write_nifti

SIZE = 16
"""Working grid edge of the tiny bundle (a multiple of the depth-3 VTN's stride 8)."""

AFFINE = np.array([[2.0, 0, 0, -20.0], [0, 1.5, 0, 10.0], [0, 0, 1.0, 5.0], [0, 0, 0, 1]])
"""Voxel-to-world matrix of the test pair (RAS, anisotropic voxels, shifted origin)."""


def write_pair(folder: Path) -> dict[str, Path]:
    """``moving.nii.gz`` and ``fixed.nii.gz`` (20^3, AFFINE): a blob shifted by 2 voxels along axis 0."""
    paths = {}
    for name, centre in (("moving", (11.0, 9.0, 10.0)), ("fixed", (9.0, 9.0, 10.0))):
        paths[name] = write_nifti(folder / f"{name}.nii.gz", voxel_blob((20, 20, 20), centre), AFFINE)
    return paths


def export_tiny_bundle(folder: Path) -> SimpleNamespace:
    """Copy ``bundles/vtn_addd`` to ``folder`` with 4-channel networks (``configs/quick.json``) at 16^3, save
    untrained weights as ``models/model.pt`` and export ``models/model.ts`` with ``ckpt_export`` (traced at
    1 x 2 x 16^3). Returns ``folder``, ``ts`` (the archive) and ``network`` (the eager network, eval mode)."""
    copy_bundle("vtn_addd", folder)
    channels = json.loads(QUICK.read_text())["network_channels"]
    edit_configs(folder, ("inference.json",), network_channels=channels, image_size=SIZE)
    network = save_untrained_weights(folder)
    inference = folder / "configs" / "inference.json"
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
