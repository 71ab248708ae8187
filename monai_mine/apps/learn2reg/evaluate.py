# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learn2Reg metrics of a folder of ``disp_*.nii.gz`` files, as the challenge's evaluation computes them.

Per pair (keys named as the Learn2Reg evaluation names them, plus monai-mine's own Jacobian statistics):

- ``DSC`` (mean over labels) and ``DSC_<label>``: Dice of the fixed label map and the moving label map sampled
  nearest-neighbour at ``x + disp(x)`` (zero outside the moving image, as ``map_coordinates(order=0)``), over the
  task's labels (``labels`` of the dataset JSON, else those present), :func:`monai_mine.metrics.dice_per_label`;
- ``HD95`` and ``HD95_<label>``: 95th percentile Hausdorff distance of those maps **in voxels** (the Learn2Reg script
  passes unit spacing), :func:`monai_mine.metrics.hausdorff_distance_per_label`;
- ``TRE``: mean target registration error of the keypoints in mm, ``|| (x_f + disp(x_f) - x_m) * moving spacing ||``
  (:func:`monai_mine.metrics.target_registration_error`; the displacement at a keypoint is interpolated trilinearly,
  where the Learn2Reg script uses cubic splines, a difference far below a voxel for smooth fields);
- ``LogJacDetStd``: Learn2Reg's SDlogJ, the standard deviation of ``log(clip(det J + 3, 1e-9))`` over the volume
  without a 2-voxel margin (central differences, as their ``jacobian_determinant``), within the fixed image's mask
  when ``masked`` (their ``masked_evaluation``, used for NLST); the ``sdlogj_l2r`` of
  :func:`monai_mine.metrics.jacobian_statistics` on that region;
- ``sdlogj`` (``log(max(det J, 1e-9))``, no ``+ 3``) and ``folding_percent`` (share of ``det J <= 0``) over the
  whole volume, monai-mine's definitions.

Aggregates per metric, as Learn2Reg reports them: ``mean``, ``std`` and the 30th percentile ``"30"`` over pairs
(NaN entries, e.g. a label absent from a pair, are left out).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from monai_mine.apps.learn2reg.export import image_grid, split_pairs
from monai_mine.apps.registration.io import load_ddf, load_volume
from monai_mine.data.learn2reg import Learn2RegTask, displacement_name, parse_learn2reg_name
from monai_mine.flows import warp
from monai_mine.io.atomic import atomic_write_text
from monai_mine.metrics import (
    dice_per_label,
    hausdorff_distance_per_label,
    jacobian_statistics,
    present_labels,
    target_registration_error,
)

__all__ = ["LEARN2REG_METRICS", "evaluate_displacement", "evaluate_learn2reg"]

LEARN2REG_METRICS = ("DSC", "HD95", "TRE", "LogJacDetStd", "sdlogj", "folding_percent")
"""Summary metrics of a pair; ``DSC``/``HD95`` need label maps of both images, ``TRE`` keypoints of both."""

JACOBIAN_MARGIN = 2
"""Voxels left out at each face for ``LogJacDetStd``, as the Learn2Reg evaluation crops ``[2:-2]``."""


def _keypoints(path: str) -> torch.Tensor:
    try:
        points = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as error:
        raise ValueError(f"keypoint file {path}: expected comma-separated x,y,z voxel coordinates: {error}") from error
    if points.shape[1] != 3:
        raise ValueError(f"keypoint file {path} has {points.shape[1]} columns; expected x,y,z voxel coordinates.")
    return torch.as_tensor(points, dtype=torch.float64)


def evaluate_displacement(
    task: Learn2RegTask, fixed: str, moving: str, displacement: str | os.PathLike, masked: bool = False
) -> dict[str, float]:
    """Learn2Reg metrics of one pair (see the module docstring for each key).

    Args:
        task: the Learn2Reg task (for the pair's label, mask and keypoint files, and its labels and shape).
        fixed: the fixed image's absolute path.
        moving: the moving image's absolute path.
        displacement: the pair's ``disp_*.nii.gz`` (X, Y, Z, 3) in fixed voxels.
        masked: restrict ``LogJacDetStd`` to the fixed image's mask (when the task has one).

    Raises:
        ValueError: naming the displacement file when its shape is not the fixed image's (X, Y, Z, 3).
    """
    field, _ = load_ddf(displacement, "Learn2Reg displacement")
    fixed_grid = image_grid(fixed, "fixed image")
    if tuple(field.shape[1:]) != fixed_grid.shape:
        raise ValueError(
            f"Learn2Reg displacement {displacement} has shape {(*field.shape[1:], 3)}; expected "
            f"{(*fixed_grid.shape, 3)}, the shape of the fixed image {fixed}."
        )
    ddf = field[None]  # (1, 3, X, Y, Z), fixed voxels
    fixed_files, moving_files = task.image_files(fixed), task.image_files(moving)

    region = torch.zeros((1, 1, *fixed_grid.shape), dtype=torch.bool)
    inner = tuple(slice(JACOBIAN_MARGIN, -JACOBIAN_MARGIN) for _ in range(3))
    region[(0, 0, *inner)] = True
    if masked and "mask" in fixed_files:
        region &= torch.as_tensor(load_volume(fixed_files["mask"], "fixed mask", label=True).data != 0)[None, None]
    whole = jacobian_statistics(ddf)
    result = {
        "LogJacDetStd": float(jacobian_statistics(ddf, region)["sdlogj_l2r"][0]),
        "sdlogj": float(whole["sdlogj"][0]),
        "folding_percent": float(whole["folding_percent"][0]),
    }

    if "label" in fixed_files and "label" in moving_files:
        fixed_label = torch.as_tensor(load_volume(fixed_files["label"], "fixed label", label=True).data)
        moving_label = load_volume(moving_files["label"], "moving label", label=True)
        if moving_label.grid.shape != fixed_grid.shape:
            raise ValueError(
                f"moving label {moving_files['label']} has shape {moving_label.grid.shape}; the Learn2Reg evaluation "
                f"samples it on the fixed grid {fixed_grid.shape} and needs the same shape."
            )
        moving_tensor = torch.as_tensor(moving_label.data, dtype=torch.float32)[None, None]
        warped = warp(moving_tensor, ddf, mode="nearest", padding_mode="zeros").round().long()
        target = fixed_label.long()[None, None]
        labels = list(task.labels) or present_labels(warped, target)
        dice = dice_per_label(warped, target, labels)[0]
        hd95 = hausdorff_distance_per_label(warped, target, (1.0, 1.0, 1.0), 95.0, labels)[0]
        result["DSC"], result["HD95"] = float(torch.nanmean(dice)), float(torch.nanmean(hd95))
        result.update({f"DSC_{label}": float(value) for label, value in zip(labels, dice.tolist())})
        result.update({f"HD95_{label}": float(value) for label, value in zip(labels, hd95.tolist())})

    keypoints = task.keypoints(fixed, moving)
    if keypoints is not None:
        spacing = image_grid(moving, "moving image").spacing
        tre = target_registration_error(ddf, _keypoints(keypoints[0]), _keypoints(keypoints[1]), spacing)
        result["TRE"] = float(tre.mean())
    return result


def _aggregate(values: list[float]) -> dict[str, float]:
    finite = np.array([value for value in values if math.isfinite(value)], dtype=np.float64)
    if not finite.size:
        return {"mean": math.nan, "std": math.nan, "30": math.nan, "count": 0}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "30": float(np.quantile(finite, 0.3)),
        "count": int(finite.size),
    }


def evaluate_learn2reg(
    dataset: str | os.PathLike,
    displacement_dir: str | os.PathLike,
    split: str = "validation",
    out: str | os.PathLike | None = None,
    masked: bool = False,
) -> dict:
    """Score a folder of Learn2Reg displacement files on one split of a task.

    Args:
        dataset: the task's ``*_dataset.json`` (or its folder).
        displacement_dir: the folder of ``disp_*.nii.gz`` files, as :func:`export_learn2reg` writes it.
        split: ``"validation"`` (``registration_val``), ``"test"`` or ``"training"``.
        out: when given, write the results there as JSON (and the per-pair table beside it as ``.csv``), atomically.
        masked: restrict ``LogJacDetStd`` to the fixed images' masks (Learn2Reg does for NLST).

    Returns:
        ``{"name", "split", "num_pairs", "aggregates": {metric: {"mean", "std", "30", "count"}},
        "cases": {"FFFF_fm<--MMMM_mm": {metric: value}}}``.

    Raises:
        ValueError: an unknown split or a split without pairs.
        FileNotFoundError: naming every missing displacement file (checked before any is read).
    """
    task, pairs = split_pairs(dataset, split)
    files = [Path(displacement_dir) / f"{displacement_name(fixed, moving)}.nii.gz" for fixed, moving in pairs]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(pairs)} displacement file(s) for the {split} pairs of {task.path} are "
            f"missing: {missing}."
        )
    cases = {}
    for path, (fixed, moving) in zip(files, pairs):
        (_, fixed_case, fixed_modality), (_, moving_case, moving_modality) = map(parse_learn2reg_name, (fixed, moving))
        key = f"{fixed_case}_{fixed_modality}<--{moving_case}_{moving_modality}"
        cases[key] = evaluate_displacement(task, fixed, moving, path, masked)
    metrics = list(dict.fromkeys(metric for case in cases.values() for metric in case))
    aggregates = {metric: _aggregate([case.get(metric, math.nan) for case in cases.values()]) for metric in metrics}
    results = {
        "name": task.name,
        "split": split,
        "num_pairs": len(cases),
        "aggregates": aggregates,
        "cases": cases,
    }
    if out is not None:
        out = Path(out)
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=["pair", *metrics])
        writer.writeheader()
        writer.writerows({"pair": key, **case} for key, case in cases.items())
        atomic_write_text(out.with_suffix(".csv"), table.getvalue())
        atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    return results
