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
:func:`save_figure` (atomic PNG) make and write figures. :func:`qc_figure` composes its panels as one RGB array
instead (matplotlib only writes its texts), a fraction of a second for a 128^3 pair.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, TwoSlopeNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image

from monai_mine.io.atomic import atomic_output

__all__ = [
    "QC_COLUMNS",
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
"""Colour of voxels with Jacobian determinant <= 0 (folds) in :func:`show_jacobian` and :func:`qc_figure`."""
GRID_COLOR = "#d95f02"
"""Colour of the deformation grid's lines in :func:`show_deformation_grid` and :func:`qc_figure`."""


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


def _window(array: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> tuple[float, float]:
    """The ``lower`` and ``upper`` percentiles of an array."""
    low, high = np.percentile(array, [lower, upper])
    return float(low), float(high)


def _rescale(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """An array scaled to [0, 1] between ``window``'s two values (clipped); an empty window gives 0."""
    low, high = window
    if high <= low:
        return np.zeros(np.shape(array))
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def normalize_intensity(volume, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Scale a volume to [0, 1] between its ``lower`` and ``upper`` percentiles (clipped); a constant one gives 0."""
    array = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    array = array.astype(np.float64)
    return _rescale(array, _window(array, lower, upper))


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
    return np.where(_parity(a.shape, int(tiles)) == 0, a, b)


def _parity(shape: Sequence[int], tiles: int) -> np.ndarray:
    """(X, Y, Z) int8: 0 or 1 alternately in ``tiles`` blocks per axis (the tiles of :func:`checkerboard`)."""
    blocks = [((np.arange(n) * tiles) // n).astype(np.int8) for n in shape]
    return (blocks[0][:, None, None] + blocks[1][None, :, None] + blocks[2][None, None, :]) % 2


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


def _moved_nodes(
    field: np.ndarray, view: str, index: int | None, step: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The nodes of a slice moved to ``x + ddf(x)`` (in-plane components), and the grid's line spacing.

    Args:
        field: (3, X, Y, Z) DDF in voxels.
        view, index: the slice.
        step: voxels between grid lines; about 24 lines along the longer side when ``None``.

    Returns:
        x, y: (H, V) moved positions (voxels) along the slice's horizontal and vertical axes; the step.
    """
    normal, horizontal, vertical = _axes_of(view)
    position = _index(field.shape[1:], view, index)
    u = np.take(field[horizontal], position, axis=normal)  # (H, V): displacement along the horizontal axis
    v = np.take(field[vertical], position, axis=normal)
    size_h, size_v = u.shape
    step = int(step) if step else max(1, max(size_h, size_v) // 24)
    hh, vv = np.meshgrid(np.arange(size_h), np.arange(size_v), indexing="ij")
    return hh + u, vv + v, step


def show_deformation_grid(
    ax: Axes,
    ddf,
    view: str = "axial",
    index: int | None = None,
    spacing: Sequence[float] | None = None,
    step: int | None = None,
    color: str = GRID_COLOR,
    linewidth: float = 0.6,
    title: str | None = None,
) -> LineCollection:
    """Draw a regular grid of the slice with each node ``x`` moved to ``x + ddf(x)`` (its in-plane components):
    where the DDF samples the moving image. Lines are ``step`` voxels apart (about 24 lines by default)."""
    x, y, step = _moved_nodes(_ddf(ddf), view, index, step)
    size_h, size_v = x.shape
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


QC_COLUMNS = ("fixed", "moving", "warped", "warped - fixed", "checkerboard", "grid", "Jacobian det")
"""The columns of :func:`qc_figure`, left to right."""
_QC_INCHES = {"panel": 2.0, "gap": 0.06, "left": 0.3, "labels": 0.22, "title": 0.26, "bar": 0.08, "bottom": 0.3}
"""Layout of :func:`qc_figure`: the longest slice side (one mm scale for all panels), the gap between panels, the
margins for row labels, column labels and title, the colour bars' height and the margin under the panels."""
_JACOBIAN_MAX = 2.0
"""In :func:`qc_figure`, determinants at or above this get the colour map's reddest colour."""
_QC_WINDOW_VOXELS = 2**18
""":func:`qc_figure` takes each image's grey window (1st and 99th percentiles) from every n-th voxel along each axis,
so that at most this many remain (a 128^3 volume: every 2nd)."""
_FRAME_RGB = (96, 96, 96)
"""Colour of the 1-pixel frame around each panel of :func:`qc_figure`."""


@functools.cache
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8: the colours of a matplotlib colour map."""
    return np.rint(colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def _rgb(color: str) -> np.ndarray:
    """(3,) uint8: a matplotlib colour."""
    return np.rint(np.asarray(to_rgb(color)) * 255).astype(np.uint8)


def _colorize(unit: np.ndarray, cmap: str = "gray") -> np.ndarray:
    """(..., 3) uint8: values in [0, 1] (clipped; NaN as 0) through a colour map."""
    index = np.rint(np.nan_to_num(np.clip(unit, 0.0, 1.0)) * 255).astype(np.intp)
    return _lut(cmap)[index]


def _difference_rgb(difference: np.ndarray, vmax: float) -> np.ndarray:
    """(..., 3) uint8: differences coloured as :func:`show_difference` draws them (white at 0, +-vmax saturated)."""
    return _colorize(0.5 + 0.5 * difference / vmax, "RdBu_r")


def _jacobian_rgb(determinant: np.ndarray) -> np.ndarray:
    """(..., 3) uint8: determinants coloured as :func:`show_jacobian` draws them (``vmax`` :data:`_JACOBIAN_MAX`)."""
    unit = np.where(determinant < 1.0, 0.5 * determinant, 0.5 + 0.5 * (determinant - 1.0) / (_JACOBIAN_MAX - 1.0))
    rgb = _colorize(unit, "RdBu_r")
    rgb[determinant <= 0] = _rgb(FOLD_COLOR)
    return rgb


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, ...): an image (V, H, ...) resampled by nearest neighbour (each pixel shows the voxel under its
    centre)."""
    rows = ((np.arange(height) + 0.5) * (image.shape[0] / height)).astype(np.intp)
    columns = ((np.arange(width) + 0.5) * (image.shape[1] / width)).astype(np.intp)
    return image[rows[:, None], columns]


def _densify(nodes: np.ndarray, samples: int) -> np.ndarray:
    """(L, (N - 1) * samples + 1): polylines (L, N) with ``samples`` evenly spaced points per segment."""
    t = np.arange(samples) / samples
    between = nodes[:, :-1, None] + t * np.diff(nodes)[..., None]
    return np.concatenate([between.reshape(len(nodes), -1), nodes[:, -1:]], axis=1)


def _polyline_pixels(rows: np.ndarray, columns: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of a (height, width) image that polylines pass through (sampled about once per pixel of length).

    Args:
        rows, columns: (L, N) pixel coordinates (0 at a pixel's edge) of the N nodes of each of L polylines.

    Returns:
        the row and the column indices (1D) of those pixels.
    """
    longest = np.nanmax(np.hypot(np.diff(rows), np.diff(columns)), initial=1.0)
    samples = int(min(np.ceil(longest), 64))
    rows, columns = np.floor(_densify(rows, samples)), np.floor(_densify(columns, samples))
    inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
    return rows[inside].astype(np.intp), columns[inside].astype(np.intp)


def _grid_panel(x: np.ndarray, y: np.ndarray, step: int, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8, row 0 at the bottom: white, with the deformed grid of :func:`_moved_nodes` (``x``,
    ``y``: (H, V) in voxels; lines ``step`` voxels apart) in 1-pixel lines of :data:`GRID_COLOR`."""
    size_h, size_v = x.shape
    columns, rows = (x + 0.5) * (width / size_h), (y + 0.5) * (height / size_v)
    panel = np.full((height, width, 3), 255, np.uint8)
    for line_rows, line_columns in ((rows[:, ::step].T, columns[:, ::step].T), (rows[::step], columns[::step])):
        panel[_polyline_pixels(line_rows, line_columns, height, width)] = _rgb(GRID_COLOR)
    return panel


def _view_slices(
    volumes: dict[str, np.ndarray], windows: dict[str, tuple[float, float]], parity: np.ndarray, view: str
) -> dict[str, np.ndarray]:
    """The middle slices (V, H) of one view for :func:`qc_figure`, named as in :data:`QC_COLUMNS` (but ``grid``).

    Args:
        volumes: (X, Y, Z) ``fixed``, ``moving``, ``warped`` and ``jacobian``.
        windows: the grey-value window of each image, by name.
        parity: (X, Y, Z) checkerboard tiles (:func:`_parity`).
        view: the view.

    Returns:
        the images scaled to [0, 1] by their windows, their checkerboard (fixed / warped) and difference (warped -
        fixed), and the Jacobian determinant.
    """
    scaled = {name: _rescale(slice_2d(volumes[name], view), window) for name, window in windows.items()}
    return scaled | {
        "warped - fixed": scaled["warped"] - scaled["fixed"],
        "checkerboard": np.where(slice_2d(parity, view) == 0, scaled["fixed"], scaled["warped"]),
        "Jacobian det": slice_2d(volumes["jacobian"], view),
    }


def _view_panels(
    slices: dict[str, np.ndarray], grid: np.ndarray, difference_max: float, height: int, width: int
) -> list[np.ndarray]:
    """The (height, width, 3) uint8 panels of one row of :func:`qc_figure`, in the order of :data:`QC_COLUMNS`, row 0
    at the bottom, from :func:`_view_slices`' slices, the (height, width, 3) grid panel and the difference's scale."""
    images = {name: _colorize(slices[name]) for name in ("fixed", "moving", "warped", "checkerboard")}
    images["warped - fixed"] = _difference_rgb(slices["warped - fixed"], difference_max)
    images["Jacobian det"] = _jacobian_rgb(slices["Jacobian det"])
    panels = {name: _resize(image, height, width) for name, image in images.items()} | {"grid": grid}
    return [panels[name] for name in QC_COLUMNS]


@dataclass(frozen=True)
class _Layout:
    """Where :func:`qc_figure` puts things, in pixels from the picture's top left corner."""

    sizes: tuple[tuple[int, int], ...]
    """(height, width) of each row's panels."""
    cell: int
    """A column's width (a row's panels are centred in it)."""
    tops: tuple[int, ...]
    """Each row's top."""
    lefts: tuple[int, ...]
    """Each column's left."""
    bar_top: int
    """The colour bars' top, under the last row."""
    bar_height: int
    """The colour bars' height."""
    shape: tuple[int, int]
    """(height, width) of the picture."""

    def bar_span(self, column: int) -> tuple[int, int]:
        """(left, width) of the colour bar under a column."""
        margin = self.cell // 10
        return self.lefts[column] + margin, self.cell - 2 * margin


def _pixels(name: str, dpi: float) -> int:
    """A length of :data:`_QC_INCHES` in pixels."""
    return round(_QC_INCHES[name] * dpi)


def _layout(shape: Sequence[int], spacing: Sequence[float], views: Sequence[str], dpi: float, titled: bool) -> _Layout:
    """The layout of :func:`qc_figure` for volumes of ``shape`` (X, Y, Z) with voxels of ``spacing`` mm: one row per
    view, the panels at one mm scale, the longest slice side :data:`_QC_INCHES` ``panel`` long."""
    extents = np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)  # mm
    planes = [_axes_of(view)[1:] for view in views]  # (horizontal, vertical) axes
    scale = _pixels("panel", dpi) / max(extents[axis] for plane in planes for axis in plane)
    sizes = tuple((max(1, round(extents[v] * scale)), max(1, round(extents[h] * scale))) for h, v in planes)
    cell, gap = max(width for _, width in sizes), _pixels("gap", dpi)
    first = _pixels("labels", dpi) + (_pixels("title", dpi) if titled else 0)
    tops = tuple(int(top) for top in first + np.cumsum([0] + [height + gap for height, _ in sizes[:-1]]))
    lefts = tuple(_pixels("left", dpi) + column * (cell + gap) for column in range(len(QC_COLUMNS)))
    bottom = tops[-1] + sizes[-1][0]
    return _Layout(
        sizes=sizes,
        cell=cell,
        tops=tops,
        lefts=lefts,
        bar_top=bottom + 2 * gap,
        bar_height=_pixels("bar", dpi),
        shape=(bottom + _pixels("bottom", dpi), lefts[-1] + cell + gap),
    )


class _Bar(NamedTuple):
    """A colour bar of :func:`qc_figure`."""

    colors: np.ndarray
    """(width, 3) uint8, left to right."""
    values: np.ndarray
    """(width,) the values the colours stand for."""
    ticks: tuple[float, ...]
    """The values labelled under the bar."""


def _color_bars(difference_max: float, width: int) -> dict[str, _Bar]:
    """The colour bars of :func:`qc_figure` by column, ``width`` pixels each; the Jacobian's starts below 0 to show
    the fold colour."""
    difference = np.linspace(-difference_max, difference_max, width)
    jacobian = np.linspace(-0.2 * _JACOBIAN_MAX, _JACOBIAN_MAX, width)
    return {
        "warped - fixed": _Bar(
            _difference_rgb(difference, difference_max), difference, (-difference_max, 0, difference_max)
        ),
        "Jacobian det": _Bar(_jacobian_rgb(jacobian), jacobian, (0.0, 1.0, _JACOBIAN_MAX)),
    }


def _picture(layout: _Layout, rows: list[list[np.ndarray]], bars: dict[str, _Bar]) -> np.ndarray:
    """(height, width, 3) uint8: the panels of every row (row 0 at the bottom) framed on white, and the colour bars."""
    picture = np.full((*layout.shape, 3), 255, np.uint8)
    for (height, width), top, panels in zip(layout.sizes, layout.tops, rows):
        for left, panel in zip(layout.lefts, panels):
            left += (layout.cell - width) // 2
            picture[top - 1 : top + height + 1, left - 1 : left + width + 1] = _FRAME_RGB
            picture[top : top + height, left : left + width] = panel[::-1]
    for name, bar in bars.items():
        left, width = layout.bar_span(QC_COLUMNS.index(name))
        picture[layout.bar_top : layout.bar_top + layout.bar_height, left : left + width] = bar.colors
    return picture


def _label(figure: Figure, layout: _Layout, x: float, y: float, text: str, **kwargs) -> None:
    """Write text at pixel (x, y) from the picture's top left corner."""
    height, width = layout.shape
    figure.text(x / width, 1.0 - y / height, text, **kwargs)


def _annotate(figure: Figure, layout: _Layout, views: Sequence[str], title: str | None, bars: dict[str, _Bar]) -> None:
    """The title, column and row labels and colour-bar ticks of :func:`qc_figure`."""
    if title:
        _label(figure, layout, layout.shape[1] / 2, 2, title, fontsize=10, ha="center", va="top")
    for left, name in zip(layout.lefts, QC_COLUMNS):
        _label(figure, layout, left + layout.cell / 2, layout.tops[0] - 4, name, fontsize=9, ha="center", va="bottom")
    for (height, _), top, view in zip(layout.sizes, layout.tops, views):
        _label(figure, layout, 2, top + height / 2, view, fontsize=9, rotation=90, ha="left", va="center")
    tick_top = layout.bar_top + layout.bar_height + 1
    for name, bar in bars.items():
        left, width = layout.bar_span(QC_COLUMNS.index(name))
        for tick in bar.ticks:
            x = left + (tick - bar.values[0]) / (bar.values[-1] - bar.values[0]) * (width - 1)
            _label(figure, layout, x, tick_top, f"{tick:.2g}", fontsize=7, ha="center", va="top")


def _text_layer(
    layout: _Layout, views: Sequence[str], title: str | None, bars: dict[str, _Bar], dpi: float
) -> np.ndarray:
    """(height, width, 3) uint8: the texts of :func:`_annotate` drawn by matplotlib (Agg), black on white."""
    height, width = layout.shape
    figure = Figure(figsize=((width + 0.25) / dpi, (height + 0.25) / dpi), dpi=dpi)  # + 1/4 pixel: no rounding down
    _annotate(figure, layout, views, title, bars)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:height, :width, :3]


def _write_png(picture: np.ndarray, path: str | os.PathLike, dpi: float) -> Path:
    """Write a (height, width, 3) uint8 picture as PNG atomically, with fast compression (zlib level 1)."""
    path = Path(path)
    with atomic_output(path) as temporary:
        Image.fromarray(picture).save(temporary, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return path


def _subsample(array: np.ndarray, voxels: int) -> np.ndarray:
    """Every n-th voxel of a volume along each axis, n the smallest step that leaves at most ``voxels`` voxels."""
    step = 1
    while np.prod([-(-size // step) for size in array.shape]) > voxels:
        step += 1
    return array[::step, ::step, ::step]


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
    """Write a quality-control PNG of a registration: one row per view (its middle slice), labelled on the left, and
    the columns of :data:`QC_COLUMNS`, labelled on top:

    - fixed, moving (on the fixed grid, before registration) and warped, each in grey between its 1st and 99th
      percentiles (taken from at most 2^18 voxels, every n-th along each axis);
    - warped - fixed of those [0, 1] images (``RdBu_r``, symmetric, saturated at the 99th percentile of |difference|
      over the slices shown; colour bar underneath);
    - checkerboard of fixed and warped (8 tiles per axis, as :func:`checkerboard`);
    - deformation grid: about 24 lines along the longer side, each node ``x`` at ``x + ddf(x)`` (in-plane), 1-pixel
      lines of :data:`GRID_COLOR` on white;
    - Jacobian determinant as :func:`show_jacobian` draws it (``RdBu_r`` centred at 1, saturated at 0 and 2, folds
      in :data:`FOLD_COLOR`; colour bar underneath).

    All panels share one mm scale, so each slice has its true proportions: the longest in-plane side (in mm) of the
    views shown is 2 inches, ``2 * dpi`` pixels, and voxels are shown by nearest neighbour. Each panel has a grey
    1-pixel frame; a row's panels are centred in equal columns.

    Args:
        fixed: (X, Y, Z) volume.
        moving: (X, Y, Z) moving image on the fixed grid, not deformed.
        warped: (X, Y, Z) warped moving image.
        ddf: (3, X, Y, Z) DDF in voxels.
        jacobian: (X, Y, Z) Jacobian determinant of ``x + ddf(x)``.
        path: the PNG to write (atomically).
        spacing: voxel size in mm per axis, 3 positive numbers (true slice proportions); 1 mm when ``None``.
        views: the rows, each one of :data:`VIEWS`.
        title: a title over the picture.
        dpi: pixels per inch (panel sizes and fonts scale with it).

    Returns:
        the path written.

    Raises:
        ValueError: inputs of other shapes or on different grids, a bad ``spacing``, no or unknown ``views``.
    """
    volumes = {
        name: _volume(value, name)
        for name, value in (("fixed", fixed), ("moving", moving), ("warped", warped), ("jacobian", jacobian))
    }
    field = _ddf(ddf)
    shapes = {name: array.shape for name, array in volumes.items()} | {"ddf": field.shape[1:]}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"qc_figure needs every input on one grid, got shapes {shapes}.")
    spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(float(value) for value in spacing)
    if len(spacing) != 3 or not all(value > 0 for value in spacing):
        raise ValueError(f"spacing must be 3 positive voxel sizes in mm, got {spacing}.")
    if not views:
        raise ValueError(f"qc_figure needs at least one view of {VIEWS}.")
    layout = _layout(field.shape[1:], spacing, views, dpi, bool(title))
    windows = {name: _window(_subsample(volumes[name], _QC_WINDOW_VOXELS)) for name in ("fixed", "moving", "warped")}
    parity = _parity(field.shape[1:], 8)
    slices = [_view_slices(volumes, windows, parity, view) for view in views]
    differences = np.concatenate([np.abs(view_slices["warped - fixed"]).ravel() for view_slices in slices])
    difference_max = float(np.percentile(differences, 99.0)) or 1.0
    rows = [
        _view_panels(view_slices, _grid_panel(*_moved_nodes(field, view, None, None), *size), difference_max, *size)
        for view_slices, view, size in zip(slices, views, layout.sizes)
    ]
    bars = _color_bars(difference_max, layout.bar_span(0)[1])
    # the texts lie on the white margins, so the darker of the two pictures at each pixel shows both
    picture = np.minimum(_picture(layout, rows, bars), _text_layer(layout, views, title, bars, dpi))
    return _write_png(picture, path, dpi)
