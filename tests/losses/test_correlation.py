"""CorrelationCoefficientLoss (1 - Pearson correlation per sample) and LocalCorrelationLoss (1 - mean squared local
correlation in a box window), with its box mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_mine.losses import CorrelationCoefficientLoss, LocalCorrelationLoss
from monai_mine.losses.similarity import box_mean


def images(batch: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Unit-variance noise: with eps=1e-6 the loss of an image against itself is ~eps / var = 1e-6."""
    return torch.randn(batch, 1, size, size, size, generator=torch.Generator().manual_seed(seed))


def test_positive_linear_rescaling_gives_zero():
    image = images()
    loss = CorrelationCoefficientLoss()(image, 3 * image + 0.5)
    assert loss.shape == ()
    assert abs(float(loss)) < 1e-5
    assert abs(float(CorrelationCoefficientLoss()(image, image))) < 1e-5
    assert abs(float(CorrelationCoefficientLoss(eps=0.0)(image, 7 * image - 2))) < 1e-5


def test_eps_enters_each_variance():
    image = 0.1 * images(batch=1)  # variance ~0.01: the eps term is visible
    var = float(image.double().var(unbiased=False))
    loss = CorrelationCoefficientLoss(eps=1e-3)(image, image)
    assert abs(float(loss) - (1 - var / (var + 1e-3))) < 1e-5


def test_negative_rescaling_gives_two():
    image = images()
    loss = CorrelationCoefficientLoss(reduction="none")(image, -2 * image + 1.0)
    assert torch.allclose(loss, torch.full((3,), 2.0), atol=1e-5)


def test_independent_images_give_about_one():
    loss = CorrelationCoefficientLoss()(images(seed=1, size=24), images(seed=2, size=24))
    # 24^3 independent Gaussian voxels: |r| is of order 1 / sqrt(13824) ~ 0.009
    assert abs(float(loss) - 1.0) < 0.05


def test_matches_pearson_reference():
    a, b = images(seed=3), images(seed=4)
    b = 0.6 * a + 0.4 * b  # partially correlated
    expected = torch.stack([torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1] for x, y in zip(a, b)])
    loss = CorrelationCoefficientLoss(eps=0.0, reduction="none")(a, b)
    assert torch.allclose(loss, 1 - expected, atol=1e-5)


def test_channels_are_pooled_per_sample():
    a = images(batch=2, seed=5).repeat(1, 2, 1, 1, 1)
    b = a.clone()
    b[:, 1] = -b[:, 1]
    # channel 0 agrees, channel 1 is negated: pooled over both channels the covariance is exactly 0
    loss = CorrelationCoefficientLoss(reduction="none")(a, b)
    assert loss.shape == (2,)
    assert ((loss - 1.0).abs() < 1e-5).all()


def test_reductions():
    a = images(batch=4, seed=6)
    b = images(batch=4, seed=7) + 0.5 * a
    per_sample = CorrelationCoefficientLoss(reduction="none")(a, b)
    assert per_sample.shape == (4,)
    mean = CorrelationCoefficientLoss(reduction="mean")(a, b)
    total = CorrelationCoefficientLoss(reduction="sum")(a, b)
    assert torch.allclose(mean, per_sample.mean())
    assert torch.allclose(total, 4 * mean)
    assert torch.allclose(CorrelationCoefficientLoss()(a, b), mean)  # default is mean


def test_gradient_flows_to_prediction():
    a = images(batch=2, seed=8).requires_grad_()
    CorrelationCoefficientLoss()(a, images(batch=2, seed=9)).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_constant_image_is_finite():
    loss = CorrelationCoefficientLoss()(torch.ones(1, 1, 8, 8, 8), images(batch=1, size=8))
    assert torch.isfinite(loss) and abs(float(loss) - 1.0) < 1e-6


def test_shape_errors():
    loss = CorrelationCoefficientLoss()
    message = r"pred \(1, 1, 8, 8, 8\) and target \(1, 1, 8, 8, 9\) must have the same shape"
    with pytest.raises(ValueError, match=message):
        loss(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 9))
    with pytest.raises(ValueError, match=r"pred must have shape \(B, C, X, Y, Z\), got \(1, 8, 8, 8\)"):
        loss(torch.zeros(1, 8, 8, 8), torch.zeros(1, 8, 8, 8))
    with pytest.raises(ValueError, match="not a valid LossReduction"):
        CorrelationCoefficientLoss(reduction="median")


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_box_mean_equals_average_pooling_without_the_padding(kernel_size):
    image = torch.rand(2, 3, 9, 7, 11, dtype=torch.float64)
    expected = image
    for axis in range(3):
        kernel, padding = [1, 1, 1], [0, 0, 0]
        kernel[axis], padding[axis] = kernel_size, kernel_size // 2
        expected = F.avg_pool3d(expected, kernel, stride=1, padding=padding, count_include_pad=False)
    torch.testing.assert_close(box_mean(image, kernel_size), expected)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_box_mean_backward_is_its_exact_adjoint(kernel_size):
    # the window count differs at the borders, so the adjoint is not the forward itself: gradcheck compares the
    # hand-written backward with finite differences, on a volume smaller than the window along one axis
    image = torch.rand(1, 2, 6, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: box_mean(x, kernel_size), (image,))


def test_box_mean_refuses_an_even_window_and_a_volume_that_is_not_5d():
    with pytest.raises(ValueError, match="kernel_size must be an odd whole number of voxels, got 4"):
        box_mean(torch.zeros(1, 1, 4, 4, 4), 4)
    with pytest.raises(ValueError, match=r"image must have shape \(B, C, X, Y, Z\), got \(4, 4, 4\)"):
        box_mean(torch.zeros(4, 4, 4), 3)


def test_local_correlation_is_zero_for_any_local_contrast_and_one_for_noise():
    image = images(batch=2)
    loss = LocalCorrelationLoss(5)
    assert float(loss(image, 2 * image + 1)) < 1e-3
    assert float(loss(image, -image)) < 1e-3  # a contrast inversion is a perfect local match too
    assert float(loss(image, images(batch=2, seed=1))) > 0.8
    assert loss(image, image).shape == () and LocalCorrelationLoss(3, reduction="none")(image, image).shape == (2,)


def test_local_correlation_matches_a_direct_window_computation():
    moving, fixed = images(batch=1, size=5, seed=2).double(), images(batch=1, size=5, seed=3).double()
    squared = []
    for voxel in np.ndindex(5, 5, 5):  # each window: the 3^3 box around the voxel, cut to the volume
        window = tuple(slice(max(i - 1, 0), i + 2) for i in voxel)
        x, y = moving[0, 0][window].flatten(), fixed[0, 0][window].flatten()
        cov = ((x - x.mean()) * (y - y.mean())).mean()
        squared.append(cov**2 / ((x.var(unbiased=False) + 1e-5) * (y.var(unbiased=False) + 1e-5)))
    expected = 1.0 - torch.stack(squared).mean()
    assert float(LocalCorrelationLoss(3)(moving, fixed)) == pytest.approx(float(expected), rel=1e-6)


def test_local_correlation_reuses_fixed_statistics_only_for_the_same_unchanged_tensor():
    moving, fixed = images(batch=1, seed=4), images(batch=1, seed=5)
    loss = LocalCorrelationLoss(5)
    first = loss(moving, fixed)
    fixed.mul_(-1.0).add_(images(batch=1, seed=6))  # changed in place: its version moves on
    assert float(loss(moving, fixed)) == pytest.approx(float(LocalCorrelationLoss(5)(moving, fixed)), abs=1e-6)
    assert float(first) != pytest.approx(float(loss(moving, fixed)), abs=1e-4)


def test_local_correlation_refuses_an_even_window():
    with pytest.raises(ValueError, match="kernel_size must be odd and at least 3, got 4"):
        LocalCorrelationLoss(4)
