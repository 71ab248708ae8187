"""MIND-SSC: its descriptor's invariance to a linear contrast (inverted too), its shape and range, the loss it
defines, and bad settings refused."""

from __future__ import annotations

import pytest
import torch

from monai_mine.flows import warp
from monai_mine.losses import MINDSSCLoss, mind_ssc
from tests.helpers import smooth_texture


def test_descriptor_shape_range_and_constant_image():
    image = torch.rand(2, 3, 9, 8, 7, generator=torch.Generator().manual_seed(0))
    descriptor = mind_ssc(image)
    assert descriptor.shape == (2, 36, 9, 8, 7)
    assert descriptor.min() > 0 and descriptor.max() <= 1
    # each voxel's most alike pair of neighbours scores exactly 1 (its distance less the minimum is 0)
    assert torch.allclose(descriptor.view(2, 3, 12, 9, 8, 7).amax(dim=2), torch.ones(2, 3, 9, 8, 7))
    assert torch.equal(mind_ssc(torch.full((1, 1, 6, 6, 6), 0.3)), torch.ones(1, 12, 6, 6, 6))


@pytest.mark.parametrize("scale, offset", [(3.0, 0.5), (-1.0, 1.0), (-0.2, 7.0)])
def test_descriptor_ignores_a_linear_contrast_even_an_inverted_one(scale, offset):
    image = smooth_texture(16, seed=1)
    assert torch.allclose(mind_ssc(scale * image + offset), mind_ssc(image), atol=1e-4)


def test_each_channel_is_described_on_its_own():
    first, second = smooth_texture(12, seed=2), smooth_texture(12, seed=3)
    both = mind_ssc(torch.cat([first, second], dim=1))
    assert torch.allclose(both, torch.cat([mind_ssc(first), mind_ssc(second)], dim=1))


def test_loss_is_zero_across_contrasts_and_grows_with_misalignment():
    fixed = smooth_texture(24, seed=4)
    loss = MINDSSCLoss()
    assert float(loss(1.0 - fixed, fixed)) < 1e-8  # an inverted contrast of the same structures
    shifts = [0.0, 0.5, 1.0, 2.0]
    values = [float(loss(warp(1.0 - fixed, torch.full((1, 3, 24, 24, 24), s)), fixed)) for s in shifts]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] > 5 * values[1]
    # features then compare is the loss itself
    assert torch.allclose(loss.compare(loss.features(fixed**2), loss.features(fixed)), loss(fixed**2, fixed))


def test_loss_gradient_reaches_the_moving_image():
    moving = smooth_texture(10, seed=5).requires_grad_()
    MINDSSCLoss()(moving, smooth_texture(10, seed=6)).backward()
    assert moving.grad is not None and torch.isfinite(moving.grad).all() and moving.grad.abs().sum() > 0


def test_reductions():
    pred, target = smooth_texture(8, seed=7).repeat(3, 1, 1, 1, 1), smooth_texture(8, seed=8).repeat(3, 1, 1, 1, 1)
    per_sample = MINDSSCLoss(reduction="none")(pred, target)
    assert per_sample.shape == (3,)
    assert torch.allclose(MINDSSCLoss(reduction="sum")(pred, target), per_sample.sum())


@pytest.mark.parametrize(
    "radius, dilation", [(-1, 2), (1, 0), (1.5, 2), (1, 2.5)], ids=["radius<0", "dilation0", "radius1.5", "dil2.5"]
)
def test_bad_settings_are_refused(radius, dilation):
    with pytest.raises(ValueError, match=r"radius must be a whole number >= 0 and dilation one >= 1, got"):
        MINDSSCLoss(radius, dilation)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"image must have shape \(B, C, X, Y, Z\), got \(8, 8, 8\)"):
        mind_ssc(torch.rand(8, 8, 8))
    with pytest.raises(ValueError, match="must have the same shape"):
        MINDSSCLoss()(torch.rand(1, 1, 6, 6, 6), torch.rand(1, 1, 6, 6, 7))
