# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Pictures of registrations with matplotlib (Agg, no pyplot state): slices, label contours, differences,
checkerboards, deformation grids, Jacobian maps, and a one-file QC figure.

Volumes are (X, Y, Z) arrays (numpy or torch; leading axes of size 1 are dropped), DDFs (3, X, Y, Z) in voxels with
``warped(x) = moving(x + ddf(x))``. A view shows one slice: ``"axial"`` (normal Z; X across, Y up), ``"coronal"``
(normal Y; X across, Z up) and ``"sagittal"`` (normal X; Y across, Z up); for a volume in RAS orientation that is
the neurological convention (the right side on the right, superior up). ``spacing`` (mm per axis) gives each slice
its true proportions. Every ``show_*`` function draws on a given matplotlib ``Axes``; :func:`new_figure` and
:func:`save_figure` (atomic PNG) make and write figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from monai_mine.io.atomic import atomic_output

__all__ = [
    "VIEWS",
    "checkerboard",
    "new_figure",
    "normalize_intensity",
    "qc_figure",
    "save_figure",
    "show_checkerboard",
    "show_deformation_grid",
    "show_difference",
    "show_image",
    "show_jacobian",
    "show_label_contours",
    "show_views",
    "slice_2d",
]

VIEWS = ("axial", "coronal", "sagittal")
_NORMAL = {"axial": 2, "coronal": 1, "sagittal": 0}  # the axis a view cuts across
FOLD_COLOR = "#39ff14"
"""Colour of voxels with Jacobian determinant <= 0 (folds) in :func:`show_jacobian`."""


def _volume(volume, name: str = "volume") -> np.ndarray:
    """A 3D float numpy array from a numpy array or tensor, leading axes of size 1 dropped."""
    array = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3D volume (X, Y, Z), got shape {np.shape(volume)}.")
    return array


def _ddf(ddf, name: str = "ddf") -> np.ndarray:
    array = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if array.ndim == 5 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 4 or array.shape[0] != 3:
        raise ValueError(f"{name} must be a DDF of shape (3, X, Y, Z) in voxels, got shape {np.shape(ddf)}.")
    return array.astype(np.float64)


def _axes_of(view: str) -> tuple[int, int, int]:
    """(normal, horizontal, vertical) axes of a view."""
    if view not in _NORMAL:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}.")
    normal = _NORMAL[view]
    horizontal, vertical = (axis for axis in range(3) if axis != normal)
    return normal, horizontal, vertical


def _index(shape: Sequence[int], view: str, index: int | None) -> int:
    normal = _axes_of(view)[0]
    index = shape[normal] // 2 if index is None else int(index)
    if not 0 <= index < shape[normal]:
        raise ValueError(f"slice index {index} is outside the {view} range [0, {shape[normal] - 1}].")
    return index


def _aspect(view: str, spacing: Sequence[float] | None) -> float:
    if spacing is None:
        return 1.0
    _, horizontal, vertical = _axes_of(view)
    return float(spacing[vertical]) / float(spacing[horizontal])


def slice_2d(volume, view: str = "axial", index: int | None = None) -> np.ndarray:
    """One slice of a volume, oriented for ``imshow(..., origin="lower")``.

    Args:
        volume: (X, Y, Z) array or tensor.
        view: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        index: the slice along the view's normal axis; the middle slice by default.

    Returns:
        a 2D array (vertical, horizontal).
    """
    array = _volume(volume)
    normal = _axes_of(view)[0]
    return np.take(array, _index(array.shape, view, index), axis=normal).T


def normalize_intensity(volume, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Scale a volume to [0, 1] between its ``lower`` and ``upper`` percentiles (clipped); a constant one gives 0."""
    array = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    array = array.astype(np.float64)
    low, high = np.percentile(array, [lower, upper])
    if high <= low:
        return np.zeros_like(array)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def _finish(ax: Axes, title: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def show_image(
    ax: Axes,
    volume,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
) -> AxesImage:
    """Draw one slice of a volume (grey values between its 1st and 99th percentiles unless vmin/vmax are given)."""
    array = _volume(volume)
    if vmin is None or vmax is None:
        low, high = np.percentile(array, [1.0, 99.0])
        vmin = low if vmin is None else vmin
        vmax = high if vmax is None else vmax
    image = ax.imshow(
        slice_2d(array, view, index),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        origin="lower",
        aspect=_aspect(view, spacing),
        interpolation="nearest",
    )
    _finish(ax, title)
    return image


def show_label_contours(
    ax: Axes,
    labels,
    view: str = "axial",
    index: int | None = None,
    colors: Sequence[str] | None = None,
    linewidths: float = 0.8,
) -> list[int]:
    """Draw the outline of every non-zero label of a label map's slice on top of what ``ax`` shows.

    Returns:
        the labels drawn.
    """
    plane = np.rint(slice_2d(labels, view, index)).astype(np.int64)
    drawn = [int(value) for value in np.unique(plane) if value != 0]
    palette = colors or [f"C{k}" for k in range(10)]
    for k, value in enumerate(drawn):
        if (plane == value).all():
            continue  # no boundary inside the slice
        ax.contour(
            (plane == value).astype(float),
            levels=[0.5],
            colors=[palette[k % len(palette)]],
            linewidths=linewidths,
            origin="lower",
        )
    return drawn


def show_difference(
    ax: Axes,
    image_a,
    image_b,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    normalize: bool = True,
    vmax: float | None = None,
    title: str | None = None,
) -> AxesImage:
    """Draw ``image_a - image_b`` in a diverging colour map centred at 0 (each image first scaled to [0, 1] between
    its 1st and 99th percentiles when ``normalize``); ``vmax`` defaults to the 99th percentile of |difference|."""
    a, b = _volume(image_a, "image_a"), _volume(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"image_a {a.shape} and image_b {b.shape} must have the same shape.")
    if normalize:
        a, b = normalize_intensity(a), normalize_intensity(b)
    difference = a - b
    if vmax is None:
        vmax = float(np.percentile(np.abs(difference), 99.0)) or 1.0
    image = ax.imshow(
        slice_2d(difference, view, index),
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        origin="lower",
        aspect=_aspect(view, spacing),
        interpolation="nearest",
    )
    _finish(ax, title)
    return image


def checkerboard(image_a, image_b, tiles: int = 8, normalize: bool = True) -> np.ndarray:
    """A 3D checkerboard: ``tiles`` blocks per axis, alternately from ``image_a`` and ``image_b``.

    Args:
        image_a: (X, Y, Z) volume.
        image_b: (X, Y, Z) volume.
        tiles: blocks per axis (at least 1).
        normalize: scale each image to [0, 1] between its 1st and 99th percentiles first (different contrasts).

    Returns:
        (X, Y, Z) array.
    """
    a, b = _volume(image_a, "image_a"), _volume(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"image_a {a.shape} and image_b {b.shape} must have the same shape.")
    if int(tiles) < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}.")
    if normalize:
        a, b = normalize_intensity(a), normalize_intensity(b)
    blocks = [(np.arange(n) * int(tiles)) // n for n in a.shape]
    parity = (blocks[0][:, None, None] + blocks[1][None, :, None] + blocks[2][None, None, :]) % 2
    return np.where(parity == 0, a, b)


def show_checkerboard(
    ax: Axes,
    image_a,
    image_b,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    tiles: int = 8,
    title: str | None = None,
) -> AxesImage:
    """Draw a slice of :func:`checkerboard` of two images (e.g. fixed and warped)."""
    return show_image(ax, checkerboard(image_a, image_b, tiles), view, index, spacing, vmin=0.0, vmax=1.0, title=title)


def show_deformation_grid(
    ax: Axes,
    ddf,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    step: int | None = None,
    color: str = "#d95f02",
    linewidth: float = 0.6,
    title: str | None = None,
) -> LineCollection:
    """Draw a regular grid of the slice with each node ``x`` moved to ``x + ddf(x)`` (its in-plane components):
    where the DDF samples the moving image. Lines are ``step`` voxels apart (about 24 lines by default)."""
    field = _ddf(ddf)
    normal, horizontal, vertical = _axes_of(view)
    position = _index(field.shape[1:], view, index)
    u = np.take(field[horizontal], position, axis=normal)  # (H, V): displacement along the horizontal axis
    v = np.take(field[vertical], position, axis=normal)
    size_h, size_v = u.shape
    step = int(step) if step else max(1, max(size_h, size_v) // 24)
    hh, vv = np.meshgrid(np.arange(size_h), np.arange(size_v), indexing="ij")
    x, y = hh + u, vv + v
    lines = [np.column_stack([x[:, j], y[:, j]]) for j in range(0, size_v, step)]
    lines += [np.column_stack([x[i, :], y[i, :]]) for i in range(0, size_h, step)]
    collection = LineCollection(lines, colors=color, linewidths=linewidth)
    ax.add_collection(collection)
    ax.set_xlim(-0.5, size_h - 0.5)
    ax.set_ylim(-0.5, size_v - 0.5)
    ax.set_aspect(_aspect(view, spacing))
    _finish(ax, title)
    return collection


def show_jacobian(
    ax: Axes,
    jacobian,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    vmax: float = 2.0,
    title: str | None = None,
) -> AxesImage:
    """Draw a Jacobian-determinant slice: diverging colours centred at 1 (blue: contraction, red: expansion, both
    clipped to [0, vmax]), and folds (det <= 0) in :data:`FOLD_COLOR`.

    Returns:
        the determinant image (for a colour bar).
    """
    if vmax <= 1.0:
        raise ValueError(f"vmax must be > 1 (the colour map is centred at det = 1), got {vmax}.")
    plane = slice_2d(jacobian, view, index)
    aspect = _aspect(view, spacing)
    image = ax.imshow(
        plane,
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax),
        origin="lower",
        aspect=aspect,
        interpolation="nearest",
    )
    folds = np.ma.masked_where(plane > 0, np.ones_like(plane))
    ax.imshow(
        folds, cmap=ListedColormap([FOLD_COLOR]), vmin=0, vmax=1, origin="lower", aspect=aspect, interpolation="nearest"
    )
    _finish(ax, title)
    return image


def show_views(
    axes: Sequence[Axes],
    volume,
    spacing: Sequence[float] | None = None,
    views: Sequence[str] = VIEWS,
    **kwargs,
) -> list[AxesImage]:
    """Draw the middle slice of each view (axial, coronal, sagittal) of a volume, one per axes.

    Args:
        axes: one ``Axes`` per view.
        volume: (X, Y, Z) array or tensor.
        spacing: voxel size in mm per axis.
        views: the views, in the order of ``axes``.
        kwargs: passed to :func:`show_image` (``cmap``, ``vmin``, ``vmax``).
    """
    if len(axes) != len(views):
        raise ValueError(f"need one Axes per view: {len(axes)} axes for views {tuple(views)}.")
    return [show_image(ax, volume, view, None, spacing, title=view, **kwargs) for ax, view in zip(axes, views)]


def new_figure(rows: int, columns: int, panel_inches: float = 2.2) -> tuple[Figure, np.ndarray]:
    """A Figure (no pyplot) with a ``rows`` x ``columns`` array of Axes of about ``panel_inches`` each."""
    figure = Figure(figsize=(columns * panel_inches, rows * panel_inches), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write a figure as PNG atomically (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    return path


def qc_figure(
    fixed,
    moving,
    warped,
    ddf,
    jacobian,
    path: str | os.PathLike,
    spacing: Sequence[float] | None = None,
    views: Sequence[str] = VIEWS,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write a quality-control PNG of a registration, one row per view (middle slices), columns: fixed, moving (on
    the fixed grid, before registration), warped, difference (warped - fixed, each scaled to [0, 1]), checkerboard
    (fixed / warped), deformation grid, Jacobian determinant.

    Args:
        fixed: (X, Y, Z) volume.
        moving: (X, Y, Z) moving image on the fixed grid, not deformed.
        warped: (X, Y, Z) warped moving image.
        ddf: (3, X, Y, Z) DDF in voxels.
        jacobian: (X, Y, Z) Jacobian determinant of ``x + ddf(x)``.
        path: the PNG to write.
        spacing: voxel size in mm per axis (true slice proportions).
        views: the rows.
        title: a title over the figure.
        dpi: resolution.

    Returns:
        the path written.
    """
    volumes = {
        name: _volume(value, name)
        for name, value in (("fixed", fixed), ("moving", moving), ("warped", warped), ("jacobian", jacobian))
    }
    field = _ddf(ddf)
    shapes = {name: array.shape for name, array in volumes.items()} | {"ddf": field.shape[1:]}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"qc_figure needs every input on one grid, got shapes {shapes}.")
    # whole-volume statistics once, not per panel (real volumes have millions of voxels)
    scaled = {name: normalize_intensity(volumes[name]) for name in ("fixed", "moving", "warped")}
    difference_max = float(np.percentile(np.abs(scaled["warped"] - scaled["fixed"]), 99.0)) or 1.0
    board = checkerboard(scaled["fixed"], scaled["warped"], normalize=False)
    columns = ("fixed", "moving", "warped", "warped - fixed", "checkerboard", "grid", "Jacobian det")
    figure, axes = new_figure(len(views), len(columns))
    for row, view in enumerate(views):
        titles = columns if row == 0 else (None,) * len(columns)
        ax = axes[row]
        for k, name in enumerate(("fixed", "moving", "warped")):
            show_image(ax[k], scaled[name], view, None, spacing, vmin=0.0, vmax=1.0, title=titles[k])
        difference = show_difference(
            ax[3], scaled["warped"], scaled["fixed"], view, None, spacing, False, difference_max, titles[3]
        )
        show_image(ax[4], board, view, None, spacing, vmin=0.0, vmax=1.0, title=titles[4])
        show_deformation_grid(ax[5], field, view, None, spacing, title=titles[5])
        determinant = show_jacobian(ax[6], volumes["jacobian"], view, None, spacing, title=titles[6])
        ax[0].set_ylabel(view, fontsize=9)
        if row == 0:
            figure.colorbar(difference, ax=ax[3], fraction=0.046, pad=0.02)
            figure.colorbar(determinant, ax=ax[6], fraction=0.046, pad=0.02)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path, dpi)
