"""Flow operations: warping, affine DDFs, composition and Jacobian determinants against analytic references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from monai_mine.flows import (
    affine_to_ddf,
    compose_affine_ddf,
    compose_affine_params,
    compose_ddf,
    determinant_3x3,
    identity_grid,
    integrate_velocity,
    invert_ddf,
    jacobian_determinant,
    resize_ddf,
    warp,
)

INTERIOR = (Ellipsis, slice(6, -6), slice(6, -6), slice(6, -6))  # crop 6 voxels on every face


def coordinates(shape, dtype=torch.float64) -> torch.Tensor:
    """Voxel coordinates x (not centred), Tensor in shape (3, X, Y, Z)."""
    axes = [torch.arange(n, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def gaussian_blobs(size: int = 32, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Smooth image: a sum of six Gaussian blobs (sigma 3 to 7 voxels), shape (1, 1, size, size, size)."""
    g = torch.Generator().manual_seed(seed)
    x = coordinates((size,) * 3, dtype)
    image = torch.zeros(x.shape[1:], dtype=dtype)
    for _ in range(6):
        centre = torch.rand(3, generator=g, dtype=dtype) * (size - 1)
        sigma = 3 + 4 * torch.rand(1, generator=g, dtype=dtype)
        image += torch.exp(-((x - centre[:, None, None, None]) ** 2).sum(0) / (2 * sigma**2))
    return image[None, None]


def smooth_sinusoid(size: int = 32, period: float = 48.0, dtype=torch.float32) -> torch.Tensor:
    """Smooth image with values in [-2, 2], shape (1, 1, size, size, size)."""
    k = 2 * math.pi / period
    x, y, z = coordinates((size,) * 3, torch.float64)
    image = torch.sin(k * x + 0.3) * torch.cos(k * y - 0.5) + torch.sin(k * z + 1.0)
    return image[None, None].to(dtype)


def smooth_field(size: int = 32, amplitude: float = 1.5, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Smooth random DDF: uniform noise in [-1, 1] on a 4^3 grid, upsampled trilinearly, times ``amplitude``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    fine = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)
    return (amplitude * fine).to(dtype)


def rotation(axis: int, degrees: float) -> torch.Tensor:
    """3x3 rotation matrix about spatial ``axis``, float64."""
    t = math.radians(degrees)
    i, j = [a for a in range(3) if a != axis]
    r = torch.eye(3, dtype=torch.float64)
    r[i, i], r[i, j], r[j, i], r[j, j] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    return r


def random_affines(batch: int, seed: int, scale: float = 0.1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = scale * torch.randn(batch, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    return w.to(dtype), b.to(dtype)


# ---------------------------------------------------------------------------------------------------- warp


def test_identity_grid_is_centred():
    grid = identity_grid((4, 5, 6), dtype=torch.float64)
    assert grid.shape == (3, 4, 5, 6)
    assert torch.equal(grid[0, :, 0, 0], torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64))
    assert torch.equal(grid[1, 0, :, 0], torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=torch.float64))
    assert torch.equal(grid[2, 0, 0, :], torch.arange(6, dtype=torch.float64) - 2.5)


def test_zero_ddf_is_identity():
    image = torch.randn(2, 3, 8, 9, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(warp(image, torch.zeros(2, 3, 8, 9, 10)), image, atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("shift", [2, -3])
def test_integer_shift_moves_content_exactly(axis, shift, dtype, atol):
    # float32 grid_sample rounds the normalised coordinates: on this 16x18x20 grid with values in [0, 1] the
    # measured error is ~1e-6 (it is 0 on 32^3); float64 is exact to rounding.
    size = (16, 18, 20)
    image = torch.rand(2, 2, *size, generator=torch.Generator().manual_seed(axis), dtype=dtype)
    ddf = torch.zeros(2, 3, *size, dtype=dtype)
    ddf[:, axis] = shift
    warped = warp(image, ddf)
    n, k = size[axis], abs(shift)
    dim = 2 + axis
    # warped(x) = image(x + shift) wherever x + shift is inside the volume
    if shift > 0:
        inside, source = warped.narrow(dim, 0, n - k), image.narrow(dim, k, n - k)
        outside, edge = warped.narrow(dim, n - k, k), n - 1
    else:
        inside, source = warped.narrow(dim, k, n - k), image.narrow(dim, 0, n - k)
        outside, edge = warped.narrow(dim, 0, k), 0
    assert (inside - source).abs().max() <= atol
    # outside, border padding repeats the edge slice
    assert (outside - image.narrow(dim, edge, 1)).abs().max() <= atol


def test_shift_along_axis0_by_two_matches_brief_example():
    image = torch.rand(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(5))
    ddf = torch.zeros(1, 3, 16, 16, 16)
    ddf[:, 0] = 2.0
    warped = warp(image, ddf)
    assert (warped[..., :14, :, :] - image[..., 2:, :, :]).abs().max() <= 1e-6


def test_nearest_mode_keeps_integer_labels():
    labels = torch.randint(0, 5, (1, 1, 16, 16, 16), generator=torch.Generator().manual_seed(2))
    ddf = torch.zeros(1, 3, 16, 16, 16)
    ddf[:, 0] = 2.0
    ddf[:, 2] = -1.0
    warped = warp(labels, ddf, mode="nearest")
    assert warped.dtype == labels.dtype
    assert torch.equal(warped[..., :14, :, 1:], labels[..., 2:, :, :-1])
    # a non-integer displacement still yields only existing label values
    ddf = smooth_field(16, 2.0, seed=4)
    warped = warp(labels, ddf, mode="nearest")
    assert warped.dtype == torch.int64
    assert set(warped.unique().tolist()) <= set(labels.unique().tolist())


def test_warp_keeps_float_dtype():
    image = torch.rand(1, 1, 8, 8, 8, dtype=torch.float64)
    assert warp(image, torch.zeros(1, 3, 8, 8, 8)).dtype == torch.float64


# ---------------------------------------------------------------------------------------------- affine DDF


@pytest.mark.parametrize("axis", [0, 2])
def test_affine_ddf_matches_scipy_affine_transform(axis):
    size = 32
    a = 1.05 * rotation(axis, 10.0)
    w = (a - torch.eye(3, dtype=torch.float64))[None]
    b = torch.tensor([[1.5, -2.0, 0.7]], dtype=torch.float64)
    ddf = affine_to_ddf(w, b, (size,) * 3)
    assert ddf.shape == (1, 3, size, size, size) and ddf.dtype == torch.float64

    # coordinates: x + ddf(x) == A (x - c) + c + b, to 1e-4 voxels (requirement: within 1e-3 voxels)
    x = coordinates((size,) * 3)
    c = torch.full((3, 1, 1, 1), (size - 1) / 2, dtype=torch.float64)
    expected = torch.einsum("ij,jxyz->ixyz", a, x - c) + c + b[0, :, None, None, None]
    assert (x + ddf[0] - expected).abs().max() < 1e-4
    # also in float32
    ddf32 = affine_to_ddf(w.float(), b.float(), (size,) * 3)
    assert (x + ddf32[0].double() - expected).abs().max() < 1e-4

    # resampling: scipy maps output coordinate o to input A @ o + offset, offset = c + b - A c
    image = gaussian_blobs(size)
    centre = np.full(3, (size - 1) / 2)
    offset = centre + b[0].numpy() - a.numpy() @ centre
    reference = ndimage.affine_transform(image[0, 0].numpy(), a.numpy(), offset=offset, order=1, mode="nearest")
    reference = torch.from_numpy(reference)[None, None]
    # both are trilinear interpolation at the same points: measured max diff ~1e-15 (float64), ~3e-7 (float32)
    assert (warp(image, ddf) - reference)[INTERIOR].abs().max() < 1e-6
    assert (warp(image.float(), ddf32).double() - reference)[INTERIOR].abs().max() < 1e-5
    # the transform is not trivial
    assert (image - reference)[INTERIOR].abs().max() > 0.05


def test_affine_to_ddf_batch_and_errors():
    w, b = random_affines(3, seed=0)
    ddf = affine_to_ddf(w, b, (8, 9, 10))
    assert ddf.shape == (3, 3, 8, 9, 10)
    for i in range(3):
        assert torch.allclose(ddf[i : i + 1], affine_to_ddf(w[i : i + 1], b[i : i + 1], (8, 9, 10)))
    # the centre voxel of an odd-sized grid is displaced by b exactly
    ddf = affine_to_ddf(w, b, (9, 9, 9))
    assert torch.allclose(ddf[:, :, 4, 4, 4], b, atol=1e-12)
    with pytest.raises(ValueError, match=r"matrix W must have shape \(B, 3, 3\)"):
        affine_to_ddf(w[:, :2], b, (8, 8, 8))
    with pytest.raises(ValueError, match=r"translation b must have shape \(3, 3\)"):
        affine_to_ddf(w, b[:2], (8, 8, 8))
    with pytest.raises(ValueError, match="spatial_shape must have 3 entries"):
        affine_to_ddf(w, b, (8, 8))


# ------------------------------------------------------------------------------------------------ composition


@pytest.mark.parametrize("seed", [0, 1])
def test_compose_ddf_matches_sequential_warps(seed):
    size = 32
    image = smooth_sinusoid(size, period=48.0)  # values in [-2, 2]
    g1 = smooth_field(size, 1.5, seed=10 + 2 * seed)
    g2 = smooth_field(size, 1.5, seed=11 + 2 * seed)
    sequential = warp(warp(image, g1), g2)
    composed = warp(image, compose_ddf(g1, g2))
    error = (sequential - composed)[INTERIOR].abs().max()
    # Re-interpolating the intermediate image is not exact: over 8 seeds the measured max interior error was
    # <= 0.0097 (about 0.25 % of the image range); a few times above that:
    tolerance = 0.025
    assert error < tolerance
    # the check discriminates: composing in the wrong order, or adding the fields, is clearly worse
    # (measured >= 0.058 and >= 0.032 over the same 8 seeds)
    assert (sequential - warp(image, compose_ddf(g2, g1)))[INTERIOR].abs().max() > 1.5 * tolerance
    assert (sequential - warp(image, g1 + g2))[INTERIOR].abs().max() > error + 0.01


def test_compose_ddf_with_zero_is_identity():
    g = smooth_field(16, 1.5, seed=3)
    zero = torch.zeros_like(g)
    assert torch.allclose(compose_ddf(g, zero), g, atol=1e-6)
    assert torch.allclose(compose_ddf(zero, g), g, atol=1e-6)


def test_compose_ddf_of_integer_shifts_adds_them():
    first = torch.zeros(1, 3, 16, 16, 16)
    second = torch.zeros(1, 3, 16, 16, 16)
    first[:, 1], second[:, 1], second[:, 2] = 2.0, -3.0, 1.0
    composed = compose_ddf(first, second)
    assert torch.allclose(composed[:, 1], torch.full((1, 16, 16, 16), -1.0), atol=1e-6)
    assert torch.allclose(composed[:, 2], torch.full((1, 16, 16, 16), 1.0), atol=1e-6)
    assert torch.allclose(composed[:, 0], torch.zeros(1, 16, 16, 16), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compose_affine_ddf_equals_compose_ddf(dtype):
    size = 32
    w, b = random_affines(2, seed=3, dtype=dtype)
    g = torch.cat([smooth_field(size, 1.5, seed=1, dtype=dtype), smooth_field(size, 1.5, seed=2, dtype=dtype)])
    exact = compose_affine_ddf(w, b, g)
    resampled = compose_ddf(affine_to_ddf(w, b, (size,) * 3), g)
    # trilinear interpolation of an affine field is exact where it samples inside the volume
    # (measured 2e-15 in float64, 1e-6 in float32)
    assert (exact - resampled)[INTERIOR].abs().max() < 1e-4
    # and compose_affine_ddf also equals the analytic formula everywhere, borders included
    x = coordinates((size,) * 3, dtype) - (size - 1) / 2
    analytic = g + torch.einsum("bij,bjxyz->bixyz", w, x[None] + g) + b[:, :, None, None, None]
    assert (exact - analytic).abs().max() < 1e-4


def test_compose_affine_params_equals_composed_affine_ddfs():
    size = 32
    first = random_affines(2, seed=4)
    second = random_affines(2, seed=5)
    w, b = compose_affine_params(first, second)
    assert w.shape == (2, 3, 3) and b.shape == (2, 3)
    direct = affine_to_ddf(w, b, (size,) * 3)
    composed = compose_ddf(affine_to_ddf(*first, (size,) * 3), affine_to_ddf(*second, (size,) * 3))
    assert (direct - composed)[INTERIOR].abs().max() < 1e-4
    # and the closed form A = A1 A2, b = A1 b2 + b1
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(w + eye, (eye + first[0]) @ (eye + second[0]), atol=1e-12)
    assert torch.allclose(b, ((eye + first[0]) @ second[1].unsqueeze(-1)).squeeze(-1) + first[1], atol=1e-12)


def test_compose_affine_params_with_its_inverse_is_identity():
    w, b = random_affines(2, seed=6)
    a_inv = torch.linalg.inv(torch.eye(3, dtype=torch.float64) + w)
    w_inv = a_inv - torch.eye(3, dtype=torch.float64)
    b_inv = -(a_inv @ b.unsqueeze(-1)).squeeze(-1)
    for pair in (((w, b), (w_inv, b_inv)), ((w_inv, b_inv), (w, b))):
        w_id, b_id = compose_affine_params(*pair)
        assert w_id.abs().max() < 1e-12 and b_id.abs().max() < 1e-12


def test_compose_ddf_errors():
    g = torch.zeros(1, 3, 8, 8, 8)
    message = r"first \(1, 3, 8, 8, 8\) and second \(1, 3, 8, 8, 9\) DDFs must have the same shape"
    with pytest.raises(ValueError, match=message):
        compose_ddf(g, torch.zeros(1, 3, 8, 8, 9))
    with pytest.raises(ValueError, match=r"second must have shape \(B, 3, X, Y, Z\)"):
        compose_ddf(g, torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"first must have shape \(B, 3, X, Y, Z\)"):
        compose_ddf(torch.zeros(3, 8, 8, 8), g)


# --------------------------------------------------------------------------------------- Jacobian determinant


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jacobian_determinant_of_affine_ddf_is_constant(dtype):
    w, b = random_affines(3, seed=7, scale=0.2, dtype=dtype)
    ddf = affine_to_ddf(w, b, (16, 17, 18))
    jac = jacobian_determinant(ddf)
    assert jac.shape == (3, 1, 16, 17, 18) and jac.dtype == dtype
    expected = torch.linalg.det(torch.eye(3, dtype=torch.float64) + w.double())
    # everywhere, borders included (one-sided differences are exact for a linear field)
    assert (jac.double() - expected[:, None, None, None, None]).abs().max() < 1e-4


def test_jacobian_determinant_of_zero_ddf_is_one():
    assert torch.equal(jacobian_determinant(torch.zeros(2, 3, 8, 9, 10)), torch.ones(2, 1, 8, 9, 10))


def test_jacobian_determinant_flags_folding():
    size = 16
    x0 = coordinates((size,) * 3, torch.float32)[0]
    ddf = torch.zeros(1, 3, size, size, size)
    ddf[:, 0] = -2 * x0  # phi(x)_0 = -x_0: a reflection along axis 0
    jac = jacobian_determinant(ddf)
    assert torch.allclose(jac, torch.full_like(jac, -1.0), atol=1e-5)
    # a local fold inside an otherwise smooth field: negative only where it folds
    ddf = torch.zeros(1, 3, size, size, size)
    u = x0 - 7.5
    ddf[:, 0] = -3.0 * u * torch.exp(-(u**2) / 18.0)  # d phi_0 / d x_0 = 1 - 3 < 0 at the centre
    jac = jacobian_determinant(ddf)
    assert jac[0, 0, 7:9].max() < 0
    assert jac[0, 0, :3].min() > 0.9 and jac[0, 0, -3:].min() > 0.9


def test_jacobian_determinant_errors():
    with pytest.raises(ValueError, match="at least 2 voxels along each axis"):
        jacobian_determinant(torch.zeros(1, 3, 8, 1, 8))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\)"):
        jacobian_determinant(torch.zeros(1, 2, 8, 8, 8))


def test_determinant_3x3_matches_linalg():
    m = torch.randn(4, 5, 3, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.allclose(determinant_3x3(m), torch.linalg.det(m), atol=1e-12)
    with pytest.raises(ValueError, match=r"matrix must have shape \(\.\.\., 3, 3\)"):
        determinant_3x3(torch.zeros(2, 3, 2))


# ----------------------------------------------------------------------------------------------------- errors


def test_warp_rejects_wrong_ddf_channel_count():
    message = r"ddf must have shape \(B, 3, X, Y, Z\) \(a 3D DDF in voxels\), got \(1, 2, 8, 8, 8\)"
    with pytest.raises(ValueError, match=message):
        warp(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 2, 8, 8, 8))


def test_warp_rejects_mismatched_shapes():
    message = r"must share batch size and spatial shape \(expected ddf shape \(1, 3, 8, 8, 8\)\)"
    with pytest.raises(ValueError, match=message):
        warp(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 3, 8, 8, 9))
    with pytest.raises(ValueError, match=r"image \(2, 1, 8, 8, 8\) and ddf \(1, 3, 8, 8, 8\) must share batch size"):
        warp(torch.zeros(2, 1, 8, 8, 8), torch.zeros(1, 3, 8, 8, 8))


def test_warp_rejects_4d_inputs():
    with pytest.raises(ValueError, match=r"image must have shape \(B, C, X, Y, Z\), got \(1, 8, 8, 8\)"):
        warp(torch.zeros(1, 8, 8, 8), torch.zeros(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\).*got \(3, 8, 8, 8\)"):
        warp(torch.zeros(1, 1, 8, 8, 8), torch.zeros(3, 8, 8, 8))


def test_warp_rejects_non_tensor_ddf():
    with pytest.raises(TypeError, match="ddf must be a torch.Tensor"):
        warp(torch.zeros(1, 1, 8, 8, 8), np.zeros((1, 3, 8, 8, 8)))


# ------------------------------------------------------------------------------------- speed and precision


@pytest.mark.parametrize("shape", [(1, 1, 16, 16, 16), (2, 3, 24, 16, 32), (1, 1, 1, 8, 8)])
def test_warp_equals_monai_warp_bit_for_bit(shape):
    """The single-pass sampling grid does MONAI's Warp arithmetic: the same values, not just close ones."""
    import warnings

    from monai.networks.blocks import Warp

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(shape, generator=generator)
    ddf = torch.randn(shape[0], 3, *shape[2:], generator=generator) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = Warp(mode="bilinear", padding_mode="border")(image, ddf)
    assert torch.equal(warp(image, ddf), reference)


def test_flows_stay_float32_under_autocast():
    """Geometry ignores autocast: bfloat16 coordinates of 60 voxels would be off by up to 0.25 voxel."""
    generator = torch.Generator().manual_seed(1)
    matrix, translation = torch.randn(2, 3, 3, generator=generator) * 0.1, torch.randn(2, 3, generator=generator)
    ddf = torch.randn(2, 3, 64, 64, 64, generator=generator) * 2
    image = torch.rand(2, 1, 64, 64, 64, generator=generator)
    reference = (
        affine_to_ddf(matrix, translation, (64, 64, 64)),
        compose_affine_ddf(matrix, translation, ddf),
        compose_ddf(ddf, ddf.flip(2)),
        warp(image, ddf),
        *compose_affine_params((matrix, translation), (matrix.flip(1), translation.flip(1))),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = (
            affine_to_ddf(matrix, translation, (64, 64, 64)),
            compose_affine_ddf(matrix, translation, ddf),
            compose_ddf(ddf.bfloat16(), ddf.flip(2)),  # a bfloat16 DDF is promoted, the result is float32
            warp(image, ddf),
            *compose_affine_params((matrix, translation), (matrix.flip(1), translation.flip(1))),
        )
    assert all(value.dtype == torch.float32 for value in mixed)
    for expected, value in zip(reference[:2] + reference[3:], mixed[:2] + mixed[3:]):
        assert torch.equal(value, expected)
    assert (mixed[2] - reference[2]).abs().max() < 0.1  # only the bfloat16 rounding of the input DDF


def test_affine_to_ddf_matches_einsum_on_identity_grid():
    generator = torch.Generator().manual_seed(2)
    matrix, translation = torch.randn(2, 3, 3, generator=generator), torch.randn(2, 3, generator=generator)
    expected = torch.einsum("bij,jxyz->bixyz", matrix, identity_grid((5, 6, 7))) + translation[:, :, None, None, None]
    torch.testing.assert_close(affine_to_ddf(matrix, translation, (5, 6, 7)), expected)


def test_integrate_velocity_matches_monai_dvf2ddf_and_exponentiates_a_constant_field():
    from monai.networks.blocks import DVF2DDF

    generator = torch.Generator().manual_seed(0)
    velocity = F.interpolate(torch.randn(2, 3, 4, 4, 4, generator=generator), size=(12, 12, 12), mode="trilinear")
    expected = DVF2DDF(num_steps=5, mode="bilinear", padding_mode="border")(velocity)
    torch.testing.assert_close(integrate_velocity(velocity, steps=5), expected, atol=1e-5, rtol=0)
    constant = torch.full((1, 3, 8, 8, 8), 0.75)  # the flow of a constant velocity is that translation
    torch.testing.assert_close(integrate_velocity(constant), constant, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="at least 1 step, got 0"):
        integrate_velocity(velocity, steps=0)
    with pytest.raises(ValueError, match="velocity"):
        integrate_velocity(velocity[:, :2])


def test_invert_ddf_matches_the_analytic_inverse_of_an_affine_map():
    shape = (24, 24, 24)
    angle = math.radians(6.0)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    matrix = rotation @ torch.diag(torch.tensor([1.05, 0.96, 1.0]))
    translation = torch.tensor([1.5, -2.0, 0.5])
    forward = affine_to_ddf((matrix - torch.eye(3))[None], translation[None], shape)
    inverse_matrix = torch.linalg.inv(matrix)
    expected = affine_to_ddf((inverse_matrix - torch.eye(3))[None], (-inverse_matrix @ translation)[None], shape)
    inverse = invert_ddf(forward)
    inner = (slice(None), slice(None), *(slice(5, -5),) * 3)  # where x + u(x) stays inside the volume
    torch.testing.assert_close(inverse[inner], expected[inner], atol=1e-3, rtol=0)


def test_invert_ddf_with_a_base_registers_a_pair_warped_once_more():
    shape = (24, 24, 24)
    first = affine_to_ddf(0.04 * torch.eye(3)[None], torch.tensor([[1.0, -0.5, 0.0]]), shape)
    second = affine_to_ddf(
        torch.tensor([[[0.0, 0.05, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -0.03]]]), torch.zeros(1, 3), shape
    )
    base = invert_ddf(first)  # registers warp(I, first) back to I
    answer = invert_ddf(second, base=base)  # registers warp(warp(I, first), second) back to I
    inner = (slice(None), slice(None), *(slice(5, -5),) * 3)
    torch.testing.assert_close(compose_ddf(second, answer)[inner], base[inner], atol=1e-3, rtol=0)
    torch.testing.assert_close(answer[inner], invert_ddf(compose_ddf(first, second))[inner], atol=1e-3, rtol=0)
    with pytest.raises(
        ValueError, match=r"base \(1, 3, 8, 8, 8\) and ddf \(1, 3, 24, 24, 24\) must have the same shape"
    ):
        invert_ddf(second, base=torch.zeros(1, 3, 8, 8, 8))


def test_resize_ddf_keeps_an_affine_map_in_the_new_grids_voxels():
    matrix = torch.tensor([[[0.05, 0.0, 0.0], [0.0, -0.04, 0.02], [0.0, 0.0, 0.03]]])
    fine = affine_to_ddf(matrix, torch.tensor([[2.0, -1.0, 0.5]]), (32, 32, 32))
    coarse = resize_ddf(fine, (16, 16, 16))
    expected = affine_to_ddf(matrix, torch.tensor([[1.0, -0.5, 0.25]]), (16, 16, 16))  # shifts halve, slopes stay
    torch.testing.assert_close(coarse, expected, atol=1e-4, rtol=0)
    inner = (slice(None), slice(None), *(slice(1, -1),) * 3)  # trilinear up-sampling clamps at the border
    torch.testing.assert_close(resize_ddf(coarse, (32, 32, 32))[inner], fine[inner], atol=1e-4, rtol=0)
    assert resize_ddf(fine, (32, 32, 32)) is fine
