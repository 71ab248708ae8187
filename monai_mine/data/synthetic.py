# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Procedural 3D image pairs with labels and a known displacement, deterministic by seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from monai_mine.flows import affine_to_ddf, compose_ddf, warp

__all__ = ["SyntheticPair", "synthetic_pair"]


@dataclass
class SyntheticPair:
    """A fixed image and a moving image made from it by a known displacement.

    Attributes:
        fixed: (1, 1, X, Y, Z) intensities in [0, 1].
        fixed_label: (1, 1, X, Y, Z) integer labels, 0 background and 1..n structures.
        moving: (1, 1, X, Y, Z), ``warp(fixed, displacement)``, or of its other-contrast rendering.
        moving_label: (1, 1, X, Y, Z), ``warp(fixed_label, displacement, mode="nearest")``.
        displacement: (1, 3, X, Y, Z) in voxels, the DDF that made the moving image from the fixed one.
    """

    fixed: torch.Tensor
    fixed_label: torch.Tensor
    moving: torch.Tensor
    moving_label: torch.Tensor
    displacement: torch.Tensor


def _smooth_noise(
    shape: tuple[int, ...], channels: int, control_points: int, generator: torch.Generator
) -> torch.Tensor:
    """Random field (1, channels, *shape) in about [-1, 1], trilinearly upsampled from a coarse grid."""
    coarse = torch.rand(1, channels, *(control_points,) * 3, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)


def synthetic_pair(
    size: int = 32,
    num_structures: int = 3,
    max_rotation_deg: float = 8.0,
    max_translation: float = 2.0,
    max_deformation: float = 1.5,
    contrast: bool = False,
    seed: int = 0,
) -> SyntheticPair:
    """Ellipsoidal structures with texture on a soft background, and a moving copy under a known transform.

    The displacement is a random affine (rotation about each axis up to ``max_rotation_deg``, translation up to
    ``max_translation`` voxels) composed with a smooth random deformation (up to ``max_deformation`` voxels).
    With ``contrast=True`` the moving image shows the same anatomy in another contrast (as non-contrast vs
    contrast CT): body and structures get a different, non-monotonic intensity mapping, so that intensities
    correspond only statistically (mutual information) and not linearly (correlation).

    Args:
        size: edge length of the cubic volume, in voxels.
        num_structures: labelled ellipsoids (labels 1..num_structures), nested in a body ellipsoid.
        max_rotation_deg: bound of the random rotation angles, degrees.
        max_translation: bound of the random translation, voxels.
        max_deformation: bound of the smooth non-rigid displacement, voxels.
        contrast: render the moving image with the other intensity mapping.
        seed: seed of every random choice.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (size, size, size)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, size)] * 3, indexing="ij"))

    def ellipsoid(centre: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
        return (((grid - centre.view(3, 1, 1, 1)) / radii.view(3, 1, 1, 1)) ** 2).sum(0) <= 1

    label = torch.zeros(shape, dtype=torch.int64)
    body = ellipsoid(torch.zeros(3), torch.tensor([0.8, 0.7, 0.75]))
    for index in range(1, num_structures + 1):
        centre = (torch.rand(3, generator=generator) - 0.5) * 0.7
        radii = 0.15 + 0.15 * torch.rand(3, generator=generator)
        label[ellipsoid(centre, radii) & body] = index
    texture = 0.05 * _smooth_noise(shape, 1, max(4, size // 4), generator)[0, 0] * body

    def render(body_value: float, structure_values: list[float]) -> torch.Tensor:
        image = body_value * body.float()
        for index, value in enumerate(structure_values, start=1):
            image[label == index] = value
        return (image + texture).clamp(0, 1)

    fixed_values = [0.3 + 0.7 * index / num_structures for index in range(1, num_structures + 1)]
    image = render(0.2, fixed_values)
    # other contrast: structures in reversed brightness order around a mid-grey body (non-monotonic mapping)
    moving_source = render(0.6, fixed_values[::-1]) if contrast else image

    angles = (torch.rand(3, generator=generator) * 2 - 1) * math.radians(max_rotation_deg)
    rotation = torch.eye(3)
    for axis, angle in enumerate(angles.tolist()):
        i, j = [k for k in range(3) if k != axis]
        step = torch.eye(3)
        step[i, i] = step[j, j] = math.cos(angle)
        step[i, j], step[j, i] = -math.sin(angle), math.sin(angle)
        rotation = step @ rotation
    translation = (torch.rand(1, 3, generator=generator) * 2 - 1) * max_translation
    affine = affine_to_ddf((rotation - torch.eye(3)).unsqueeze(0), translation, shape)
    deformation = _smooth_noise(shape, 3, 5, generator) * max_deformation
    displacement = compose_ddf(deformation, affine)

    fixed = image.view(1, 1, *shape)
    fixed_label = label.view(1, 1, *shape)
    moving = warp(moving_source.view(1, 1, *shape), displacement)
    moving_label = warp(fixed_label, displacement, mode="nearest")
    return SyntheticPair(fixed, fixed_label, moving, moving_label, displacement)
