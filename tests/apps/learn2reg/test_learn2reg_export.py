# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""DDFs from the bundles' working grid become Learn2Reg displacement files: fixed grid, voxels of the arrays as
stored, fixed -> moving, checked with the challenge's own way of applying them (``map_coordinates``)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from learn2reg_fake import AFFINE, SHAPE, write_task
from scipy.ndimage import map_coordinates

from monai_mine.apps.learn2reg import evaluate_learn2reg, export_displacement, export_learn2reg
from monai_mine.apps.registration.geometry import Grid, working_grid
from monai_mine.data import read_learn2reg_task
from monai_mine.io import save_nifti
from tests.helpers import write_nifti

FIXED_GRID = Grid(SHAPE, AFFINE)
WORLD_SHIFT = np.array([3.0, -1.5, 2.0])  # mm; the fixed grid's voxels are -1.5, -1.5 and 2 mm along x, y, z


def _working_ddf(path, shift_mm=WORLD_SHIFT, size=16):
    """A DDF as a bundle's inference writes it: on the RAS working grid, in its voxels, with its affine."""
    grid = working_grid(FIXED_GRID, size)
    voxels = np.linalg.solve(grid.affine[:3, :3], shift_mm)
    field = np.broadcast_to(voxels[:, None, None, None], (3, size, size, size)).astype(np.float32)
    return save_nifti(field, path, grid.affine)


def test_world_translation_becomes_fixed_voxels_in_stored_axis_order(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    fixed, moving = read_learn2reg_task(dataset).pairs["validation"][0]
    out = export_displacement(_working_ddf(tmp_path / "ddf.nii.gz"), fixed, tmp_path / "disp_0003_0003.nii.gz", moving)
    disp = nib.load(out)
    assert disp.shape == (*SHAPE, 3) and disp.get_data_dtype() == np.float32
    np.testing.assert_allclose(disp.affine, AFFINE)
    # 3 mm along x is -2 voxels of the LPS-stored x axis, -1.5 mm along y is +1 voxel, 2 mm along z is +1 voxel
    np.testing.assert_allclose(disp.get_fdata(), np.broadcast_to([-2.0, 1.0, 1.0], (*SHAPE, 3)), atol=1e-4)


def test_exported_field_warps_labels_the_way_the_challenge_evaluates(tmp_path):
    """Moving = fixed moved by WORLD_SHIFT; the challenge's sampling at x + disp(x) recovers the fixed labels."""
    fixed_label = np.zeros(SHAPE, np.uint8)
    fixed_label[6:12, 5:11, 4:9] = 1
    offset = np.array([-2, 1, 1])  # WORLD_SHIFT in fixed voxels
    moving_label = np.zeros_like(fixed_label)
    moving_label[6 + offset[0] : 12 + offset[0], 5 + offset[1] : 11 + offset[1], 4 + offset[2] : 9 + offset[2]] = 1
    write_nifti(tmp_path / "fixed.nii.gz", fixed_label, AFFINE)
    out = export_displacement(_working_ddf(tmp_path / "ddf.nii.gz"), tmp_path / "fixed.nii.gz", tmp_path / "d.nii.gz")
    disp = nib.load(out).get_fdata()
    identity = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    warped = map_coordinates(moving_label, identity + disp.transpose(3, 0, 1, 2), order=0)  # evaluation.py's line
    np.testing.assert_array_equal(warped, fixed_label)


def test_moving_image_on_another_grid_gets_targets_in_its_own_voxels(tmp_path):
    shifted = AFFINE.copy()
    shifted[:3, 3] += [4.5, 0.0, -2.0]  # the moving image's origin: -3, 0 and -1 fixed voxels away
    write_nifti(tmp_path / "fixed.nii.gz", np.zeros(SHAPE, np.float32), AFFINE)
    write_nifti(tmp_path / "moving.nii.gz", np.zeros(SHAPE, np.float32), shifted)
    ddf = _working_ddf(tmp_path / "ddf.nii.gz")
    out = export_displacement(ddf, tmp_path / "fixed.nii.gz", tmp_path / "d.nii.gz", tmp_path / "moving.nii.gz")
    # fixed voxel x maps to world A_F x + shift; in moving voxels that is x + (-2, 1, 1) - (-3, 0, -1)
    np.testing.assert_allclose(nib.load(out).get_fdata(), np.broadcast_to([1.0, 1.0, 2.0], (*SHAPE, 3)), atol=1e-4)


def test_split_export_names_files_and_checks_every_ddf_first(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    ddf_dir = tmp_path / "inference"
    pairs = read_learn2reg_task(dataset).pairs["validation"]
    for fixed, moving in pairs[:1]:
        _working_ddf(ddf_dir / f"{moving.split('/')[-1][:-7]}_to_{fixed.split('/')[-1][:-7]}_ddf.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 DDF file\(s\).*FakeNLST_0004_0001_to_FakeNLST_0004_0000"):
        export_learn2reg(dataset, ddf_dir, tmp_path / "submission")
    assert not (tmp_path / "submission").exists()  # nothing written for an incomplete set
    fixed, moving = pairs[1]
    _working_ddf(ddf_dir / f"{moving.split('/')[-1][:-7]}_to_{fixed.split('/')[-1][:-7]}_ddf.nii.gz")
    written = export_learn2reg(dataset, ddf_dir, tmp_path / "submission")
    assert [path.name for path in written] == ["disp_0003_0003.nii.gz", "disp_0004_0004.nii.gz"]
    assert sorted(path.name for path in (tmp_path / "submission").iterdir()) == [p.name for p in written]
    with pytest.raises(FileExistsError, match=r"submission holds 2 file\(s\) of an earlier run .*--overwrite"):
        export_learn2reg(dataset, ddf_dir, tmp_path / "submission")
    assert export_learn2reg(dataset, ddf_dir, tmp_path / "submission", overwrite=True) == written
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_bad_inputs_are_named(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    fixed, moving = read_learn2reg_task(dataset).pairs["validation"][0]
    ddf = _working_ddf(tmp_path / "ddf.nii.gz")
    with pytest.raises(ValueError, match=r"has shape \(20, 18, 16\), but the task's tensorImageShape is \(20, 18, 17"):
        export_displacement(ddf, fixed, tmp_path / "d.nii.gz", expected_shape=(20, 18, 17))
    save_nifti(np.zeros((2, 8, 8, 8), np.float32), tmp_path / "two.nii.gz")
    with pytest.raises(ValueError, match=r"two\.nii\.gz has shape \(8, 8, 8, 2\); expected a displacement field"):
        export_displacement(tmp_path / "two.nii.gz", fixed, tmp_path / "d.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=r"cannot read fixed image .*broken\.nii\.gz as a NIfTI image"):
        export_displacement(ddf, tmp_path / "broken.nii.gz", tmp_path / "d.nii.gz")
    with pytest.raises(ValueError, match=r"split must be one of \['validation', 'test', 'training'\], got 'val'"):
        export_learn2reg(dataset, tmp_path, tmp_path / "out", split="val")
    with pytest.raises(ValueError, match=r"lists no test pairs"):
        export_learn2reg(dataset, tmp_path, tmp_path / "out", split="test")
    assert not (tmp_path / "d.nii.gz").exists()


def test_pairs_that_would_share_a_displacement_file_are_named(tmp_path):
    """Three pairs with one case number would all write disp_0003_0003.nii.gz: export and evaluation refuse them
    instead of keeping the last one."""
    dataset = write_task(tmp_path / "NLST", "paired")
    content = json.loads(dataset.read_text())
    first = content["registration_val"][0]
    content["registration_val"] += [dict(first), {**first, "moving": first["moving"].replace("./", "./imagesTr/../")}]
    dataset.write_text(json.dumps(content))
    message = r"validation pairs would write the same displacement file \(disp_0003_0003\.nii\.gz from \[.*0003_0001"
    with pytest.raises(ValueError, match=message):
        export_learn2reg(dataset, tmp_path, tmp_path / "submission")
    with pytest.raises(ValueError, match=message):
        evaluate_learn2reg(dataset, tmp_path / "submission")
    assert not (tmp_path / "submission").exists()
