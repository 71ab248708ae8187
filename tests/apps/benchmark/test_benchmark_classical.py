# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""ANTs and Elastix wrappers: a known translation comes back as the DDF of the project's convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_mine.apps.benchmark.classical import ants_syn, elastix_affine_bspline, itk_threads, vtn_paper_arguments
from monai_mine.flows import warp

SHAPE = (32, 24, 40)
SPACING = (1.5, 2.0, 1.2)  # anisotropic: a DDF left in mm, or axes swapped, would show
SHIFT = np.array([3.0, -1.0, 2.0])  # voxels: moving(x) = fixed(x - SHIFT), so the registration DDF is +SHIFT
CENTRE = (slice(None), *(slice(6, -6),) * 3)  # away from the border, where the shifted image was padded


@pytest.fixture(scope="module")
def translated_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    fixed = ndimage.gaussian_filter(rng.random(SHAPE), 2.0)
    fixed = ((fixed - fixed.min()) / (fixed.max() - fixed.min())).astype(np.float32)
    moving = ndimage.shift(fixed, SHIFT, order=3, mode="nearest").astype(np.float32)
    return fixed, moving


def check_translation(ddf: np.ndarray, fixed: np.ndarray, moving: np.ndarray, tolerance: float) -> None:
    assert ddf.shape == (3, *SHAPE) and ddf.dtype == np.float32
    mean = ddf[CENTRE].reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(mean, SHIFT, atol=tolerance)
    # and the convention: warped(x) = moving(x + ddf(x)) brings the moving image back onto the fixed one
    warped = warp(torch.from_numpy(moving)[None, None], torch.from_numpy(ddf)[None])[0, 0].numpy()
    assert np.abs(warped - fixed)[CENTRE[1:]].mean() < 0.3 * np.abs(moving - fixed)[CENTRE[1:]].mean()


def test_ants_syn_recovers_a_translation(translated_pair):
    fixed, moving = translated_pair
    check_translation(ants_syn(fixed, moving, SPACING), fixed, moving, tolerance=0.15)


@pytest.mark.slow
def test_elastix_recovers_a_translation(translated_pair, tmp_path, monkeypatch):
    """32 iterations per resolution (the default maps use 256) keep the test short; the tolerance allows for it."""
    fixed, moving = translated_pair
    monkeypatch.chdir(tmp_path)
    check_translation(elastix_affine_bspline(fixed, moving, SPACING, max_iterations=32), fixed, moving, tolerance=0.6)
    assert list(tmp_path.iterdir()) == []  # nothing left behind in the working directory (transformix's field)


def test_vtn_paper_command():
    """The VTN paper's ANTs command (REFERENCE.md): rigid and affine MI stages, then SyN with CC radius 4."""
    arguments = vtn_paper_arguments("F", "M", "out_")
    command = " ".join(arguments)
    assert "--transform Rigid[0.1] --metric MI[F,M,1,32,Regular,0.2]" in command
    assert "--transform Affine[0.1] --metric MI[F,M,1,32,Regular,0.1]" in command
    assert "--transform SyN[0.15,3,0] --metric CC[F,M,1,4] --convergence [100x100x100x50" in command
    assert command.count("--convergence [2000x2000x2000") == 2
    assert command.count("--shrink-factors 4x2x1 --smoothing-sigmas 2x1x0vox") == 2
    assert "--shrink-factors 6x4x2x1 --smoothing-sigmas 3x2x1x0vox" in command
    assert arguments[arguments.index("--output") + 1] == "out_"


def test_threads_use_every_core():
    assert itk_threads() >= 1


@pytest.mark.parametrize(
    ("fixed_shape", "moving_shape", "spacing", "match"),
    [
        ((8, 8), (8, 8), (1, 1, 1), "fixed must be a 3D"),
        ((8, 8, 8), (8, 8, 9), (1, 1, 1), "moving must have the fixed image's shape"),
        ((8, 8, 8), (8, 8, 8), (1, 1), "spacing must be 3 positive"),
        ((8, 8, 8), (8, 8, 8), (1, 0, 1), "spacing must be 3 positive"),
    ],
)
def test_bad_input(fixed_shape, moving_shape, spacing, match):
    fixed, moving = np.zeros(fixed_shape, np.float32), np.zeros(moving_shape, np.float32)
    with pytest.raises(ValueError, match=match):
        ants_syn(fixed, moving, spacing)
    with pytest.raises(ValueError, match=match):
        elastix_affine_bspline(fixed, moving, spacing)


def test_bad_preset_and_non_finite_input():
    image = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="preset must be one of"):
        ants_syn(image, image, (1, 1, 1), preset="quick")
    with pytest.raises(ValueError, match="moving holds NaN"):
        elastix_affine_bspline(image, np.full((8, 8, 8), np.nan, np.float32), (1, 1, 1))
