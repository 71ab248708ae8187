# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Surface distances of integer label maps, per label and in mm: Hausdorff (HD95) and average surface distance.

Both wrap MONAI (``monai.metrics.compute_hausdorff_distance`` and ``compute_average_surface_distance``) on
binary masks, with the Euclidean distance between edge voxels scaled by the voxel spacing. A label that is
empty in either map of a sample has no surface to measure: its entry is NaN (MONAI would give ``inf`` and warn).
"""

from __future__ import annotations

import itertools
import warnings
from typing import Callable, Optional

import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

from monai_mine.metrics._checks import LabelsLike, SpacingLike, as_spacing, check_label_pair, resolve_labels

__all__ = ["hausdorff_distance_per_label", "average_surface_distance_per_label"]


def _per_label_surface_metric(
    pred: torch.Tensor,
    target: torch.Tensor,
    spacing: SpacingLike,
    labels: LabelsLike,
    compute: Callable[[torch.Tensor, torch.Tensor, list], torch.Tensor],
) -> torch.Tensor:
    """Run ``compute(pred_mask, target_mask, spacing)`` per sample and label present in both maps; NaN elsewhere."""
    pred, target = check_label_pair(pred, target)
    spacings = as_spacing(spacing, pred.shape[0])
    label_list = resolve_labels(labels, pred, target)
    result = torch.full((pred.shape[0], len(label_list)), float("nan"), dtype=torch.float64, device=pred.device)
    for b, index in itertools.product(range(pred.shape[0]), range(len(label_list))):
        # one sample and one label at a time: memory stays that of one pair of masks, (1, 1, X, Y, Z)
        pred_mask = pred[b : b + 1] == label_list[index]
        target_mask = target[b : b + 1] == label_list[index]
        if not (bool(pred_mask.any()) and bool(target_mask.any())):
            continue  # an empty mask has no surface: keep NaN (MONAI would warn and give inf)
        with warnings.catch_warnings():
            # MONAI 1.6 passes its own deprecated ``always_return_as_numpy`` argument internally
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            value = compute(pred_mask, target_mask, [spacings[b].tolist()])
        result[b, index] = value.reshape(()).to(device=result.device, dtype=result.dtype)
    return result


def hausdorff_distance_per_label(
    pred: torch.Tensor,
    target: torch.Tensor,
    spacing: SpacingLike,
    percentile: Optional[float] = 95.0,
    labels: LabelsLike = None,
) -> torch.Tensor:
    """Symmetric (percentile) Hausdorff distance in mm between the surfaces of each label, per sample.

    MONAI's definition: the ``percentile`` of the distances from each edge voxel of ``pred`` to the nearest edge
    voxel of ``target``, the same from ``target`` to ``pred``, and the larger of the two.

    Args:
        pred: warped moving label map, integer Tensor in shape (B, 1, X, Y, Z); 0 is background.
        target: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).
        spacing: voxel spacing in mm, 3 floats (one per spatial axis) or per-sample values in shape (B, 3).
        percentile: in (0, 100]; 95 gives HD95, ``None`` the maximum (the classical Hausdorff distance).
        labels: the L labels to score; defaults to the sorted non-zero labels present in ``pred`` or ``target``
            anywhere in the batch.

    Returns:
        float64 Tensor in shape (B, L), in mm. NaN where a label is empty in ``pred`` or in ``target`` of that
        sample (no surface to measure), so that ``torch.nanmean(hd, dim=1)`` averages the measurable labels.

    Raises:
        ValueError: when the maps are not (B, 1, X, Y, Z) or differ in shape, when ``spacing`` is neither 3 values
            nor (B, 3), or when ``percentile`` is outside (0, 100].
    """
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100] or None for the maximum, got {percentile}.")

    def compute(pred_mask: torch.Tensor, target_mask: torch.Tensor, spacings: list) -> torch.Tensor:
        return compute_hausdorff_distance(
            pred_mask, target_mask, include_background=True, percentile=percentile, spacing=spacings
        )

    return _per_label_surface_metric(pred, target, spacing, labels, compute)


def average_surface_distance_per_label(
    pred: torch.Tensor, target: torch.Tensor, spacing: SpacingLike, labels: LabelsLike = None
) -> torch.Tensor:
    """Symmetric average surface distance (ASD) in mm between the surfaces of each label, per sample.

    MONAI's symmetric definition: the mean over the union of both directed distance sets (each edge voxel of
    ``pred`` to the nearest edge voxel of ``target``, and each edge voxel of ``target`` to ``pred``).

    Args:
        pred: warped moving label map, integer Tensor in shape (B, 1, X, Y, Z); 0 is background.
        target: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).
        spacing: voxel spacing in mm, 3 floats (one per spatial axis) or per-sample values in shape (B, 3).
        labels: the L labels to score; defaults to the sorted non-zero labels present in either map.

    Returns:
        float64 Tensor in shape (B, L), in mm; NaN where a label is empty in ``pred`` or in ``target`` of that
        sample.

    Raises:
        ValueError: when the maps are not (B, 1, X, Y, Z) or differ in shape, or when ``spacing`` is neither
            3 values nor (B, 3).
    """

    def compute(pred_mask: torch.Tensor, target_mask: torch.Tensor, spacings: list) -> torch.Tensor:
        return compute_average_surface_distance(
            pred_mask, target_mask, include_background=True, symmetric=True, spacing=spacings
        )

    return _per_label_surface_metric(pred, target, spacing, labels, compute)
