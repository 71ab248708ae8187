"""InvertibilityLoss: the round trips of a forward and a backward DDF should displace no voxel."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from monai_mine.flows import affine_to_ddf, compose_ddf
from monai_mine.losses import InvertibilityLoss

SIZE = 32


def affine_and_inverse(dtype=torch.float64):
    """A moderate affine (8 deg about axis 1, scale 1.05, shear, translation) and its analytic inverse."""
    t = math.radians(8.0)
    rot = torch.tensor([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]], dtype=torch.float64)
    a = 1.05 * rot
    a[0, 1] += 0.03  # a little shear
    eye = torch.eye(3, dtype=torch.float64)
    b = torch.tensor([1.5, -1.0, 0.8], dtype=torch.float64)
    a_inv = torch.linalg.inv(a)
    forward = affine_to_ddf((a - eye)[None].to(dtype), b[None].to(dtype), (SIZE,) * 3)
    backward = affine_to_ddf((a_inv - eye)[None].to(dtype), (-a_inv @ b)[None].to(dtype), (SIZE,) * 3)
    return forward, backward


def smooth_field(amplitude: float = 1.5, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 4, 4, 4, generator=g) * 2 - 1
    return amplitude * F.interpolate(coarse, size=(SIZE,) * 3, mode="trilinear", align_corners=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_affine_and_its_inverse_give_zero(dtype):
    forward, backward = affine_and_inverse(dtype)
    # the central half maps inside the volume, where trilinear resampling of an affine field is exact
    loss = InvertibilityLoss()(forward, backward)
    assert loss.shape == ()
    assert 0.0 <= float(loss) < 1e-6  # measured 5e-31 (float64), 7e-14 (float32)
    assert float(InvertibilityLoss()(backward, forward)) < 1e-6


def test_affine_paired_with_itself_is_penalised():
    forward, _ = affine_and_inverse()
    # round trip x -> A (A (x - c) + b) + b + c: displacements of several voxels in the centre
    assert float(InvertibilityLoss()(forward, forward)) > 10.0  # measured 41


def test_random_smooth_field_is_penalised():
    g = smooth_field(1.5, seed=1)
    assert float(InvertibilityLoss()(g, g)) > 1.0  # measured 5.4
    # its negative is only an approximate inverse: much better than g itself, still not zero
    approx = float(InvertibilityLoss()(g, -g))
    assert 1e-3 < approx < 0.1 * float(InvertibilityLoss()(g, g))  # measured 0.027
    # zero fields are exactly invertible
    assert float(InvertibilityLoss()(torch.zeros_like(g), torch.zeros_like(g))) == 0.0


@pytest.mark.parametrize("fraction, region", [(1.0, slice(None)), (0.5, slice(8, 24)), (0.25, slice(12, 20))])
def test_central_fraction_selects_the_region(fraction, region):
    f12, f21 = smooth_field(1.5, seed=2, batch=2), smooth_field(1.5, seed=3, batch=2)
    loss = InvertibilityLoss(central_fraction=fraction, reduction="none")(f12, f21)
    assert loss.shape == (2,)
    crop = (slice(None), slice(None), region, region, region)
    expected = sum(compose_ddf(*pair)[crop].square().sum(1).flatten(1).mean(1) for pair in ((f12, f21), (f21, f12)))
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_whole_volume_sees_the_border_error_of_an_exact_inverse():
    forward, backward = affine_and_inverse()
    central = float(InvertibilityLoss(central_fraction=0.5)(forward, backward))
    whole = float(InvertibilityLoss(central_fraction=1.0)(forward, backward))
    # near the faces the flow leaves the volume and border padding breaks the round trip
    assert central < 1e-6 and whole > 1e-3  # measured 0.013


def test_reductions_and_gradient():
    f12 = smooth_field(1.5, seed=4, batch=3).requires_grad_()
    f21 = smooth_field(1.5, seed=5, batch=3)
    per_sample = InvertibilityLoss(reduction="none")(f12, f21)
    assert torch.allclose(InvertibilityLoss(reduction="sum")(f12, f21), per_sample.sum())
    assert torch.allclose(InvertibilityLoss()(f12, f21), per_sample.mean())
    InvertibilityLoss()(f12, f21).backward()
    assert torch.isfinite(f12.grad).all() and f12.grad.abs().sum() > 0


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_invalid_central_fraction_raises(fraction):
    with pytest.raises(ValueError, match=r"central_fraction must be in \(0, 1\]"):
        InvertibilityLoss(central_fraction=fraction)


def test_shape_errors():
    loss = InvertibilityLoss()
    with pytest.raises(ValueError, match=r"forward_ddf \(1, 3, 8, 8, 8\) and backward_ddf \(1, 3, 8, 8, 9\)"):
        loss(torch.zeros(1, 3, 8, 8, 8), torch.zeros(1, 3, 8, 8, 9))
    with pytest.raises(ValueError, match=r"backward_ddf must have shape \(B, 3, X, Y, Z\)"):
        loss(torch.zeros(1, 3, 8, 8, 8), torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"forward_ddf must have shape \(B, 3, X, Y, Z\)"):
        loss(torch.zeros(3, 8, 8, 8), torch.zeros(1, 3, 8, 8, 8))
