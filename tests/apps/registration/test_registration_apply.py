"""Applying saved DDFs: warping equals the analytic shift, labels stay integer, any grid is warped physically, and
the Jacobian of an affine DDF is det(A)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from registration_cases import CentreOfMassNet, grid_affine, two_blobs

from monai_mine.apps.registration import Volume, jacobian_file, register_files, save_ddf, warp_file
from monai_mine.bundle import TrainedModel
from tests.helpers import write_nifti

SHAPE = (16, 14, 12)
AFFINE = grid_affine((1.5, 1.2, 2.0), (0.0, 0.0, 0.0), "LAS", shape=SHAPE)


def coordinates(shape=SHAPE) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))


def write_ddf(path, ddf: np.ndarray):
    return save_ddf(torch.from_numpy(ddf).float(), path, Volume(np.random.rand(*SHAPE), AFFINE))


def test_warp_by_constant_ddf_is_the_analytic_shift(tmp_path):
    x = coordinates()
    ramp = lambda p: 0.3 * p[0] - 0.2 * p[1] + 0.15 * p[2] + 5.0  # noqa: E731  (trilinear is exact on it)
    image = write_nifti(tmp_path / "ramp.nii.gz", ramp(x).astype(np.float32), AFFINE)
    shift = np.array([2.0, -1.5, 0.5])
    ddf = write_ddf(tmp_path / "ddf.nii.gz", np.broadcast_to(shift[:, None, None, None], (3, *SHAPE)).copy())
    report = warp_file(image, ddf, tmp_path / "warped.nii.gz")
    assert report.same_grid and report.path == tmp_path / "warped.nii.gz"
    warped = nib.load(report.path)
    np.testing.assert_allclose(warped.affine, AFFINE, atol=1e-6)
    inside = (slice(0, SHAPE[0] - 2), slice(2, None), slice(0, SHAPE[2] - 1))  # x + shift inside the volume
    expected = ramp(x + shift[:, None, None, None])
    np.testing.assert_allclose(warped.get_fdata()[inside], expected[inside], atol=1e-4)


def test_warp_label_map_by_whole_voxels_is_exact_and_integer(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, SHAPE).astype(np.int16)
    path = write_nifti(tmp_path / "labels.nii.gz", labels, AFFINE)
    shift = np.array([2, -1, 3])
    ddf = write_ddf(tmp_path / "ddf.nii.gz", np.broadcast_to(shift[:, None, None, None], (3, *SHAPE)).astype(float))
    report = warp_file(path, ddf, tmp_path / "warped_labels.nii.gz", label=True)
    warped = nib.load(report.path)
    assert warped.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(warped.dataobj)[:-2, 1:, :-3], labels[2:, :-1, 3:])


def test_warp_of_the_original_moving_image_repeats_register(tmp_path):
    """`warp` with the saved DDF on the moving image (its own grid) gives register's warped image."""
    fixed_affine = grid_affine((1.5, 1.5, 2.0), (0.0, 0.0, 0.0), "LPS", shape=(30, 28, 24))
    moving_affine = grid_affine((1.1, 1.3, 1.7), (2.0, 1.0, -1.0), "PIR", shape=(48, 44, 44))  # covers fixed
    fixed = write_nifti(tmp_path / "fixed.nii.gz", two_blobs((30, 28, 24), fixed_affine), fixed_affine)
    moving_data = two_blobs((48, 44, 44), moving_affine, shift=(3.0, -2.0, 1.0))
    moving = write_nifti(tmp_path / "moving.nii.gz", moving_data, moving_affine)
    register_report = register_files(fixed, moving, TrainedModel(CentreOfMassNet(), 16), tmp_path / "out")
    report = warp_file(moving, register_report.ddf, tmp_path / "again.nii.gz")
    assert not report.same_grid and report.inside_percent == pytest.approx(100.0)
    np.testing.assert_allclose(
        nib.load(report.path).get_fdata(), nib.load(register_report.warped).get_fdata(), atol=1e-5
    )


def test_warp_refuses_images_outside_the_ddf_grid_and_overwriting(tmp_path):
    far = AFFINE.copy()
    far[:3, 3] += 1000.0
    image = write_nifti(tmp_path / "far.nii.gz", np.random.rand(*SHAPE).astype(np.float32), far)
    ddf = write_ddf(tmp_path / "ddf.nii.gz", np.zeros((3, *SHAPE)))
    with pytest.raises(ValueError, match=r"far\.nii\.gz and the grid of DDF .*ddf\.nii\.gz do not overlap"):
        warp_file(image, ddf, tmp_path / "out.nii.gz")
    with pytest.raises(ValueError, match=r"would overwrite an input"):
        warp_file(image, ddf, image)
    with pytest.raises(FileNotFoundError, match=r"DDF .*missing\.nii\.gz does not exist"):
        warp_file(image, tmp_path / "missing.nii.gz", tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize(
    "matrix",
    [[[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]], [[-0.5, 0.0, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]]],
    ids=["affine", "folding"],
)
def test_jacobian_of_an_affine_ddf_is_its_determinant(tmp_path, matrix):
    a = np.asarray(matrix)
    x = coordinates()
    ddf = np.einsum("ij,jxyz->ixyz", a - np.eye(3), x) + np.array([1.0, -2.0, 0.5])[:, None, None, None]
    path = write_ddf(tmp_path / "ddf.nii.gz", ddf)
    report = jacobian_file(path, tmp_path / "det.nii.gz")
    determinant = nib.load(report.path)
    np.testing.assert_allclose(determinant.affine, AFFINE, atol=1e-6)
    np.testing.assert_allclose(determinant.get_fdata(), np.linalg.det(a), atol=1e-4)
    assert report.min_det == pytest.approx(np.linalg.det(a), abs=1e-4)
    assert report.max_det == pytest.approx(np.linalg.det(a), abs=1e-4)
    if np.linalg.det(a) > 0:
        assert report.folding_percent == 0.0 and report.sdlogj == pytest.approx(0.0, abs=1e-4)
    else:
        assert report.folding_percent == 100.0
    assert f"min det {np.linalg.det(a):.4f}" in report.summary()
    with pytest.raises(ValueError, match="would overwrite the DDF file"):
        jacobian_file(path, path)
