# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Scores of one method on one benchmark pair: overlap, surface distances, regularity, displacement error, time.

Every method's DDF is scored the same way: the moving labels are warped with nearest-neighbour sampling
(:func:`monai_mine.flows.warp`) and compared with the fixed labels by :func:`monai_mine.metrics.
registration_metrics` (Dice and IoU per tissue, HD95 and ASD in mm, Jacobian statistics over the whole volume);
the displacement error is ``|u(x) - u_true(x)|`` over the voxels of the fixed brain mask, in voxels and in mm
(each component times its voxel size).
"""

from __future__ import annotations

import numpy as np
import torch

from monai_mine.apps.benchmark.methods import MethodRun
from monai_mine.apps.benchmark.pairs import BenchmarkPair
from monai_mine.apps.template import LABEL_NAMES
from monai_mine.flows import warp
from monai_mine.metrics import registration_metrics

__all__ = ["displacement_error", "score_pair"]


def displacement_error(
    ddf: np.ndarray, ground_truth: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]
) -> dict[str, float]:
    """Mean and 95th percentile of ``|ddf - ground_truth|`` inside ``mask``, in voxels and in mm.

    Args:
        ddf: (3, X, Y, Z) DDF in voxels.
        ground_truth: (3, X, Y, Z) true DDF in voxels.
        mask: (X, Y, Z) bool, the voxels to measure.
        spacing: voxel size in mm per axis.

    Returns:
        ``error_mean_vox``, ``error_p95_vox``, ``error_mean_mm``, ``error_p95_mm``.

    Raises:
        ValueError: on shapes that do not match or an empty mask.
    """
    if ddf.shape != ground_truth.shape or ddf.shape[0] != 3 or ddf.shape[1:] != mask.shape:
        raise ValueError(
            f"ddf {ddf.shape} and ground_truth {ground_truth.shape} must be (3, X, Y, Z) over mask {mask.shape}."
        )
    if not mask.any():
        raise ValueError("mask is empty: no voxel to measure the displacement error on.")
    difference = (np.asarray(ddf, dtype=np.float64) - ground_truth)[:, mask]  # (3, N)
    in_voxels = np.linalg.norm(difference, axis=0)
    in_mm = np.linalg.norm(difference * np.asarray(spacing, dtype=np.float64)[:, None], axis=0)
    return {
        "error_mean_vox": float(in_voxels.mean()),
        "error_p95_vox": float(np.percentile(in_voxels, 95)),
        "error_mean_mm": float(in_mm.mean()),
        "error_p95_mm": float(np.percentile(in_mm, 95)),
    }


def score_pair(pair: BenchmarkPair, run: MethodRun) -> dict[str, float]:
    """All scores of a method's DDF on a pair, as one flat dict of floats.

    Keys: ``dice``, ``iou``, ``hd95``, ``asd`` (means over CSF, GM, WM) and per tissue ``dice_csf``, ``iou_gm``,
    ``hd95_wm``, ... (mm for HD95 and ASD); ``folding_percent``, ``sdlogj``, ``min_det``, ``max_det``; the
    displacement errors of :func:`displacement_error`; ``runtime_s``.

    Raises:
        ValueError: when the DDF is not (3, X, Y, Z) on the pair's grid.
    """
    ddf = torch.as_tensor(np.asarray(run.ddf, dtype=np.float32))
    if tuple(ddf.shape) != (3, *pair.fixed.shape):
        expected = (3, *pair.fixed.shape)
        raise ValueError(f"the DDF must have shape {expected} on the pair's grid, got {tuple(ddf.shape)}.")
    moving_label = torch.from_numpy(pair.moving_label)[None, None]
    warped_label = warp(moving_label, ddf[None], mode="nearest")
    labels = sorted(LABEL_NAMES)
    metrics = registration_metrics(
        ddf[None], warped_label, torch.from_numpy(pair.fixed_label)[None, None], pair.spacing, labels
    )[0]
    scores = {}
    for key, value in metrics.items():
        prefix, _, label = key.rpartition("_")
        if prefix and label.isdigit() and int(label) in LABEL_NAMES:
            key = f"{prefix}_{LABEL_NAMES[int(label)]}"
        scores[key] = value
    scores.update(displacement_error(run.ddf, pair.ground_truth, pair.mask, pair.spacing))
    scores["runtime_s"] = float(run.runtime_s)
    return scores
