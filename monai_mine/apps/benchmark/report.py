# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Benchmark outputs: summary statistics, the Markdown table, the JSON file and the PNG figures.

- :func:`summarize`: mean, standard deviation (ddof 0), median, min and max of every score per track and method;
- :func:`track_table`: one Markdown table per track, ``mean (std)`` over the pairs;
- :func:`write_box_plots`: per track, one panel per metric with a box per method;
- :func:`write_pair_figure`: one pair, an axial slice: the fixed and moving images, the ground-truth deformation,
  and per method the warped image, its difference from the fixed image, a checkerboard, the deformation grid, the
  Jacobian map and the displacement error map.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from monai_mine.apps.benchmark.markdown import markdown_table
from monai_mine.apps.benchmark.pairs import BenchmarkPair
from monai_mine.flows import jacobian_determinant, warp
from monai_mine.io.atomic import atomic_write_text

__all__ = [
    "BOX_PLOT_METRICS",
    "TABLE_COLUMNS",
    "summarize",
    "track_table",
    "write_box_plots",
    "write_json",
    "write_pair_figure",
]

TABLE_COLUMNS = (
    ("dice_csf", "Dice CSF", 3),
    ("dice_gm", "Dice GM", 3),
    ("dice_wm", "Dice WM", 3),
    ("dice", "Dice mean", 3),
    ("iou", "IoU mean", 3),
    ("hd95", "HD95 mm", 2),
    ("asd", "ASD mm", 2),
    ("error_mean_vox", "err mean vox", 2),
    ("error_p95_vox", "err p95 vox", 2),
    ("error_mean_mm", "err mean mm", 2),
    ("error_p95_mm", "err p95 mm", 2),
    ("folding_percent", "folding %", 3),
    ("sdlogj", "SDlogJ", 3),
    ("runtime_s", "time s", 1),
)
"""(score key, column title, decimals) of the Markdown table."""

BOX_PLOT_METRICS = (
    ("dice_csf", "Dice CSF"),
    ("dice_gm", "Dice GM"),
    ("dice_wm", "Dice WM"),
    ("iou", "IoU (mean of tissues)"),
    ("hd95", "HD95 (mm)"),
    ("asd", "ASD (mm)"),
    ("error_mean_vox", "displacement error, mean (vox)"),
    ("error_p95_vox", "displacement error, p95 (vox)"),
    ("error_mean_mm", "displacement error, mean (mm)"),
    ("error_p95_mm", "displacement error, p95 (mm)"),
    ("folding_percent", "folding (% det <= 0)"),
    ("sdlogj", "SDlogJ"),
    ("runtime_s", "runtime per pair (s, log)"),
)
"""(score key, panel title) of the box plots."""

Records = Sequence[Mapping]
"""Score records: dicts with ``track``, ``method``, ``pair`` and the scores of :func:`~monai_mine.apps.benchmark.
evaluation.score_pair`."""


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize(records: Records) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Statistics per track, method and score: ``{track: {method: {score: {mean, std, median, min, max, n}}}}``.

    NaN values (a tissue that cannot be measured) are left out; a score with none left gets NaN statistics and
    ``n = 0``. Tracks and methods keep the order of their first record.
    """
    summary: dict = {}
    for record in records:
        summary.setdefault(record["track"], {}).setdefault(record["method"], [])
        summary[record["track"]][record["method"]].append(record)
    result: dict = {}
    for track, methods in summary.items():
        result[track] = {}
        for method, rows in methods.items():
            keys = [key for key in rows[0] if key not in ("track", "method", "pair") and _is_number(rows[0][key])]
            stats = {}
            for key in keys:
                values = _finite([row[key] for row in rows])
                stats[key] = (
                    {
                        "mean": float(np.mean(values)),
                        "std": float(np.std(values)),
                        "median": float(np.median(values)),
                        "min": float(np.min(values)),
                        "max": float(np.max(values)),
                        "n": len(values),
                    }
                    if values
                    else dict.fromkeys(("mean", "std", "median", "min", "max"), math.nan) | {"n": 0}
                )
            result[track][method] = stats
    return result


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def track_table(summary: Mapping, track: str) -> str:
    """The Markdown table of one track: a row per method, ``mean (std)`` over the pairs per column.

    Raises:
        KeyError: when the summary has no such track.
    """
    if track not in summary:
        raise KeyError(f"no results for track {track!r}; tracks present: {sorted(summary)}.")
    rows = []
    for method, stats in summary[track].items():
        pairs = max((entry["n"] for entry in stats.values()), default=0)
        cells = [method, str(pairs)]
        for key, _, decimals in TABLE_COLUMNS:
            entry = stats.get(key)
            if entry is None or not entry["n"]:
                cells.append("-")
            else:
                cells.append(f"{entry['mean']:.{decimals}f} ({entry['std']:.{decimals}f})")
        rows.append(cells)
    return markdown_table(["method", "pairs", *(title for _, title, _ in TABLE_COLUMNS)], rows) + "\n"


def write_json(path: str | os.PathLike, content: Mapping) -> Path:
    """Write ``content`` as indented JSON, atomically (NaN written as ``null``)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return atomic_write_text(path, json.dumps(clean(content), indent=2) + "\n")


def write_box_plots(records: Records, track: str, path: str | os.PathLike, methods: Sequence[str]) -> Path:
    """One PNG for a track: a panel per metric of :data:`BOX_PLOT_METRICS`, a box (and the points) per method.

    Raises:
        ValueError: when no record belongs to the track and methods.
    """
    from monai_mine.visualize import new_figure, save_figure

    rows = [record for record in records if record["track"] == track and record["method"] in methods]
    if not rows:
        raise ValueError(f"no records for track {track!r} and methods {list(methods)}.")
    present = [method for method in methods if any(row["method"] == method for row in rows)]
    columns = 4
    figure, axes = new_figure(math.ceil(len(BOX_PLOT_METRICS) / columns), columns, panel_inches=3.0)
    for ax, (key, title) in zip(axes.flat, BOX_PLOT_METRICS):
        data = [_finite([row.get(key) for row in rows if row["method"] == method]) for method in present]
        positions = [index for index, values in enumerate(data) if values]
        if positions:
            ax.boxplot([data[i] for i in positions], positions=positions, widths=0.6, showfliers=False)
            for index in positions:
                ax.plot([index] * len(data[index]), data[index], "o", markersize=3, alpha=0.6, color="C0")
        if key == "runtime_s":
            ax.set_yscale("log")
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels(present, rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(BOX_PLOT_METRICS) :]:
        ax.set_visible(False)
    figure.suptitle(f"track {track}: {len(rows) // max(len(present), 1)} pairs per method", fontsize=10)
    return save_figure(figure, path, dpi=80)


def write_pair_figure(
    pair: BenchmarkPair, ddfs: Mapping[str, np.ndarray], path: str | os.PathLike, index: int | None = None
) -> Path:
    """The one-pair figure, an axial slice: a first row with the fixed and moving images, their difference and
    checkerboard, the ground-truth deformation grid and Jacobian; then a row per method with the warped image,
    ``warped - fixed``, a fixed/warped checkerboard, the deformation grid, the Jacobian map and the displacement error
    ``|u - u_true|`` in mm.

    Args:
        pair: the benchmark pair.
        ddfs: method name -> (3, X, Y, Z) DDF in voxels, in row order.
        path: the PNG to write.
        index: the axial slice; the middle one by default.
    """
    from monai_mine.visualize import (
        new_figure,
        save_figure,
        show_checkerboard,
        show_deformation_grid,
        show_difference,
        show_image,
        show_jacobian,
    )

    view, spacing = "axial", pair.spacing
    moving = torch.from_numpy(pair.moving)[None, None]
    figure, axes = new_figure(1 + len(ddfs), 6, panel_inches=1.9)
    truth = torch.from_numpy(pair.ground_truth)[None]
    header = axes[0]
    show_image(header[0], pair.fixed, view, index, spacing, title="fixed")
    show_image(header[1], pair.moving, view, index, spacing, title=f"moving ({pair.track})")
    show_difference(header[2], pair.moving, pair.fixed, view, index, spacing, title="moving - fixed")
    show_checkerboard(header[3], pair.fixed, pair.moving, view, index, spacing, title="fixed / moving")
    show_deformation_grid(header[4], pair.ground_truth, view, index, spacing, title="true grid")
    show_jacobian(header[5], jacobian_determinant(truth)[0, 0], view, index, spacing, title="true Jacobian")
    header[0].set_ylabel("pair", fontsize=9)
    scale = np.asarray(spacing, dtype=np.float64)[:, None, None, None]
    for row, (method, ddf) in enumerate(ddfs.items(), start=1):
        ax = axes[row]
        field = torch.as_tensor(np.asarray(ddf, dtype=np.float32))[None]
        warped = warp(moving, field)[0, 0].numpy()
        error = np.linalg.norm((np.asarray(ddf, dtype=np.float64) - pair.ground_truth) * scale, axis=0)
        titles = ("warped", "warped - fixed", "fixed / warped", "grid", "Jacobian", "error mm (0-8)")
        titles = titles if row == 1 else (None,) * len(titles)
        show_image(ax[0], warped, view, index, spacing, title=titles[0])
        show_difference(ax[1], warped, pair.fixed, view, index, spacing, title=titles[1])
        show_checkerboard(ax[2], pair.fixed, warped, view, index, spacing, title=titles[2])
        show_deformation_grid(ax[3], ddf, view, index, spacing, title=titles[3])
        show_jacobian(ax[4], jacobian_determinant(field)[0, 0], view, index, spacing, title=titles[4])
        show_image(ax[5], error * pair.mask, view, index, spacing, cmap="magma", vmin=0.0, vmax=8.0, title=titles[5])
        ax[0].set_ylabel(method, fontsize=9)
    return save_figure(figure, path, dpi=72)
