# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Loading images: files that cannot be read, or hold complex voxels, are named with their key."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd

from monai_mine.transforms import CheckedLoadImaged, root_cause
from tests.helpers import write_nifti


def _nifti(path, array):
    return str(write_nifti(path, array))


def test_loads_like_monai(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = _nifti(tmp_path / "image.nii.gz", array)
    out = CheckedLoadImaged("image", image_only=True)({"image": path, "other": 1})
    assert out["image"].dtype == torch.float32 and out["other"] == 1
    np.testing.assert_array_equal(out["image"].numpy(), array)
    assert out["image"].meta["filename_or_obj"] == path


def _truncated(tmp_path):
    whole = _nifti(tmp_path / "whole.nii.gz", np.random.default_rng(0).random((16, 16, 16)).astype(np.float32))
    data = open(whole, "rb").read()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (_truncated, r"cannot read \S*cut\.nii\.gz \(key 'moving'\) as an image: EOFError: Compressed file ended"),
        (
            lambda tmp: _nifti(tmp / "z.nii.gz", np.ones((4, 4, 4), np.complex64)),
            r"\S*z\.nii\.gz \(key 'moving'\) holds complex voxels; expected real-valued intensities",
        ),
        (
            lambda tmp: (tmp / "junk.nii.gz").write_bytes(b"junk") and str(tmp / "junk.nii.gz"),
            r"cannot read \S*junk\.nii\.gz \(key 'moving'\) as an image: ImageFileError",
        ),
    ],
)
def test_unreadable_file_is_named_with_its_key(tmp_path, make, pattern):
    good = _nifti(tmp_path / "good.nii.gz", np.ones((4, 4, 4), np.float32))
    transform = Compose(
        [CheckedLoadImaged(["fixed", "moving"], image_only=True), EnsureChannelFirstd(["fixed", "moving"])]
    )
    with pytest.raises(RuntimeError) as caught:
        transform({"fixed": good, "moving": make(tmp_path)})
    cause = caught.value.__cause__
    assert isinstance(cause, ValueError) and re.search(pattern, str(cause)), str(cause)
    assert root_cause(caught.value) is not cause  # the reader's own error stays in the chain
