# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Benchmark pairs: the template (fixed) and a copy under a known random transform (moving), deterministic by seed.

The generating displacement ``g`` (voxels, ``docs/design.md`` section 2) is a random affine map composed with a smooth
random deformation, and ``moving = warp(source, g)``, ``moving_label = warp(labels, g, nearest)``, where the
source is the T1 template (track ``"mono"``) or its T2-like rendering (track ``"multimodal"``: CSF bright, GM mid,
WM dark). The fixed image is always the T1 template with its labels.

A registration method must return ``u`` with ``warp(moving, u) == fixed``, i.e. ``x + u(x)`` is the inverse map of
``x + g(x)``: the pair keeps that inverse as its ground truth (:func:`monai_mine.flows.invert_ddf`), and
:attr:`BenchmarkPair.displacement` keeps ``g`` itself.

- affine: ``A = R S`` about the grid centre ``c = (N - 1) / 2`` (``docs/design.md`` section 2), rotations about
  each axis uniform in ``[-max_rotation_deg, max_rotation_deg]``, scale factors uniform in
  ``[1 - max_scaling, 1 + max_scaling]`` per axis, translation uniform in
  ``[-max_translation, max_translation]`` voxels per axis;
- deformation: random vectors of norm at most ``max_deformation`` voxels (uniform in the ball) on a coarse
  ``control_points``^3 grid, evaluated everywhere as a cubic B-spline with those vectors as coefficients (C2
  smooth; a B-spline value is a convex combination of coefficients, so its norm stays within the bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from monai_mine.apps.template import BrainTemplate
from monai_mine.flows import affine_to_ddf, compose_ddf, invert_ddf, warp

__all__ = [
    "TRACKS",
    "BenchmarkPair",
    "deform_template",
    "make_pair",
    "pair_seed",
    "random_affine",
    "smooth_deformation",
]

TRACKS = ("mono", "multimodal")
"""Benchmark tracks: T1 -> T1, and a T2-like moving image -> T1."""

_SPLIT_OFFSETS = {"test": 0, "training": 20_000, "validation": 40_000}
_TRACK_OFFSETS = {"mono": 0, "multimodal": 10_000}


@dataclass
class BenchmarkPair:
    """One benchmark pair on the template grid; arrays are (X, Y, Z) unless said otherwise.

    Attributes:
        track: ``"mono"`` or ``"multimodal"``.
        seed: the seed that made the pair.
        fixed: float32 T1 template, [0, 1].
        moving: float32 moving image, [0, 1].
        fixed_label: int64 labels of the fixed image (1 CSF, 2 GM, 3 WM).
        moving_label: int64 labels of the moving image.
        mask: bool brain mask of the fixed image (where displacement errors are measured).
        displacement: float32 (3, X, Y, Z), the generating DDF ``g`` in voxels: ``moving = warp(source, g)``.
        ground_truth: float32 (3, X, Y, Z), the registration answer ``u`` in voxels: ``warp(moving, u) ~ fixed``.
        spacing: voxel size in mm.
        affine: 4x4 voxel-to-world matrix shared by both images.
    """

    track: str
    seed: int
    fixed: np.ndarray
    moving: np.ndarray
    fixed_label: np.ndarray
    moving_label: np.ndarray
    mask: np.ndarray
    displacement: np.ndarray
    ground_truth: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def pair_seed(seed: int, track: str, split: str, index: int) -> int:
    """The seed of pair ``index`` of a split and track: disjoint for test, training and validation pairs.

    Raises:
        ValueError: unknown track or split, or an index outside [0, 10000).
    """
    if track not in _TRACK_OFFSETS:
        raise ValueError(f"track must be one of {TRACKS}, got {track!r}.")
    if split not in _SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {tuple(_SPLIT_OFFSETS)}, got {split!r}.")
    if not 0 <= index < 10_000:
        raise ValueError(f"index must be in [0, 10000), got {index}.")
    return 100_000 * int(seed) + _SPLIT_OFFSETS[split] + _TRACK_OFFSETS[track] + index


def random_affine(
    rng: np.random.Generator, max_rotation_deg: float, max_scaling: float, max_translation: float
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``A = R S`` (3, 3) and translation (3,) in voxels, within the given bounds."""
    rotation = np.eye(3)
    for axis, angle in enumerate(rng.uniform(-1.0, 1.0, 3) * math.radians(max_rotation_deg)):
        i, j = [k for k in range(3) if k != axis]
        step = np.eye(3)
        step[i, i] = step[j, j] = math.cos(angle)
        step[i, j], step[j, i] = -math.sin(angle), math.sin(angle)
        rotation = step @ rotation
    scaling = np.diag(1.0 + rng.uniform(-max_scaling, max_scaling, 3))
    translation = rng.uniform(-max_translation, max_translation, 3)
    return rotation @ scaling, translation


def _cubic_bspline_basis(size: int, control_points: int) -> np.ndarray:
    """Weights (size, control_points) of the uniform cubic B-spline at each voxel of an axis.

    Voxel ``i`` sits at coefficient coordinate ``t = i * (control_points - 1) / (size - 1)``; coefficient indices
    outside the grid are clamped to its edge. Rows are non-negative and sum to 1.
    """
    positions = np.arange(size, dtype=np.float64) * (control_points - 1) / max(size - 1, 1)
    basis = np.zeros((size, control_points))
    rows = np.arange(size)
    for offset in (-1, 0, 1, 2):
        knots = np.floor(positions) + offset
        distance = np.abs(positions - knots)
        weight = np.where(
            distance < 1.0,
            2.0 / 3.0 - distance**2 + distance**3 / 2.0,
            np.where(distance < 2.0, (2.0 - distance) ** 3 / 6.0, 0.0),
        )
        np.add.at(basis, (rows, np.clip(knots, 0, control_points - 1).astype(int)), weight)
    return basis


def smooth_deformation(
    shape: tuple[int, int, int], rng: np.random.Generator, max_deformation: float, control_points: int = 5
) -> np.ndarray:
    """A smooth random DDF (3, X, Y, Z) in voxels whose vector norm is at most ``max_deformation`` everywhere."""
    directions = rng.normal(size=(control_points,) * 3 + (3,))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    radii = max_deformation * rng.uniform(0.0, 1.0, (control_points,) * 3 + (1,)) ** (1.0 / 3.0)
    coefficients = directions * radii
    bx, by, bz = (_cubic_bspline_basis(n, control_points) for n in shape)
    return np.einsum("xi,yj,zk,ijkc->cxyz", bx, by, bz, coefficients, optimize=True).astype(np.float32)


def _check_bounds(**bounds: float) -> None:
    for name, value in bounds.items():
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}.")


def deform_template(
    template: BrainTemplate,
    track: str = "mono",
    seed: int = 0,
    max_rotation_deg: float = 8.0,
    max_scaling: float = 0.08,
    max_translation: float = 3.0,
    max_deformation: float = 8.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The template's image of a track and its labels under a random affine + smooth deformation.

    Args:
        template: the :class:`~monai_mine.apps.template.BrainTemplate`.
        track: ``"mono"`` (T1) or ``"multimodal"`` (T2-like).
        seed: seed of every random choice (see :func:`pair_seed` for disjoint splits).
        max_rotation_deg: bound of each rotation angle, degrees.
        max_scaling: bound of ``|scale - 1|`` per axis.
        max_translation: bound of each translation component, voxels.
        max_deformation: bound of the smooth deformation's vector norm, voxels.

    Returns:
        ``(displacement, moving, moving_label)``: the generating DDF ``g`` (1, 3, X, Y, Z) in voxels, the moving
        image ``warp(source, g)`` (1, 1, X, Y, Z) and its labels ``warp(labels, g, nearest)`` (1, 1, X, Y, Z).

    Raises:
        ValueError: on an unknown track or a negative bound.
    """
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, got {track!r}.")
    _check_bounds(
        max_rotation_deg=max_rotation_deg,
        max_scaling=max_scaling,
        max_translation=max_translation,
        max_deformation=max_deformation,
    )
    rng = np.random.default_rng(seed)
    shape = template.t1.shape
    matrix, translation = random_affine(rng, max_rotation_deg, max_scaling, max_translation)
    affine = affine_to_ddf(
        torch.as_tensor(matrix - np.eye(3), dtype=torch.float32)[None],
        torch.as_tensor(translation, dtype=torch.float32)[None],
        shape,
    )
    deformation = torch.from_numpy(smooth_deformation(shape, rng, max_deformation))[None]
    displacement = compose_ddf(deformation, affine)  # warp(warp(I, deformation), affine)
    source = template.t1 if track == "mono" else template.t2_like
    moving = warp(torch.from_numpy(source)[None, None], displacement)
    moving_label = warp(torch.from_numpy(template.labels)[None, None], displacement, mode="nearest")
    return displacement, moving, moving_label


def make_pair(template: BrainTemplate, track: str = "mono", seed: int = 0, **bounds: float) -> BenchmarkPair:
    """A benchmark pair: the template (fixed) and its copy under a random affine + smooth deformation (moving).

    Args:
        template: the :class:`~monai_mine.apps.template.BrainTemplate`.
        track: ``"mono"`` (T1 moving) or ``"multimodal"`` (T2-like moving).
        seed: seed of every random choice (see :func:`pair_seed` for disjoint splits).
        bounds: ``max_rotation_deg``, ``max_scaling``, ``max_translation``, ``max_deformation`` of
            :func:`deform_template` (defaults 8 degrees, 8 %, 3 voxels, 8 voxels).

    Returns:
        the :class:`BenchmarkPair`, with the ground truth inverted by :func:`~monai_mine.flows.invert_ddf`.

    Raises:
        ValueError: on an unknown track or a negative bound.
    """
    displacement, moving, moving_label = deform_template(template, track, seed, **bounds)
    ground_truth = invert_ddf(displacement)
    return BenchmarkPair(
        track=track,
        seed=int(seed),
        fixed=template.t1.copy(),
        moving=moving[0, 0].numpy(),
        fixed_label=template.labels.copy(),
        moving_label=moving_label[0, 0].numpy(),
        mask=template.mask.copy(),
        displacement=displacement[0].numpy(),
        ground_truth=ground_truth[0].numpy(),
        spacing=template.spacing,
        affine=template.affine.copy(),
    )
