# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Flow operations on dense displacement fields (DDFs): pure, batched, 3D tensor functions.

Conventions (``DESIGN.md`` section 2):

- images are ``(B, C, X, Y, Z)``; a DDF is ``(B, 3, X, Y, Z)`` in **voxel units**, channel ``i`` displacing
  spatial axis ``i``;
- ``warp(image, ddf)(x) = image(x + ddf(x))``, sampled with MONAI's ``Warp`` and border padding;
- ``compose_ddf(g1, g2) = g2 + warp(g1, g2)`` so that ``warp(warp(I, g1), g2) == warp(I, compose_ddf(g1, g2))``;
- an affine stage ``(W, b)`` has the DDF ``f(x) = W (x - c) + b`` with the grid centre ``c = (N - 1) / 2``.

Reference:
    Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
    IEEE JBHI 2020, eq. 1-4 (warping and composition), eq. 11 and 19 (affine flows).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from monai.networks.blocks import Warp

__all__ = [
    "warp",
    "identity_grid",
    "affine_to_ddf",
    "compose_ddf",
    "compose_affine_ddf",
    "compose_affine_params",
    "jacobian_determinant",
    "determinant_3x3",
    "check_ddf",
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


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border") -> torch.Tensor:
    """Resample ``image`` at ``x + ddf(x)``.

    Args:
        image: Tensor in shape (B, C, X, Y, Z): an image, a one-hot label or another DDF.
        ddf: Tensor in shape (B, 3, X, Y, Z), displacement in voxels.
        mode: ``"bilinear"`` (trilinear in 3D) for images and one-hot labels, ``"nearest"`` for label maps.
        padding_mode: ``"border"`` samples outside the volume at the nearest point of the enclosing cuboid.

    Returns:
        Tensor in shape (B, C, X, Y, Z).
    """
    _check_image_and_ddf(image, ddf)
    with warnings.catch_warnings():  # MONAI warns on every construction that it uses torch's grid_sample
        warnings.simplefilter("ignore", UserWarning)
        # A fresh Warp per call: Warp caches its reference grid without checking device or dtype.
        warper = Warp(mode=mode, padding_mode=padding_mode)
    if image.is_floating_point():
        return warper(image, ddf.to(image.dtype))
    return warper(image.to(ddf.dtype), ddf).round().to(image.dtype)  # integer label maps


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
    grid = identity_grid(spatial_shape, device=matrix.device, dtype=matrix.dtype)
    ddf = torch.einsum("bij,jxyz->bixyz", matrix, grid)
    return ddf + translation[:, :, None, None, None]


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
    return second + warp(first, second)


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
    affine_ddf = affine_to_ddf(matrix, translation, ddf.shape[2:])
    return ddf + torch.einsum("bij,bjxyz->bixyz", matrix, ddf) + affine_ddf


def compose_affine_params(
    first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose two affine stages ``(W1, b1)`` then ``(W2, b2)`` into one ``(W, b)``.

    With ``A_k = I + W_k``: ``A = A1 A2`` and ``b = A1 b2 + b1`` (both maps centred on the same ``c``).

    Returns:
        ``(W, b)`` in shapes (B, 3, 3) and (B, 3).
    """
    (w1, b1), (w2, b2) = first, second
    eye = torch.eye(3, dtype=w1.dtype, device=w1.device)
    a1 = eye + w1
    return a1 @ (eye + w2) - eye, (a1 @ b2.unsqueeze(-1)).squeeze(-1) + b1


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
    # jac[b, x, y, z, i, j] = d phi_i / d x_j
    jac = torch.stack(torch.gradient(ddf, dim=(2, 3, 4)), dim=-1).movedim(1, -2)
    jac = jac + torch.eye(3, dtype=ddf.dtype, device=ddf.device)
    return determinant_3x3(jac).unsqueeze(1)


def determinant_3x3(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form determinant (cofactor expansion) of 3x3 matrices.

    Args:
        matrix: Tensor in shape (..., 3, 3).

    Returns:
        Tensor in shape (...).
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {tuple(matrix.shape)}.")
    m = matrix
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )
