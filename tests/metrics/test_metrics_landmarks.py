"""Target registration error in mm: constant and linear DDFs sampled at fractional landmarks."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.metrics import sample_ddf_at_points, target_registration_error

SHAPE = (16, 20, 24)
# dyadic fractions: the coordinates and the shifts below add exactly in floating point
FIXED = torch.tensor(
    [[3.0, 4.0, 5.0], [7.25, 10.5, 0.75], [0.0, 19.0, 23.0], [14.875, 2.125, 11.0625]], dtype=torch.float64
)


def constant_ddf(shift, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(shift, dtype=dtype).reshape(1, 3, 1, 1, 1).expand(1, 3, *SHAPE).clone()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0)])
def test_constant_shift_tre_is_the_shift_in_mm(spacing):
    shift = (1.5, -2.0, 0.25)  # exact in float32
    ddf = constant_ddf(shift)
    # landmarks that did not move: TRE = || shift * spacing || for every landmark
    tre = target_registration_error(ddf, FIXED, FIXED, spacing)
    expected = math.sqrt(sum((s * h) ** 2 for s, h in zip(shift, spacing)))
    assert tre.shape == (4,) and tre.dtype == torch.float64
    assert torch.equal(tre, torch.full((4,), expected, dtype=torch.float64))
    # landmarks that moved by the shift: registered exactly
    moved = FIXED + torch.tensor(shift, dtype=torch.float64)
    assert torch.equal(target_registration_error(ddf, FIXED, moved, spacing), torch.zeros(4, dtype=torch.float64))


def test_linear_field_is_interpolated_exactly():
    # trilinear interpolation reproduces a linear field at fractional points
    axes = [torch.arange(n, dtype=torch.float64) for n in SHAPE]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    matrix = torch.tensor([[0.1, -0.2, 0.05], [0.0, 0.3, 0.1], [-0.1, 0.0, 0.2]], dtype=torch.float64)
    offset = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    ddf = torch.einsum("ij,jxyz->ixyz", matrix, grid) + offset[:, None, None, None]
    expected = FIXED @ matrix.T + offset
    torch.testing.assert_close(sample_ddf_at_points(ddf, FIXED), expected)  # (3, X, Y, Z) is accepted too
    moving = FIXED + expected
    torch.testing.assert_close(
        target_registration_error(ddf[None], FIXED, moving, (1.0, 2.0, 3.0)), torch.zeros(4, dtype=torch.float64)
    )


def test_points_outside_are_clamped_like_border_padding():
    ddf = torch.zeros(1, 3, *SHAPE)
    ddf[0, 0, -1] = 4.0  # last X slice
    samples = sample_ddf_at_points(ddf, torch.tensor([[SHAPE[0] + 5.0, 3.0, 3.0], [-3.0, 3.0, 3.0]]))
    torch.testing.assert_close(samples[:, 0], torch.tensor([4.0, 0.0], dtype=torch.float64))


def test_input_checks():
    ddf = constant_ddf((1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"fixed_points must have shape \(N, 3\) \(voxel coordinates\), got \(4, 2\)"):
        target_registration_error(ddf, FIXED[:, :2], FIXED, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"fixed_points \(4, 3\) and moving_points \(3, 3\) must have the same shape"):
        target_registration_error(ddf, FIXED, FIXED[:3], (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"spacing must be 3 floats .* got shape \(2,\)"):
        target_registration_error(ddf, FIXED, FIXED, (1.0, 1.0))
    with pytest.raises(
        ValueError, match=r"ddf must hold one sample, shape \(1, 3, X, Y, Z\) or \(3, X, Y, Z\), got \(2"
    ):
        target_registration_error(ddf.expand(2, -1, -1, -1, -1), FIXED, FIXED, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\) .* got \(1, 2, 16, 20, 24\)"):
        target_registration_error(ddf[:, :2], FIXED, FIXED, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"moving_points must hold finite voxel coordinates"):
        target_registration_error(ddf, FIXED, FIXED * float("nan"), (1.0, 1.0, 1.0))
