# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Flow operations on dense displacement fields (DDFs): pure, batched, 3D tensor functions.

Conventions (``docs/design.md`` section 2):

- images are ``(B, C, X, Y, Z)``; a DDF is ``(B, 3, X, Y, Z)`` in **voxel units**, channel ``i`` displacing
  spatial axis ``i``;
- ``warp(image, ddf)(x) = image(x + ddf(x))``, sampled as MONAI's ``Warp`` samples (``grid_sample`` with
  ``align_corners=True``) with border padding;
- ``compose_ddf(g1, g2) = g2 + warp(g1, g2)`` so that ``warp(warp(I, g1), g2) == warp(I, compose_ddf(g1, g2))``;
- an affine stage ``(W, b)`` has the DDF ``f(x) = W (x - c) + b`` with the grid centre ``c = (N - 1) / 2``;
- geometry is computed in float32 (float64 when an input is float64), also under ``torch.autocast``: a bfloat16
  coordinate of 100 voxels is only exact to 0.5 voxel, so low-precision DDFs are promoted, never the reverse.

Reference:
    Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
    IEEE JBHI 2020, eq. 1-4 (warping and composition), eq. 11 and 19 (affine flows).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F

__all__ = [
    "warp",
    "sampling_grid",
    "identity_grid",
    "affine_to_ddf",
    "compose_ddf",
    "invert_ddf",
    "resize_ddf",
    "compose_affine_ddf",
    "compose_affine_params",
    "integrate_velocity",
    "jacobian_determinant",
    "determinant_3x3",
    "check_ddf",
    "geometry_dtype",
    "full_precision",
]


def check_ddf(ddf: torch.Tensor, name: str = "ddf") -> None:
    """Raise ``ValueError`` unless ``ddf`` is a 3D DDF of shape ``(B, 3, X, Y, Z)``."""
    if not isinstance(ddf, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 3, X, Y, Z), got {type(ddf).__name__}.")
    if ddf.ndim != 5 or ddf.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, X, Y, Z) (a 3D DDF in voxels), got {tuple(ddf.shape)}.")


def _check_image_and_ddf(image: torch.Tensor, ddf: torch.Tensor) -> None:
    check_ddf(ddf)
    if image.ndim != 5:
        raise ValueError(f"image must have shape (B, C, X, Y, Z), got {tuple(image.shape)}.")
    if image.shape[0] != ddf.shape[0] or image.shape[2:] != ddf.shape[2:]:
        raise ValueError(
            f"image {tuple(image.shape)} and ddf {tuple(ddf.shape)} must share batch size and spatial shape "
            f"(expected ddf shape {(image.shape[0], 3, *image.shape[2:])})."
        )


def geometry_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 when one of ``tensors`` is float64: the dtype flows are computed in."""
    dtype = torch.float32
    for tensor in tensors:
        if tensor.is_floating_point():
            dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def full_precision(device: torch.device) -> AbstractContextManager:
    """Autocast switched off on ``device``'s type: geometry keeps its dtype inside mixed-precision regions."""
    return torch.autocast(device.type, enabled=False)


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border") -> torch.Tensor:
    """Resample ``image`` at ``x + ddf(x)``.

    Args:
        image: Tensor in shape (B, C, X, Y, Z): an image, a one-hot label or another DDF.
        ddf: Tensor in shape (B, 3, X, Y, Z), displacement in voxels.
        mode: ``"bilinear"`` (trilinear in 3D) for images and one-hot labels, ``"nearest"`` for label maps.
        padding_mode: ``"border"`` samples outside the volume at the nearest point of the enclosing cuboid.

    Returns:
        Tensor in shape (B, C, X, Y, Z): floating images in :func:`geometry_dtype` (float32 for bfloat16 and
        float16 inputs), integer label maps in their own dtype.
    """
    _check_image_and_ddf(image, ddf)
    dtype = geometry_dtype(image, ddf)
    with full_precision(ddf.device):
        warped = F.grid_sample(image.to(dtype), sampling_grid(ddf.to(dtype)), mode, padding_mode, align_corners=True)
    return warped if image.is_floating_point() else warped.round().to(image.dtype)  # integer label maps


def sampling_grid(ddf: torch.Tensor) -> torch.Tensor:
    """The ``grid_sample`` grid (``align_corners=True``) that samples at ``x + ddf(x)``.

    The same grid as MONAI's ``Warp`` builds, with the same arithmetic (``(x + ddf) * 2 / (N - 1) - 1``, so the
    same values bit for bit) in fewer passes over memory: no reference grid is materialised (each axis' voxel
    index broadcasts along the other axes) and the three components are stacked once, straight into the
    channel-last, reversed-axis layout that ``grid_sample`` reads.

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), displacement in voxels.

    Returns:
        Tensor in shape (B, X, Y, Z, 3): normalised (z, y, x) sampling coordinates in [-1, 1] inside the volume.
    """
    check_ddf(ddf)
    components = []
    for axis in (2, 1, 0):  # grid_sample reads the last spatial axis first
        size = ddf.shape[2 + axis]
        view = [1, 1, 1]
        view[axis] = size
        index = torch.arange(size, device=ddf.device, dtype=ddf.dtype).view(view)
        # a single voxel maps to -1, as in MONAI's Warp
        components.append((ddf[:, axis] + index).mul_(2).div_(max(size - 1, 1)).sub_(1))
    return torch.stack(components, dim=-1)


def identity_grid(spatial_shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Voxel coordinates of a grid, centred on ``c = (N - 1) / 2`` per axis.

    Returns:
        Tensor in shape (3, X, Y, Z) holding ``x - c``.
    """
    axes = [torch.arange(n, device=device, dtype=dtype) - (n - 1) / 2 for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def affine_to_ddf(matrix: torch.Tensor, translation: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """DDF of the affine map ``x -> x + W (x - c) + b``.

    Args:
        matrix: ``W`` in shape (B, 3, 3); the affine matrix is ``A = I + W``.
        translation: ``b`` in shape (B, 3), in voxels.
        spatial_shape: ``(X, Y, Z)``.

    Returns:
        Tensor in shape (B, 3, X, Y, Z): ``f(x) = W (x - c) + b``, with ``c = (N - 1) / 2`` per axis.
    """
    if matrix.ndim != 3 or matrix.shape[1:] != (3, 3):
        raise ValueError(f"matrix W must have shape (B, 3, 3), got {tuple(matrix.shape)}.")
    if translation.shape != (matrix.shape[0], 3):
        raise ValueError(f"translation b must have shape ({matrix.shape[0]}, 3), got {tuple(translation.shape)}.")
    if len(spatial_shape) != 3:
        raise ValueError(f"spatial_shape must have 3 entries (X, Y, Z), got {tuple(spatial_shape)}.")
    dtype = geometry_dtype(matrix, translation)
    matrix = matrix.to(dtype)
    ddf = translation.to(dtype)[:, :, None, None, None]
    # f_i(x) = b_i + sum_j W_ij (x_j - c_j): each x_j varies along axis j only, so no coordinate grid is built and
    # only the last sum is full size; elementwise, hence in ``dtype`` under autocast too.
    for axis, size in enumerate(spatial_shape):
        view = [1, 1, 1, 1, 1]
        view[2 + axis] = size
        coordinate = (torch.arange(size, device=matrix.device, dtype=dtype) - (size - 1) / 2).view(view)
        ddf = ddf + matrix[:, :, axis, None, None, None] * coordinate
    return ddf


def compose_ddf(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Compose two DDFs: warping by ``first`` then by ``second`` equals warping once by the result.

    ``compose_ddf(g1, g2)(x) = g2(x) + g1(x + g2(x))``, so
    ``warp(warp(I, g1), g2) == warp(I, compose_ddf(g1, g2))`` wherever ``x + g2(x)`` stays inside the volume
    (outside it, ``g1`` is extended by border padding).

    Args:
        first: ``g1``, Tensor in shape (B, 3, X, Y, Z).
        second: ``g2``, Tensor in shape (B, 3, X, Y, Z).

    Returns:
        Tensor in shape (B, 3, X, Y, Z).
    """
    check_ddf(first, "first")
    check_ddf(second, "second")
    if first.shape != second.shape:
        raise ValueError(f"first {tuple(first.shape)} and second {tuple(second.shape)} DDFs must have the same shape.")
    return second.to(geometry_dtype(first, second)) + warp(first, second)


def invert_ddf(
    ddf: torch.Tensor,
    base: torch.Tensor | None = None,
    max_iterations: int = 50,
    tolerance: float = 1e-3,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """The DDF ``u`` with ``compose_ddf(ddf, u) = base``: by default (``base`` zero) the inverse map of ``ddf``.

    Solves ``u = base - warp(ddf, u)`` by fixed-point iteration (which converges where ``|grad ddf| < 1``) until
    no component changes by more than ``tolerance`` voxels. Then ``warp(warp(image, ddf), u) ~ warp(image, base)``:
    if ``base`` registers an image pair, ``u`` registers the pair whose moving image was warped by ``ddf`` once
    more. Near the volume's border, where ``x + u(x)`` leaves the volume, border padding makes ``u`` approximate.

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), voxels.
        base: Tensor in shape (B, 3, X, Y, Z), voxels, or ``None`` for zero.
        max_iterations: at most this many fixed-point iterations.
        tolerance: stop once the largest change of an iteration is below this, in voxels.
        start: a first guess (B, 3, X, Y, Z), e.g. the solution on a coarser grid; default ``base - ddf``.

    Returns:
        Tensor in shape (B, 3, X, Y, Z).
    """
    check_ddf(ddf)
    base = torch.zeros_like(ddf) if base is None else base
    for name, value in (("base", base), ("start", start)):
        if value is not None and value.shape != ddf.shape:
            raise ValueError(f"{name} {tuple(value.shape)} and ddf {tuple(ddf.shape)} must have the same shape.")
    solution = base - ddf if start is None else start
    for _ in range(max_iterations):
        update = base - warp(ddf, solution)
        change = float((update - solution).abs().max())
        solution = update
        if change < tolerance:
            break
    return solution


def resize_ddf(ddf: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A DDF resampled to another grid over the same box (area averaging down, trilinear up), in the new grid's
    voxels (each component scaled by the ratio of the axis' sizes).

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), voxels.
        shape: the new grid's (X', Y', Z').

    Returns:
        Tensor in shape (B, 3, X', Y', Z').
    """
    source = ddf.shape[2:]
    if tuple(shape) == tuple(source):
        return ddf
    smaller = all(n <= m for n, m in zip(shape, source))
    resized = F.interpolate(ddf, size=tuple(shape), mode="area" if smaller else "trilinear")
    scale = torch.tensor([n / m for n, m in zip(shape, source)], dtype=ddf.dtype, device=ddf.device)
    return resized * scale.view(1, 3, 1, 1, 1)


def compose_affine_ddf(matrix: torch.Tensor, translation: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """Exact composition of an affine stage followed by a dense DDF (VTN eq. 19), no resampling.

    With ``f(x) = W (x - c) + b``: ``compose_ddf(f, g) = (I + W) g + f``, exact everywhere because an affine
    flow extends linearly beyond the volume.

    Args:
        matrix: ``W`` in shape (B, 3, 3).
        translation: ``b`` in shape (B, 3).
        ddf: ``g``, Tensor in shape (B, 3, X, Y, Z).

    Returns:
        Tensor in shape (B, 3, X, Y, Z).
    """
    check_ddf(ddf)
    dtype = geometry_dtype(matrix, ddf)
    composed = affine_to_ddf(matrix, translation, ddf.shape[2:])
    affine_matrix = (matrix + torch.eye(3, dtype=matrix.dtype, device=matrix.device)).to(dtype)
    ddf = ddf.to(dtype)
    for j in range(3):  # (I + W) g + f, one fused multiply-add per column, elementwise (unaffected by autocast)
        composed = torch.addcmul(composed, affine_matrix[:, :, j, None, None, None], ddf[:, j : j + 1])
    return composed


def compose_affine_params(
    first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose two affine stages ``(W1, b1)`` then ``(W2, b2)`` into one ``(W, b)``.

    With ``A_k = I + W_k``: ``A = A1 A2`` and ``b = A1 b2 + b1`` (both maps centred on the same ``c``).

    Returns:
        ``(W, b)`` in shapes (B, 3, 3) and (B, 3).
    """
    dtype = geometry_dtype(*first, *second)
    (w1, b1), (w2, b2) = ((w.to(dtype), b.to(dtype)) for w, b in (first, second))
    eye = torch.eye(3, dtype=dtype, device=w1.device)
    a1 = eye + w1
    with full_precision(w1.device):
        return a1 @ (eye + w2) - eye, (a1 @ b2.unsqueeze(-1)).squeeze(-1) + b1


def integrate_velocity(velocity: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """The DDF of the exponential of a stationary velocity field, by scaling and squaring.

    ``ddf = velocity / 2^steps``, then ``steps`` times ``ddf = compose_ddf(ddf, ddf)``: the same scheme as MONAI's
    ``DVF2DDF``, with this module's warp (border padding, one pass per composition). For a smooth enough
    velocity the result is a diffeomorphism: its Jacobian determinant stays positive.

    Args:
        velocity: Tensor in shape (B, 3, X, Y, Z), in voxels.
        steps: squaring steps, at least 1.

    Returns:
        Tensor in shape (B, 3, X, Y, Z).
    """
    check_ddf(velocity, "velocity")
    if int(steps) < 1:
        raise ValueError(f"scaling and squaring needs at least 1 step, got {steps}.")
    ddf = velocity / 2 ** int(steps)
    for _ in range(int(steps)):
        ddf = compose_ddf(ddf, ddf)
    return ddf


def jacobian_determinant(ddf: torch.Tensor) -> torch.Tensor:
    """Jacobian determinant of the map ``phi(x) = x + ddf(x)``.

    Derivatives are central differences inside the volume and one-sided differences on its faces.

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), each spatial size at least 2.

    Returns:
        Tensor in shape (B, 1, X, Y, Z); values <= 0 mark folding.
    """
    check_ddf(ddf)
    if min(ddf.shape[2:]) < 2:
        raise ValueError(f"ddf needs at least 2 voxels along each axis for derivatives, got {tuple(ddf.shape)}.")
    gradients = torch.gradient(ddf, dim=(2, 3, 4))  # gradients[j][:, i] = d ddf_i / d x_j, each (B, 3, X, Y, Z)
    # m[i][j] = d phi_i / d x_j as contiguous (B, X, Y, Z) maps: the cofactor expansion of determinant_3x3
    entries = [[gradients[j][:, i] + 1.0 if i == j else gradients[j][:, i] for j in range(3)] for i in range(3)]
    return _cofactor_expansion(entries).unsqueeze(1)


def determinant_3x3(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form determinant (cofactor expansion) of 3x3 matrices.

    Args:
        matrix: Tensor in shape (..., 3, 3).

    Returns:
        Tensor in shape (...).
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {tuple(matrix.shape)}.")
    return _cofactor_expansion([[matrix[..., i, j] for j in range(3)] for i in range(3)])


def _cofactor_expansion(m: list[list[torch.Tensor]]) -> torch.Tensor:
    """The determinant of the 3x3 matrices whose entry (i, j) is ``m[i][j]`` (Tensors of one shape), along the
    first row."""
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )
