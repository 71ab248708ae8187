# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Voxel grids in world space: the network's working grid, resampling between grids, and DDFs across grids.

A :class:`Grid` is a spatial shape and a 4x4 voxel-to-world affine (NIfTI convention: world is RAS+ millimetres).
Two images are related by their world coordinates. Every function here composes index maps and samples the
source **once** (trilinear or nearest, ``torch.nn.functional.grid_sample`` on voxel centres, border padding as
``docs/design.md`` section 2 prescribes), slab by slab so that large grids fit in memory. Index maps are composed
in float64 with ``grid_sample``'s normalisation and applied axis by axis in the image's precision: the sampling
coordinates are those of mapping each voxel's point in float64, up to float32 rounding (about 1e-7 of the grid).

DDF conventions across grids (``docs/design.md`` section 2: voxel units, ``warped(x) = moving(x + ddf(x))``):

- the network's DDF ``d`` lives on the working grid ``W`` in working voxels;
- for a voxel ``x`` of a target (fixed) grid ``F`` with working coordinate ``w(x) = A_W^-1 A_F x``, the moving image
  is sampled at the world point ``p(x) = A_F x + L_W d(w(x))`` (``L`` the 3x3 linear part of an affine, ``d``
  interpolated trilinearly); the physical displacement is ``u(x) = p(x) - A_F x`` in mm;
- the DDF saved on ``F`` is in ``F``'s voxels: ``ddf(x) = L_F^-1 u(x) = A_F^-1 p(x) - x``, so that an image ``I``
  on any grid is warped onto ``F`` by sampling it at ``A_I^-1 A_F (x + ddf(x))``; on ``F`` itself that is exactly
  ``I(x + ddf(x))``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from monai_mine.flows import jacobian_determinant

__all__ = [
    "Grid",
    "box_overlap",
    "closest_ras_grid",
    "ddf_to_grid",
    "jacobian_map",
    "physical_displacement",
    "resample_to_grid",
    "to_closest_ras",
    "warp_to_grid",
    "working_grid",
]

SLAB_VOXELS = 2**21
"""Target voxels processed at once (about 25 MB of float32 sampling coordinates)."""


@dataclass(frozen=True, eq=False)
class Grid:
    """A 3D voxel grid: spatial shape ``(X, Y, Z)`` and the 4x4 voxel-to-world affine (mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        affine = np.asarray(self.affine, dtype=np.float64)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"a grid needs 3 positive sizes (X, Y, Z), got {tuple(self.shape)}.")
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(f"a grid's affine must be a finite 4x4 matrix, got {affine.tolist()}.")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError(f"a grid's affine must be invertible (non-zero voxel sizes), got {affine.tolist()}.")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "affine", affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine's linear part)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def axcodes(self) -> str:
        """The closest orientation codes, e.g. ``"RAS"`` or ``"LPS"``."""
        return "".join(nib.orientations.aff2axcodes(self.affine))

    @property
    def world_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The axis-aligned world bounding box (mm) of the voxel centres: ``(lower (3,), upper (3,))``."""
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in self.shape], indexing="ij")).reshape(3, -1)
        world = self.affine[:3, :3] @ corners + self.affine[:3, 3:4]
        return world.min(axis=1), world.max(axis=1)

    def same_as(self, other: Grid, tolerance: float = 1e-3) -> bool:
        """Whether both grids have one shape and their affines agree within ``tolerance`` mm per voxel step."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=tolerance, rtol=0))


def box_overlap(first: Grid, second: Grid) -> float:
    """The volume of the intersection of two grids' world boxes over the volume of the smaller box, in [0, 1]."""
    (low_a, high_a), (low_b, high_b) = first.world_box, second.world_box
    sides = np.clip(np.minimum(high_a, high_b) - np.maximum(low_a, low_b), 0.0, None)
    smaller = min(np.prod(np.maximum(high_a - low_a, 1e-6)), np.prod(np.maximum(high_b - low_b, 1e-6)))
    return float(np.prod(sides) / smaller)


def closest_ras_grid(grid: Grid) -> Grid:
    """The same box, its axes permuted and flipped to the closest RAS orientation (what ``Orientationd("RAS")``
    does to an image)."""
    orientation = nib.orientations.io_orientation(grid.affine)
    affine = grid.affine @ nib.orientations.inv_ornt_aff(orientation, grid.shape)
    shape = [0, 0, 0]
    for axis, (new_axis, _) in enumerate(orientation):
        shape[int(new_axis)] = grid.shape[axis]
    return Grid(tuple(shape), affine)


def working_grid(fixed: Grid, size: int) -> Grid:
    """The network's working grid: the fixed image's box in the closest RAS orientation, resampled to ``size``^3.

    Voxel ``j`` of the working grid sits at voxel ``(j + 0.5) n / size - 0.5`` of the RAS-oriented fixed grid of
    ``n`` voxels per axis: the same box corner to corner, as ``Resized`` (trilinear, ``align_corners=False``) maps
    it, so resampling onto this grid is exactly the bundles' ``Orientationd("RAS")`` + ``Resized`` preprocessing.

    Args:
        fixed: the fixed image's grid.
        size: voxels per axis (the bundle's ``image_size``).
    """
    if int(size) < 2:
        raise ValueError(f"the working grid needs at least 2 voxels per axis, got size {size}.")
    ras = closest_ras_grid(fixed)
    scale = np.asarray(ras.shape, dtype=np.float64) / size
    index = np.diag([*scale, 1.0])
    index[:3, 3] = (scale - 1.0) / 2.0
    return Grid((int(size),) * 3, ras.affine @ index)


def _slabs(shape: Sequence[int]) -> Iterator[slice]:
    """Ranges along the first axis holding about ``SLAB_VOXELS`` voxels each."""
    step = max(1, SLAB_VOXELS // max(1, shape[1] * shape[2]))
    for start in range(0, shape[0], step):
        yield slice(start, min(start + step, shape[0]))


def _normalising(shape: Sequence[int]) -> np.ndarray:
    """4x4: voxel indices of a grid of ``shape`` to ``grid_sample``'s coordinates (``align_corners=True``: -1 and 1
    are the centres of the first and last voxels, a size-1 axis maps to 0), listed in its (z, y, x) order."""
    matrix = np.zeros((4, 4))
    matrix[3, 3] = 1.0
    for axis, size in enumerate(shape):
        if size > 1:
            matrix[2 - axis, axis] = 2.0 / (size - 1)
            matrix[2 - axis, 3] = -1.0
    return matrix


def _sample_grid(
    image: torch.Tensor,
    index_map: np.ndarray,
    shape: Sequence[int],
    rows: slice,
    ddf: torch.Tensor | None = None,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Sample ``image`` at ``index_map (x + ddf(x))`` for the voxels ``x`` of rows ``rows`` of a grid of ``shape``.

    The index map and the normalisation to ``grid_sample``'s coordinates are composed once in float64 and applied
    in ``image``'s precision, axis by axis (no list of voxel points): the coordinates ``grid_sample`` receives are
    the mapped points', up to rounding.

    Args:
        image: Tensor in shape (C, X', Y', Z'), floating point.
        index_map: 4x4, voxel indices of the grid to voxel indices of ``image``.
        shape: the grid's shape (X, Y, Z).
        rows: the rows along its first axis to sample.
        ddf: Tensor in shape (3, x, Y, Z) (those rows), in the grid's voxels, or ``None``.
        mode, padding_mode: ``grid_sample``'s (``"bilinear"`` or ``"nearest"``; ``"border"`` or ``"zeros"``).

    Returns:
        Tensor in shape (C, x, Y, Z), the dtype of ``image``.
    """
    matrix = torch.as_tensor(_normalising(image.shape[1:]) @ index_map, dtype=image.dtype, device=image.device)
    linear, offset = matrix[:3, :3], matrix[:3, 3]
    axes = [
        torch.arange(rows.start, rows.stop, dtype=image.dtype, device=image.device),
        torch.arange(shape[1], dtype=image.dtype, device=image.device),
        torch.arange(shape[2], dtype=image.dtype, device=image.device),
    ]
    plane = axes[0][:, None, None, None] * linear[:, 0] + axes[1][None, :, None, None] * linear[:, 1]
    grid = plane + (axes[2][None, None, :, None] * linear[:, 2] + offset)
    if ddf is not None:
        grid += ddf.to(image.dtype).movedim(0, -1) @ linear.T
    sampled = F.grid_sample(image[None], grid[None], mode=mode, padding_mode=padding_mode, align_corners=True)
    return sampled[0]


def _check_image(image: torch.Tensor, grid: Grid, name: str) -> None:
    if image.ndim != 4 or tuple(image.shape[1:]) != grid.shape:
        raise ValueError(
            f"{name} must have shape (C, {', '.join(map(str, grid.shape))}) on its grid, got {tuple(image.shape)}."
        )


def resample_to_grid(
    image: torch.Tensor, source: Grid, target: Grid, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Resample an image from its grid onto another grid through world coordinates (no deformation).

    Args:
        image: Tensor in shape (C, *source.shape), floating point.
        source: the image's grid.
        target: the grid to sample on.
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"border"`` or ``"zeros"``.

    Returns:
        Tensor in shape (C, *target.shape).
    """
    _check_image(image, source, "image")
    index_map = np.linalg.inv(source.affine) @ target.affine  # target voxel -> source voxel
    out = image.new_empty((image.shape[0], *target.shape))
    for rows in _slabs(target.shape):
        out[:, rows] = _sample_grid(image, index_map, target.shape, rows, mode=mode, padding_mode=padding_mode)
    return out


def ddf_to_grid(ddf: torch.Tensor, source: Grid, target: Grid) -> torch.Tensor:
    """Map a DDF from the grid it was computed on (e.g. the working grid) to another grid's voxels.

    For a target voxel ``x``: ``w = A_S^-1 A_T x``, ``u = L_S ddf(w)`` (mm, ``ddf`` interpolated trilinearly with
    border padding) and the result is ``L_T^-1 u``: both DDFs send ``x`` to the same world point.

    Args:
        ddf: Tensor in shape (3, *source.shape), in ``source`` voxels.
        source: the DDF's grid.
        target: the grid to express it on.

    Returns:
        Tensor in shape (3, *target.shape), in ``target`` voxels, float32.
    """
    _check_image(ddf, source, "ddf")
    if ddf.shape[0] != 3:
        raise ValueError(f"ddf must have 3 channels (one per axis), got shape {tuple(ddf.shape)}.")
    index_map = np.linalg.inv(source.affine) @ target.affine
    components = np.linalg.inv(target.affine[:3, :3]) @ source.affine[:3, :3]  # source voxels -> target voxels
    rotate = torch.as_tensor(components, dtype=torch.float32, device=ddf.device)
    out = torch.empty((3, *target.shape), dtype=torch.float32, device=ddf.device)
    ddf, resized = ddf.float(), None
    aligned = _box_to_box(index_map, source.shape, target.shape)
    if aligned is not None:  # e.g. the working grid's DDF to the fixed grid: separable, no point list
        axes, flipped = aligned
        moved = ddf.permute(0, *(axis + 1 for axis in axes)).flip([axis + 1 for axis in flipped])
        resized = F.interpolate(moved[None], size=tuple(target.shape), mode="trilinear", align_corners=False)[0]
    for rows in _slabs(target.shape):
        if resized is None:
            displacement = _sample_grid(ddf, index_map, target.shape, rows)  # (3, x, Y, Z) source voxels
        else:
            displacement = resized[:, rows]
        out[:, rows] = torch.einsum("ij,j...->i...", rotate, displacement)
    return out


def _box_to_box(
    index_map: np.ndarray, source_shape: Sequence[int], target_shape: Sequence[int]
) -> tuple[list[int], list[int]] | None:
    """Whether target voxels map to source voxels box to box, axis by axis (as :func:`working_grid` and MONAI's
    ``Resized`` with ``align_corners=False`` map them), up to a permutation and flips of the target's axes.

    Args:
        index_map: 4x4, target voxel indices to source voxel indices.
        source_shape: the source grid's shape.
        target_shape: the target grid's shape.

    Returns:
        ``(axes, flipped)``: target axis ``i`` runs along source axis ``axes[i]``, reversed for the target axes
        in ``flipped`` (after the permutation); ``None`` when the map is not of that kind.
    """
    linear, offset = index_map[:3, :3], index_map[:3, 3]
    axes = [int(np.argmax(np.abs(linear[:, i]))) for i in range(3)]
    if sorted(axes) != [0, 1, 2]:
        return None
    flipped = []
    for i, axis in enumerate(axes):
        column = np.delete(linear[:, i], axis)
        scale = source_shape[axis] / target_shape[i]
        sign = float(np.sign(linear[axis, i]))
        start = (scale - 1.0) / 2.0 if sign > 0 else source_shape[axis] - 1.0 - (scale - 1.0) / 2.0
        if np.abs(column).max() > 1e-9 or abs(linear[axis, i] - sign * scale) > 1e-9 * scale:
            return None
        if abs(offset[axis] - start) > 1e-6:
            return None
        if sign < 0:
            flipped.append(i)
    return axes, flipped


def warp_to_grid(
    image: torch.Tensor,
    image_grid: Grid,
    ddf: torch.Tensor,
    ddf_grid: Grid,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Warp an image onto a DDF's grid with one resampling: sample it at ``A_I^-1 A_D (x + ddf(x))``.

    On the DDF's own grid this is ``warp(image, ddf)`` of ``monai_mine.flows`` (``image(x + ddf(x))``); on any other
    grid the image is sampled at the same world points.

    Args:
        image: Tensor in shape (C, *image_grid.shape); integer label maps are sampled with ``mode="nearest"``.
        image_grid: the image's grid.
        ddf: Tensor in shape (3, *ddf_grid.shape), in ``ddf_grid`` voxels.
        ddf_grid: the DDF's grid, which the result is on.
        mode: ``"bilinear"`` for images, ``"nearest"`` for label maps.
        padding_mode: ``"border"`` or ``"zeros"``.

    Returns:
        Tensor in shape (C, *ddf_grid.shape), the dtype of ``image`` (integer maps are rounded back).
    """
    _check_image(image, image_grid, "image")
    _check_image(ddf, ddf_grid, "ddf")
    if ddf.shape[0] != 3:
        raise ValueError(f"ddf must have 3 channels (one per axis), got shape {tuple(ddf.shape)}.")
    source = image if image.is_floating_point() else image.to(torch.float64)  # exact for any integer label
    index_map = np.linalg.inv(image_grid.affine) @ ddf_grid.affine
    out = source.new_empty((image.shape[0], *ddf_grid.shape))
    for rows in _slabs(ddf_grid.shape):
        out[:, rows] = _sample_grid(source, index_map, ddf_grid.shape, rows, ddf[:, rows], mode, padding_mode)
    return out if image.is_floating_point() else out.round().to(image.dtype)


def jacobian_map(ddf: torch.Tensor) -> torch.Tensor:
    """The Jacobian determinant of ``x + ddf(x)`` (:func:`monai_mine.flows.jacobian_determinant`), slab by slab.

    Each slab is computed with one row of its neighbours on either side, so the result equals the whole-volume
    computation, while the temporaries (nine derivative maps) stay the size of a slab, not of the volume.

    Args:
        ddf: Tensor in shape (3, X, Y, Z), in voxels, each spatial size at least 2.

    Returns:
        Tensor in shape (1, X, Y, Z), float32.
    """
    if ddf.ndim != 4 or ddf.shape[0] != 3:
        raise ValueError(f"ddf must be (3, X, Y, Z), got shape {tuple(ddf.shape)}.")
    out = torch.empty((1, *ddf.shape[1:]), dtype=torch.float32, device=ddf.device)
    size = ddf.shape[1]
    for rows in _slabs(ddf.shape[1:]):
        low, high = max(rows.start - 1, 0), min(rows.stop + 1, size)
        if high - low < 2:  # a last slab of one row: widen it to have a neighbour
            low = max(high - 2, 0)
        determinant = jacobian_determinant(ddf[None, :, low:high].float())[0]
        out[:, rows] = determinant[:, rows.start - low : rows.stop - low]
    return out


def physical_displacement(ddf: torch.Tensor, grid: Grid) -> torch.Tensor:
    """A DDF in voxels of ``grid`` as world displacement vectors in mm (``L ddf``; NIfTI world axes, RAS+).

    Args:
        ddf: Tensor in shape (3, X, Y, Z) or (B, 3, X, Y, Z).

    Returns:
        Tensor of the same shape, in mm along the world axes.
    """
    if ddf.ndim not in (4, 5) or ddf.shape[-4] != 3:
        raise ValueError(f"ddf must be (3, X, Y, Z) or (B, 3, X, Y, Z), got {tuple(ddf.shape)}.")
    linear = torch.as_tensor(grid.affine[:3, :3], dtype=ddf.dtype, device=ddf.device)
    return torch.einsum("ij,...jxyz->...ixyz", linear, ddf)


def to_closest_ras(array: np.ndarray, grid: Grid, vector: bool = False) -> tuple[np.ndarray, tuple[float, ...]]:
    """Reorient a channel-first array on ``grid`` to the closest RAS orientation (for display), without resampling.

    Args:
        array: (C, X, Y, Z) or (X, Y, Z) on ``grid``.
        grid: the array's grid.
        vector: ``array`` is a (3, X, Y, Z) DDF in voxels: its components are permuted and negated with the axes.

    Returns:
        the reoriented array and the voxel sizes (mm) along its new axes.
    """
    orientation = nib.orientations.io_orientation(grid.affine)
    channels = np.asarray(array)[None] if np.ndim(array) == 3 else np.asarray(array)
    oriented = np.stack([nib.orientations.apply_orientation(channel, orientation) for channel in channels])
    spacing = [0.0, 0.0, 0.0]
    for axis, (new_axis, _) in enumerate(orientation):
        spacing[int(new_axis)] = grid.spacing[axis]
    if vector:
        if oriented.shape[0] != 3:
            raise ValueError(f"a DDF must have 3 components, got array of shape {np.shape(array)}.")
        components = np.empty_like(oriented)
        for axis, (new_axis, flip) in enumerate(orientation):
            components[int(new_axis)] = flip * oriented[axis]
        oriented = components
    return (oriented[0] if np.ndim(array) == 3 else oriented), tuple(spacing)
