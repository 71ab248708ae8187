# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Target registration error (TRE) of corresponding landmarks, in mm."""

from __future__ import annotations

import torch

from monai_mine.flows import check_ddf
from monai_mine.metrics._checks import SpacingLike, as_spacing, plain_tensor

__all__ = ["target_registration_error", "sample_ddf_at_points"]


def _check_points(points: torch.Tensor, name: str) -> torch.Tensor:
    points = plain_tensor(torch.as_tensor(points))
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) (voxel coordinates), got {tuple(points.shape)}.")
    if not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} must hold finite voxel coordinates.")
    return points.to(torch.float64)


def _single_ddf(ddf: torch.Tensor) -> torch.Tensor:
    """Accept a DDF of one sample, (1, 3, X, Y, Z) or (3, X, Y, Z); return it as (3, X, Y, Z)."""
    if isinstance(ddf, torch.Tensor) and ddf.ndim == 4 and ddf.shape[0] == 3:
        ddf = ddf.unsqueeze(0)
    check_ddf(ddf)
    if ddf.shape[0] != 1:
        raise ValueError(f"ddf must hold one sample, shape (1, 3, X, Y, Z) or (3, X, Y, Z), got {tuple(ddf.shape)}.")
    return plain_tensor(ddf)[0]


def sample_ddf_at_points(ddf: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of a DDF at (fractional) voxel coordinates.

    Points outside the volume are clamped to it, as ``monai_mine.flows.warp`` does with border padding.

    Args:
        ddf: one sample, Tensor in shape (1, 3, X, Y, Z) or (3, X, Y, Z), displacement in voxels.
        points: Tensor in shape (N, 3), voxel coordinates ``(x, y, z)`` (index space, not centred).

    Returns:
        float64 Tensor in shape (N, 3): ``ddf(points)`` in voxels.

    Raises:
        ValueError: when ``ddf`` is not one 3D DDF or ``points`` is not (N, 3).
    """
    field = _single_ddf(ddf).to(torch.float64)
    points = _check_points(points, "points").to(field.device)
    sizes = torch.tensor(field.shape[1:], dtype=torch.float64, device=field.device)
    points = torch.minimum(points.clamp_min(0.0), sizes - 1)
    low = torch.minimum(points.floor(), (sizes - 2).clamp_min(0))  # so that low + 1 stays inside
    frac = points - low
    low = low.long()
    high = torch.minimum(low + 1, (sizes - 1).long())
    # corner values (3, N, 2, 2, 2), then nested linear interpolation along Z, Y and X: exact for a constant field
    corners = torch.stack(
        [
            torch.stack(
                [
                    torch.stack([field[:, i, j, low[:, 2]], field[:, i, j, high[:, 2]]], dim=-1)
                    for j in (low[:, 1], high[:, 1])
                ],
                dim=-2,
            )
            for i in (low[:, 0], high[:, 0])
        ],
        dim=-3,
    )
    along_z = torch.lerp(corners[..., 0], corners[..., 1], frac[:, 2, None, None])  # (3, N, 2, 2)
    along_y = torch.lerp(along_z[..., 0], along_z[..., 1], frac[:, 1, None])  # (3, N, 2)
    along_x = torch.lerp(along_y[..., 0], along_y[..., 1], frac[:, 0])  # (3, N)
    return along_x.T


def target_registration_error(
    ddf: torch.Tensor, fixed_points: torch.Tensor, moving_points: torch.Tensor, spacing: SpacingLike
) -> torch.Tensor:
    """TRE of each landmark pair: ``|| (x_f + ddf(x_f) - x_m) * spacing ||`` in mm, for one sample.

    With ``warped(x) = moving(x + ddf(x))``, the fixed landmark ``x_f`` is mapped to ``x_f + ddf(x_f)`` in the
    moving image, to be compared with its moving landmark ``x_m``. ``ddf(x_f)`` is sampled trilinearly.

    Args:
        ddf: one sample, Tensor in shape (1, 3, X, Y, Z) or (3, X, Y, Z), displacement in voxels.
        fixed_points: Tensor in shape (N, 3), landmarks of the fixed image in voxel coordinates.
        moving_points: Tensor in shape (N, 3), corresponding landmarks of the moving image in voxel coordinates.
        spacing: voxel spacing in mm, 3 floats (one per spatial axis; moving and fixed share the grid).

    Returns:
        float64 Tensor in shape (N,), in mm.

    Raises:
        ValueError: when ``ddf`` is not one 3D DDF, the points are not both (N, 3), or ``spacing`` has not
            3 values.
    """
    fixed = _check_points(fixed_points, "fixed_points")
    moving = _check_points(moving_points, "moving_points")
    if fixed.shape != moving.shape:
        raise ValueError(
            f"fixed_points {tuple(fixed.shape)} and moving_points {tuple(moving.shape)} must have the same "
            f"shape (N, 3)."
        )
    scale = as_spacing(spacing, 1)[0]
    displacement = sample_ddf_at_points(ddf, fixed)
    device = displacement.device
    error = (displacement + (fixed.to(device) - moving.to(device))) * scale.to(device)
    return torch.linalg.vector_norm(error, dim=1)
