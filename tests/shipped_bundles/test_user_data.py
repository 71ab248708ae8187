# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Users' own NIfTI data through one override: paired datalists via --dataset_dir, unpaired ones via --datalist."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import torch

from tests.helpers import run_workflow, smooth_noise, write_nifti

SHAPE = (20, 18, 16)


def test_paired_user_data_with_dataset_dir_writes_outputs_on_the_fixed_grid(tmp_path, bundle_copy):
    """Anisotropic 1.5 x 1 x 2 mm images of any size; inference output carries the fixed image's (resized) grid."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "my_pairs"
    folder.mkdir()
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    pairs = []
    for index in range(2):
        fixed, moving = smooth_noise(SHAPE, rng, sigma=2.0, scale=1.0), smooth_noise(SHAPE, rng, sigma=2.0, scale=1.0)
        label = (fixed > np.median(fixed)).astype(np.int32)
        pairs.append(
            {
                "fixed_image": write_nifti(folder / f"f{index}.nii.gz", fixed, affine).name,
                "moving_image": write_nifti(folder / f"m{index}.nii.gz", moving, affine).name,
                "fixed_label": write_nifti(folder / f"f{index}_seg.nii.gz", label, affine).name,
                "moving_label": write_nifti(folder / f"m{index}_seg.nii.gz", label, affine).name,
            }
        )
    (folder / "datalist.json").write_text(json.dumps({"training": pairs, "validation": pairs, "test": pairs}))
    bundle = bundle_copy("vtn_addd")
    run_workflow(bundle, ("train.json",), "train", dataset_dir=str(folder))
    run_workflow(bundle, ("inference.json",), "infer", dataset_dir=str(folder))
    ddf = nib.load(bundle / "eval" / "inference" / "m0_to_f0_ddf.nii.gz")
    assert ddf.shape == (64, 64, 64, 3)
    # resized from (20, 18, 16) voxels to 64^3: same field of view, so voxel sizes scale by shape / 64
    expected_spacing = np.array([1.5 * 20, 1.0 * 18, 2.0 * 16]) / 64
    np.testing.assert_allclose(np.linalg.norm(ddf.affine[:3, :3], axis=0), expected_spacing, rtol=1e-4)
    assert (folder / "f0.nii.gz").stat().st_size > 0 and len(list(folder.iterdir())) == 9  # inputs untouched


def test_unpaired_datalist_trains_on_random_pairs(tmp_path, bundle_copy):
    rng = np.random.default_rng(1)
    folder = tmp_path / "my_images"
    folder.mkdir()
    images = [
        write_nifti(folder / f"subject{index}.nii.gz", smooth_noise(SHAPE, rng, sigma=2.0, scale=1.0)).name
        for index in range(4)
    ]
    datalist = folder / "unpaired.json"
    datalist.write_text(json.dumps({"training": images, "validation": images[:2]}))
    bundle = bundle_copy("vtn_addd")
    workflow = run_workflow(bundle, ("train.json",), "train", datalist=str(datalist), dataset_dir=str(folder))
    dataset = workflow.parser.get_parsed_content("train#dataset")
    assert type(dataset).__name__ == "UnpairedRegistrationDataset" and dataset.epoch == 2
    assert torch.load(bundle / "models" / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 4
