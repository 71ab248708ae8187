# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""All metrics of a registered pair in one call, as plain floats: what an evaluation workflow records."""

from __future__ import annotations

import torch

from monai_mine.flows import check_ddf
from monai_mine.metrics._checks import LabelsLike, SpacingLike, as_spacing, check_label_pair, resolve_labels
from monai_mine.metrics.jacobian import jacobian_statistics
from monai_mine.metrics.overlap import dice_per_label, iou_per_label
from monai_mine.metrics.surface import average_surface_distance_per_label, hausdorff_distance_per_label

__all__ = ["registration_metrics", "JACOBIAN_KEYS", "LABEL_METRICS"]

JACOBIAN_KEYS = ("folding_percent", "sdlogj", "min_det", "max_det")
"""Keys from :func:`monai_mine.metrics.jacobian_statistics` reported per pair."""

LABEL_METRICS = ("dice", "iou", "hd95", "asd")
"""Names of the label metrics reported per pair, as a mean over labels and per label (``dice_<label>`` ...); not
data keys (those are in :mod:`monai_mine.keys`)."""


def registration_metrics(
    ddf: torch.Tensor,
    warped_label: torch.Tensor | None = None,
    fixed_label: torch.Tensor | None = None,
    spacing: SpacingLike = (1.0, 1.0, 1.0),
    labels: LabelsLike = None,
) -> list[dict[str, float]]:
    """Metrics of each registered pair of a batch, one flat dict of floats per sample.

    Keys, always: ``folding_percent``, ``sdlogj``, ``min_det``, ``max_det`` (see
    :func:`~monai_mine.metrics.jacobian_statistics`).

    Keys when both label maps are given: ``dice``, ``iou``, ``hd95`` and ``asd`` (HD95 and symmetric ASD in mm),
    each the mean over the labels measurable in that sample (NaN entries skipped; NaN if none is), and per label
    ``dice_<label>``, ``iou_<label>``, ``hd95_<label>``, ``asd_<label>`` (NaN where the label is absent, see
    :func:`~monai_mine.metrics.dice_per_label` and :func:`~monai_mine.metrics.hausdorff_distance_per_label`).

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), displacement in voxels.
        warped_label: moving label map warped by ``ddf`` with nearest-neighbour sampling, integer Tensor in shape
            (B, 1, X, Y, Z); 0 is background.
        fixed_label: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).
        spacing: voxel spacing in mm, 3 floats or per-sample values in shape (B, 3); used by HD95 and ASD.
        labels: labels to score; defaults to the sorted non-zero labels present in either map anywhere in the
            batch, so that every sample has the same per-label keys.

    Returns:
        list of B dicts mapping metric names to floats.

    Raises:
        ValueError: on a ``ddf`` that is not (B, 3, X, Y, Z), label maps that are not (B, 1, X, Y, Z) with the
            batch size and spatial shape of ``ddf``, only one of the two label maps, or a ``spacing`` that is
            neither 3 values nor (B, 3).
    """
    check_ddf(ddf)
    batch = ddf.shape[0]
    spacings = as_spacing(spacing, batch)
    jacobian = jacobian_statistics(ddf)
    results = [{key: float(jacobian[key][b]) for key in JACOBIAN_KEYS} for b in range(batch)]

    if (warped_label is None) != (fixed_label is None):
        raise ValueError("warped_label and fixed_label must be given together (both (B, 1, X, Y, Z)) or not at all.")
    if warped_label is None:
        return results
    warped_label, fixed_label = check_label_pair(warped_label, fixed_label, "warped_label", "fixed_label")
    expected = (batch, 1, *ddf.shape[2:])
    if tuple(warped_label.shape) != expected:
        raise ValueError(
            f"warped_label and fixed_label must have shape {expected} to match ddf {tuple(ddf.shape)}, "
            f"got {tuple(warped_label.shape)}."
        )
    label_list = resolve_labels(labels, warped_label, fixed_label)
    per_label = {
        "dice": dice_per_label(warped_label, fixed_label, label_list),
        "iou": iou_per_label(warped_label, fixed_label, label_list),
        "hd95": hausdorff_distance_per_label(warped_label, fixed_label, spacings, 95.0, label_list),
        "asd": average_surface_distance_per_label(warped_label, fixed_label, spacings, label_list),
    }
    for b, result in enumerate(results):
        for key in LABEL_METRICS:
            values = per_label[key][b].cpu()
            result[key] = float(torch.nanmean(values))  # over the labels with a value; NaN when none has one
            result.update({f"{key}_{label}": float(v) for label, v in zip(label_list, values.tolist())})
    return results
