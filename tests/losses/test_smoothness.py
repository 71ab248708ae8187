"""TotalVariationLoss: sum of squared forward differences / (2 * 3 * X * Y * Z) per sample."""

from __future__ import annotations

import pytest
import torch

from monai_mine.losses import TotalVariationLoss


def axis_coordinate(shape, axis: int) -> torch.Tensor:
    return (
        torch.arange(shape[axis], dtype=torch.float32)
        .reshape([-1 if a == axis else 1 for a in range(3)])
        .expand(*shape)
    )


def test_constant_field_gives_zero():
    ddf = torch.ones(2, 3, 16, 16, 16) * torch.tensor([1.5, -2.0, 0.3]).reshape(1, 3, 1, 1, 1)
    assert float(TotalVariationLoss()(ddf)) == 0.0


@pytest.mark.parametrize("a", [0.5, -2.0])
def test_ramp_gives_closed_form(a):
    shape = (16, 20, 24)
    ddf = torch.zeros(1, 3, *shape)
    ddf[:, 0] = a * axis_coordinate(shape, 0)
    expected = a**2 * (shape[0] - 1) / (6 * shape[0])
    assert abs(float(TotalVariationLoss()(ddf)) - expected) < 1e-6


@pytest.mark.parametrize("channel, axis", [(0, 1), (2, 2), (1, 0)])
def test_ramp_along_any_axis_and_channel(channel, axis):
    # only the differences along `axis` are non-zero: a^2 (N_axis - 1) Y Z X / N_axis / (2 * 3 * X Y Z)
    shape = (16, 20, 24)
    a = 0.7
    ddf = torch.zeros(1, 3, *shape)
    ddf[:, channel] = a * axis_coordinate(shape, axis)
    expected = a**2 * (shape[axis] - 1) / (6 * shape[axis])
    assert abs(float(TotalVariationLoss()(ddf)) - expected) < 1e-6


def test_matches_direct_sum_for_random_field():
    ddf = torch.randn(2, 3, 8, 9, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dx = (ddf[:, :, 1:] - ddf[:, :, :-1]).square().sum((1, 2, 3, 4))
    dy = (ddf[:, :, :, 1:] - ddf[:, :, :, :-1]).square().sum((1, 2, 3, 4))
    dz = (ddf[:, :, :, :, 1:] - ddf[:, :, :, :, :-1]).square().sum((1, 2, 3, 4))
    expected = (dx + dy + dz) / (2 * 3 * 8 * 9 * 10)
    loss = TotalVariationLoss(reduction="none")(ddf)
    assert loss.shape == (2,)
    assert torch.allclose(loss.double(), expected, rtol=1e-5)


def test_reductions_and_gradient():
    ddf = torch.randn(3, 3, 8, 8, 8, generator=torch.Generator().manual_seed(1)).requires_grad_()
    per_sample = TotalVariationLoss(reduction="none")(ddf)
    assert torch.allclose(TotalVariationLoss(reduction="sum")(ddf), per_sample.sum())
    assert torch.allclose(TotalVariationLoss()(ddf), per_sample.mean())
    TotalVariationLoss()(ddf).backward()
    assert torch.isfinite(ddf.grad).all() and ddf.grad.abs().sum() > 0


def test_bad_shape_raises():
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\).*got \(1, 2, 8, 8, 8\)"):
        TotalVariationLoss()(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\).*got \(3, 8, 8, 8\)"):
        TotalVariationLoss()(torch.zeros(3, 8, 8, 8))
