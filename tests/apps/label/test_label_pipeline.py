# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The infer steps around a bundle's preprocessing, run as MONAI Label's BasicInferTask runs them."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from label_bundle import SIZE, infer
from monai.data import MetaTensor

from monai_mine.apps.label import (
    PairFromRequestd,
    WarpMovingd,
    registration_result_json,
    write_registration_outputs,
)
from monai_mine.flows import warp


def test_request_pair_runs_through_bundle_preprocessing_network_and_warp(bundle, studies, tmp_path):
    request = {
        "image": str(studies / "case_b.nii.gz"),
        "fixed_image": str(studies / "case_a.nii.gz"),
        "moving_label": str(studies / "labels" / "final" / "case_b.nii.gz"),
    }
    data = infer(bundle, request)
    assert data["image"].shape == (2, SIZE, SIZE, SIZE)
    assert torch.equal(data["image"][:1], data["moving_image"]) and torch.equal(data["image"][1:], data["fixed_image"])
    assert data["pred"].shape == (3, SIZE, SIZE, SIZE) and data["pred"].dtype == torch.float32
    moving, ddf = data["moving_image"][None].as_tensor(), data["pred"][None].as_tensor()
    assert torch.allclose(data["warped"].as_tensor(), warp(moving, ddf)[0], atol=1e-5)
    label = data["moving_label"][None].as_tensor().round().int()
    assert data["warped_label"].dtype == torch.int32
    assert torch.equal(data["warped_label"].as_tensor(), warp(label, ddf, mode="nearest")[0])
    fixed_affine = data["fixed_image"].affine.numpy()
    for key in ("pred", "warped", "warped_label"):
        np.testing.assert_allclose(data[key].affine.numpy(), fixed_affine)

    written = write_registration_outputs(data, tmp_path / "result")
    assert sorted(written) == ["ddf", "warped", "warped_label"]
    ddf_file, warped_file = nib.load(written["ddf"]), nib.load(written["warped"])
    assert ddf_file.shape == (SIZE, SIZE, SIZE, 3) and ddf_file.get_data_dtype() == np.float32
    assert warped_file.get_data_dtype() == np.float32 and nib.load(written["warped_label"]).get_data_dtype() == np.int32
    np.testing.assert_allclose(np.moveaxis(ddf_file.get_fdata(), -1, 0), data["pred"].numpy(), atol=1e-6)
    np.testing.assert_allclose(ddf_file.affine, fixed_affine, atol=1e-5)
    result = registration_result_json(data, written)
    assert result["ddf"] == str(written["ddf"]) and result["warped"] == str(written["warped"])
    assert result["ddf_shape"] == [SIZE, SIZE, SIZE, 3] and result["ddf_units"] == "voxels"
    np.testing.assert_allclose(result["affine"], fixed_affine, atol=1e-5)


def test_without_moving_label_only_warped_and_ddf_are_written(bundle, studies, tmp_path):
    data = infer(bundle, {"image": str(studies / "case_c.nii.gz"), "fixed_image": str(studies / "case_a.nii.gz")})
    assert "warped_label" not in data
    assert sorted(write_registration_outputs(data, tmp_path)) == ["ddf", "warped"]


def test_missing_fixed_image_and_mismatched_ddf_raise_clear_errors():
    with pytest.raises(ValueError, match="registration request without 'fixed_image': pass the fixed image"):
        PairFromRequestd()({"image": "/data/moving.nii.gz"})
    with pytest.raises(ValueError, match="registration request without 'fixed_image'"):
        PairFromRequestd()({"image": "/data/moving.nii.gz", "fixed_image": ""})
    data = {"pred": torch.zeros(3, 8, 8, 8), "moving_image": torch.zeros(1, 8, 8, 4), "fixed_image": torch.zeros(1, 8)}
    with pytest.raises(ValueError, match=r"'pred' must be a DDF \(3, X, Y, Z\) on the grid of 'moving_image'"):
        WarpMovingd()(data)


def test_zero_ddf_warps_to_the_moving_image_itself():
    moving = torch.rand(1, 6, 7, 8)
    data = WarpMovingd()({"pred": torch.zeros(3, 6, 7, 8), "moving_image": moving, "fixed_image": moving})
    assert torch.allclose(data["warped"].as_tensor(), moving, atol=1e-6)


def test_result_json_gives_the_shape_of_the_saved_ddf(tmp_path):
    affine = torch.diag(torch.tensor([2.0, 1.0, 1.5, 1.0]))
    data = {
        "pred": MetaTensor(torch.rand(3, 4, 5, 6), affine=affine),
        "warped": MetaTensor(torch.rand(1, 4, 5, 6), affine=affine),
        "fixed_image": MetaTensor(torch.rand(1, 4, 5, 6), affine=affine),
    }
    written = write_registration_outputs(data, tmp_path)
    result = registration_result_json(data, written)
    assert nib.load(written["ddf"]).shape == (4, 5, 6, 3)
    assert result["ddf_shape"] == [4, 5, 6, 3]  # the file's (X, Y, Z, 3), not the tensor's (3, X, Y, Z)
    assert registration_result_json(data, {})["ddf_shape"] == [4, 5, 6, 3]  # no file: as it would be saved
