"""NIfTI output: shapes, channels last, the affine kept, atomic replacement."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_mine.io import save_nifti


def test_channels_stored_last_with_affine(tmp_path):
    affine = np.diag([1.5, 2.0, 0.8, 1.0])
    affine[:3, 3] = [10, -4, 2]
    ddf = torch.randn(1, 3, 4, 5, 6)
    path = save_nifti(ddf, tmp_path / "ddf.nii.gz", affine)
    image = nib.load(path)
    assert image.shape == (4, 5, 6, 3)
    np.testing.assert_allclose(image.affine, affine)
    np.testing.assert_allclose(image.get_fdata()[..., 1], ddf[0, 1].numpy(), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["ddf.nii.gz"]  # no temporary file left


def test_replaces_existing_file_and_rejects_bad_shape(tmp_path):
    target = tmp_path / "label.nii.gz"
    save_nifti(np.zeros((4, 4, 4), dtype=np.int64), target)
    save_nifti(np.ones((4, 4, 4), dtype=np.int64), target)
    assert nib.load(target).get_fdata().min() == 1
    with pytest.raises(ValueError, match=r"label2\.nii\.gz must be \(X, Y, Z\) or \(C, X, Y, Z\)"):
        save_nifti(np.zeros((4, 4)), tmp_path / "label2.nii.gz")
