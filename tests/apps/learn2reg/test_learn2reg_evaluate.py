# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learn2Reg metrics of displacement files: exact values for known fields, and the challenge's SDlogJ formula."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage
from learn2reg_fake import AFFINE, SHAPE, write_task
from scipy.ndimage import gaussian_filter

from monai_mine.apps.learn2reg import evaluate_displacement, evaluate_learn2reg
from monai_mine.data import read_learn2reg_task
from tests.helpers import write_nifti


def _disp(path, field):
    """Write an (X, Y, Z, 3) displacement file in fixed voxels, as the submission layout wants."""
    return write_nifti(path, np.asarray(field, np.float32), AFFINE)


def _shift_field(shift):
    return np.broadcast_to(np.asarray(shift, np.float32), (*SHAPE, 3))


def _l2r_log_jac_det_std(disp, mask=None):
    """The Learn2Reg evaluation's SDlogJ, written out from its definition: ``correlate`` with [-0.5, 0, 0.5] along
    each axis (zero padding), Jacobian ``I + grad disp`` cropped by 2 voxels, ``log(clip(det + 3, 1e-9))``, std."""
    field = disp.transpose(3, 0, 1, 2)  # (3, X, Y, Z)
    kernel = np.array([-0.5, 0.0, 0.5])
    grad = np.empty((3, 3, *SHAPE))
    for axis in range(3):
        weights = kernel.reshape([3 if a == axis else 1 for a in range(3)])
        for component in range(3):
            grad[component, axis] = scipy.ndimage.correlate(field[component], weights, mode="constant", cval=0.0)
    jacobian = (grad + np.eye(3)[:, :, None, None, None])[:, :, 2:-2, 2:-2, 2:-2]
    det = np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1)))
    log_det = np.log(np.clip(det + 3, 1e-9, 1e9))
    return float(log_det[mask[2:-2, 2:-2, 2:-2] > 0].std()) if mask is not None else float(log_det.std())


@pytest.fixture
def oasis(tmp_path):
    """The unpaired fake task, its validation pair's moving label = fixed label moved by +2 voxels along x."""
    dataset = write_task(tmp_path / "OASIS", "unpaired")
    task = read_learn2reg_task(dataset)
    fixed, moving = task.pairs["validation"][0]
    fixed_label = np.asanyarray(nib.load(task.image_files(fixed)["label"]).dataobj)
    write_nifti(task.image_files(moving)["label"], np.roll(fixed_label, 2, axis=0), AFFINE)
    return task, fixed, moving


def test_the_right_translation_scores_perfectly_and_a_wrong_one_does_not(oasis, tmp_path):
    task, fixed, moving = oasis
    right = evaluate_displacement(task, fixed, moving, _disp(tmp_path / "right.nii.gz", _shift_field([2, 0, 0])))
    assert right["DSC"] == pytest.approx(1.0) and right["DSC_1"] == pytest.approx(1.0) and right["HD95"] == 0.0
    assert right["LogJacDetStd"] == pytest.approx(0.0, abs=1e-6) and right["folding_percent"] == 0.0
    assert "TRE" not in right  # no keypoints in this task
    wrong = evaluate_displacement(task, fixed, moving, _disp(tmp_path / "wrong.nii.gz", _shift_field([0, 0, 0])))
    assert wrong["DSC"] < 0.9 and wrong["HD95"] == pytest.approx(2.0)  # 2 voxels off: HD95 in voxels


def test_keypoint_tre_is_in_moving_millimetres(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    task = read_learn2reg_task(dataset)
    fixed, moving = task.pairs["validation"][0]
    fixed_points, moving_points = (np.loadtxt(path, delimiter=",") for path in task.keypoints(fixed, moving))
    np.testing.assert_allclose(moving_points - fixed_points, 1.0, atol=1e-3)  # the fake moves each keypoint by 1
    exact = evaluate_displacement(task, fixed, moving, _disp(tmp_path / "a.nii.gz", _shift_field([1, 1, 1])))
    assert exact["TRE"] == pytest.approx(0.0, abs=1e-3)
    off = evaluate_displacement(task, fixed, moving, _disp(tmp_path / "b.nii.gz", _shift_field([3, 1, 1])))
    assert off["TRE"] == pytest.approx(2 * 1.5, abs=1e-3)  # 2 voxels along x, 1.5 mm each
    assert "DSC" not in off


def test_log_jac_det_std_is_the_learn2reg_formula(oasis, tmp_path):
    task, fixed, moving = oasis
    rng = np.random.default_rng(0)
    field = np.stack([gaussian_filter(rng.normal(size=SHAPE), 2.0) * 6 for _ in range(3)], axis=-1)
    result = evaluate_displacement(task, fixed, moving, _disp(tmp_path / "d.nii.gz", field))
    expected = _l2r_log_jac_det_std(field.astype(np.float32).astype(np.float64))
    assert expected > 0.01
    assert result["LogJacDetStd"] == pytest.approx(expected, rel=1e-4)
    assert result["sdlogj"] != pytest.approx(expected, rel=1e-2)  # monai-mine's definition is another number


def test_masked_log_jac_det_std_uses_the_fixed_mask(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    task = read_learn2reg_task(dataset)
    fixed, moving = task.pairs["validation"][0]
    mask = np.zeros(SHAPE, np.uint8)
    mask[4:14, 3:12, 5:12] = 1
    write_nifti(task.image_files(fixed)["mask"], mask, AFFINE)
    rng = np.random.default_rng(1)
    field = np.stack([gaussian_filter(rng.normal(size=SHAPE), 2.0) * 6 for _ in range(3)], axis=-1)
    path = _disp(tmp_path / "d.nii.gz", field)
    masked = evaluate_displacement(task, fixed, moving, path, masked=True)["LogJacDetStd"]
    reference = field.astype(np.float32).astype(np.float64)
    assert masked == pytest.approx(_l2r_log_jac_det_std(reference, mask), rel=1e-4)
    assert evaluate_displacement(task, fixed, moving, path)["LogJacDetStd"] == pytest.approx(
        _l2r_log_jac_det_std(reference), rel=1e-4
    )


def test_split_results_and_files(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    submission = tmp_path / "submission"
    submission.mkdir()
    _disp(submission / "disp_0003_0003.nii.gz", _shift_field([1, 1, 1]))
    _disp(submission / "disp_0004_0004.nii.gz", _shift_field([3, 1, 1]))
    results = evaluate_learn2reg(dataset, submission, out=tmp_path / "scores" / "metrics.json")
    assert results["name"] == "FakeNLST" and results["num_pairs"] == 2
    assert list(results["cases"]) == ["0003_0000<--0003_0001", "0004_0000<--0004_0001"]
    tre = [case["TRE"] for case in results["cases"].values()]
    assert tre == pytest.approx([0.0, 3.0], abs=1e-3)
    aggregate = results["aggregates"]["TRE"]
    assert aggregate["mean"] == pytest.approx(1.5, abs=1e-3) and aggregate["std"] == pytest.approx(1.5, abs=1e-3)
    assert aggregate["30"] == pytest.approx(np.quantile(tre, 0.3)) and aggregate["count"] == 2
    saved = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert saved["aggregates"]["TRE"]["mean"] == pytest.approx(aggregate["mean"])
    with open(tmp_path / "scores" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["pair"] for row in rows] == list(results["cases"])
    assert float(rows[1]["TRE"]) == pytest.approx(3.0, abs=1e-3)
    assert [p.name for p in (tmp_path / "scores").iterdir() if p.name.startswith(".")] == []  # no temporary files


def test_missing_or_misshapen_displacements_are_named(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    submission = tmp_path / "submission"
    submission.mkdir()
    _disp(submission / "disp_0003_0003.nii.gz", _shift_field([1, 1, 1]))
    with pytest.raises(FileNotFoundError, match=r"1 of 2 displacement file\(s\).*disp_0004_0004\.nii\.gz"):
        evaluate_learn2reg(dataset, submission)
    write_nifti(submission / "disp_0004_0004.nii.gz", np.zeros((10, 9, 8, 3), np.float32), AFFINE)
    with pytest.raises(ValueError, match=r"disp_0004_0004\.nii\.gz has shape \(10, 9, 8, 3\); expected \(20, 18, 16"):
        evaluate_learn2reg(dataset, submission)
