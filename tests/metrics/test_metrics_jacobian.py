"""Jacobian statistics: identity, affine and folding fields with known determinants, masks and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_mine.flows import affine_to_ddf
from monai_mine.metrics import jacobian_statistics

SHAPE = (16, 18, 20)
KEYS = {"folding_percent", "sdlogj", "sdlogj_l2r", "min_det", "max_det"}


def axis_coordinate(axis: int, shape=SHAPE, dtype=torch.float64) -> torch.Tensor:
    """``x_axis - c_axis`` on the grid, Tensor in shape (X, Y, Z), with ``c = (N - 1) / 2``."""
    ramp = torch.arange(shape[axis], dtype=dtype) - (shape[axis] - 1) / 2
    return ramp.reshape([-1 if a == axis else 1 for a in range(3)]).expand(*shape)


def test_zero_field_is_identity():
    stats = jacobian_statistics(torch.zeros(2, 3, *SHAPE))
    assert set(stats) == KEYS
    for key, expected in (("folding_percent", 0.0), ("sdlogj", 0.0), ("sdlogj_l2r", 0.0)):
        assert torch.equal(stats[key], torch.full((2,), expected)), key
    assert torch.equal(stats["min_det"], torch.ones(2)) and torch.equal(stats["max_det"], torch.ones(2))


def test_affine_field_has_constant_determinant():
    # f(x) = W (x - c) + b: the finite differences of a linear field are exact, det = det(I + W) everywhere
    w = torch.tensor(
        [[[0.2, 0.1, -0.05], [0.0, -0.1, 0.3], [0.1, 0.05, 0.15]], [[-0.3, 0.0, 0.0], [0.2, 0.4, 0.0], [0, 0, 0.1]]],
        dtype=torch.float64,
    )
    b = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 0.0]], dtype=torch.float64)
    stats = jacobian_statistics(affine_to_ddf(w, b, SHAPE))
    expected = torch.linalg.det(torch.eye(3, dtype=torch.float64) + w)
    torch.testing.assert_close(stats["min_det"], expected)
    torch.testing.assert_close(stats["max_det"], expected)
    torch.testing.assert_close(stats["sdlogj"], torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0)
    torch.testing.assert_close(stats["sdlogj_l2r"], torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0)
    assert torch.equal(stats["folding_percent"], torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reflection_folds_everywhere(axis):
    # ddf_axis = -2 (x_axis - c): phi_axis = -x_axis + 2 c, a reflection with det -1 at every voxel
    ddf = torch.zeros(1, 3, *SHAPE, dtype=torch.float64)
    ddf[0, axis] = -2 * axis_coordinate(axis)
    stats = jacobian_statistics(ddf)
    assert float(stats["folding_percent"]) == 100.0
    assert float(stats["min_det"]) == pytest.approx(-1.0, abs=1e-12)
    assert float(stats["max_det"]) == pytest.approx(-1.0, abs=1e-12)
    assert float(stats["sdlogj"]) == 0.0  # every det clipped to 1e-9: constant log
    assert float(stats["sdlogj_l2r"]) == pytest.approx(0.0, abs=1e-12)  # log(-1 + 3) everywhere


def test_folding_per_sample_and_mask():
    # a reflection in sample 0 only; a mask keeping the first 4 slices along X of each sample
    ddf = torch.zeros(2, 3, *SHAPE, dtype=torch.float64)
    ddf[0, 0] = -2 * axis_coordinate(0)
    assert torch.equal(jacobian_statistics(ddf)["folding_percent"], torch.tensor([100.0, 0.0], dtype=torch.float64))
    mask = torch.zeros(2, 1, *SHAPE, dtype=torch.bool)
    mask[:, :, :4] = True
    stats = jacobian_statistics(ddf, mask=mask)
    assert torch.equal(stats["folding_percent"], torch.tensor([100.0, 0.0], dtype=torch.float64))
    # a float mask: non-zero voxels are inside
    half = torch.zeros(1, 1, *SHAPE)
    half[..., : SHAPE[0] // 2, :, :] = 1.0
    assert float(jacobian_statistics(ddf[:1], mask=half)["folding_percent"]) == 100.0
    assert float(jacobian_statistics(ddf[1:], mask=half)["folding_percent"]) == 0.0


def test_sdlogj_of_quadratic_field_matches_numpy():
    # ddf_x = a (x - c)^2 / 2 gives det = 1 + a (x - c), exact by central differences away from the X faces
    a = 0.05
    x = axis_coordinate(0)
    ddf = torch.zeros(1, 3, *SHAPE, dtype=torch.float64)
    ddf[0, 0] = a * x.square() / 2
    mask = torch.zeros(1, 1, *SHAPE, dtype=torch.bool)
    mask[..., 1:-1, :, :] = True
    stats = jacobian_statistics(ddf, mask=mask)
    det = 1 + a * x[1:-1].numpy()
    assert float(stats["sdlogj"]) == pytest.approx(np.std(np.log(det)), rel=1e-9)
    assert float(stats["sdlogj_l2r"]) == pytest.approx(np.std(np.log(det + 3)), rel=1e-9)
    assert float(stats["min_det"]) == pytest.approx(det.min(), rel=1e-12)
    assert float(stats["max_det"]) == pytest.approx(det.max(), rel=1e-12)
    assert float(stats["folding_percent"]) == 0.0


def test_sdlogj_clips_folded_voxels():
    # det = 1 + a (x - c) with a large enough that some determinants are <= 0: those are clipped to 1e-9
    a = 0.3
    x = axis_coordinate(0)
    ddf = torch.zeros(1, 3, *SHAPE, dtype=torch.float64)
    ddf[0, 0] = a * x.square() / 2
    mask = torch.zeros(1, 1, *SHAPE, dtype=torch.bool)
    mask[..., 1:-1, :, :] = True
    stats = jacobian_statistics(ddf, mask=mask)
    det = 1 + a * x[1:-1].numpy()
    assert float(stats["folding_percent"]) == pytest.approx(100 * np.mean(det <= 0), rel=1e-12)
    assert float(stats["sdlogj"]) == pytest.approx(np.std(np.log(np.clip(det, 1e-9, None))), rel=1e-9)
    assert float(stats["sdlogj_l2r"]) == pytest.approx(np.std(np.log(np.clip(det + 3, 1e-9, None))), rel=1e-9)


def test_empty_mask_gives_nan():
    mask = torch.zeros(2, 1, *SHAPE, dtype=torch.bool)
    mask[1, :, :2] = True
    stats = jacobian_statistics(torch.zeros(2, 3, *SHAPE), mask=mask)
    for key, value in stats.items():
        assert math.isnan(value[0]), key
        assert not math.isnan(value[1]), key


def test_dtype_follows_ddf():
    assert jacobian_statistics(torch.zeros(1, 3, 8, 8, 8))["sdlogj"].dtype == torch.float32
    assert jacobian_statistics(torch.zeros(1, 3, 8, 8, 8, dtype=torch.float64))["sdlogj"].dtype == torch.float64


def test_input_checks():
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\) .* got \(1, 2, 8, 8, 8\)"):
        jacobian_statistics(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\) .* got \(3, 8, 8, 8\)"):
        jacobian_statistics(torch.zeros(3, 8, 8, 8))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 8, 8, 8\) \(B, 1, X, Y, Z\), got \(1, 3, 8"):
        jacobian_statistics(torch.zeros(1, 3, 8, 8, 8), mask=torch.ones(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match=r"ddf needs at least 2 voxels along each axis"):
        jacobian_statistics(torch.zeros(1, 3, 8, 1, 8))
