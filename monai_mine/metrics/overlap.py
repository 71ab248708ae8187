# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Overlap of integer label maps, per label: Dice and IoU (Jaccard).

In registration, ``pred`` is the moving label map warped with nearest-neighbour sampling
(``monai_mine.flows.warp(moving_label, ddf, mode="nearest")``) and ``target`` is the fixed label map.
"""

from __future__ import annotations

import torch

from monai_mine.metrics._checks import LabelsLike, check_label_pair, present_labels, resolve_labels

__all__ = ["dice_per_label", "iou_per_label", "present_labels"]


def _overlap_counts(
    pred: torch.Tensor, target: torch.Tensor, labels: LabelsLike
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample and label: ``|P & T|``, ``|P|`` and ``|T|``, each float64 in shape (B, L)."""
    pred, target = check_label_pair(pred, target)
    label_list = resolve_labels(labels, pred, target)
    batch = pred.shape[0]
    if not label_list:
        empty = torch.zeros(batch, 0, dtype=torch.float64, device=pred.device)
        return empty, empty, empty
    counts = torch.zeros(3, batch, len(label_list), dtype=torch.float64, device=pred.device)
    pred, target = pred.flatten(1), target.flatten(1)
    for index, label in enumerate(label_list):  # one label at a time: memory stays that of one mask
        pred_mask, target_mask = pred == label, target == label
        counts[0, :, index] = (pred_mask & target_mask).sum(dim=1, dtype=torch.float64)
        counts[1, :, index] = pred_mask.sum(dim=1, dtype=torch.float64)
        counts[2, :, index] = target_mask.sum(dim=1, dtype=torch.float64)
    return counts[0], counts[1], counts[2]


def dice_per_label(pred: torch.Tensor, target: torch.Tensor, labels: LabelsLike = None) -> torch.Tensor:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` of each label in each sample.

    Args:
        pred: warped moving label map, integer Tensor in shape (B, 1, X, Y, Z); 0 is background. Floating
            tensors are rounded to the nearest integer.
        target: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).
        labels: the L labels to score, in output order. Defaults to the sorted non-zero labels present in
            ``pred`` or ``target`` anywhere in the batch (``present_labels(pred, target)``).

    Returns:
        float64 Tensor in shape (B, L), values in [0, 1]. A label absent from both ``pred`` and ``target`` of a
        sample has no defined Dice: that entry is NaN, so that ``torch.nanmean(dice, dim=1)`` averages over the
        labels present in each sample. A label present in only one of the two maps scores 0.

    Raises:
        ValueError: when the maps are not (B, 1, X, Y, Z), differ in shape, or ``labels`` is not 1D.
    """
    intersection, pred_size, target_size = _overlap_counts(pred, target, labels)
    return 2.0 * intersection / (pred_size + target_size)  # 0 / 0 = NaN for a label absent from both


def iou_per_label(pred: torch.Tensor, target: torch.Tensor, labels: LabelsLike = None) -> torch.Tensor:
    """Intersection over union (Jaccard index) ``|P & T| / |P | T|`` of each label in each sample.

    Args:
        pred: warped moving label map, integer Tensor in shape (B, 1, X, Y, Z); 0 is background.
        target: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).
        labels: the L labels to score; defaults to ``present_labels(pred, target)``.

    Returns:
        float64 Tensor in shape (B, L), values in [0, 1]; NaN where a label is absent from both maps of a sample
        (as in :func:`dice_per_label`).

    Raises:
        ValueError: when the maps are not (B, 1, X, Y, Z), differ in shape, or ``labels`` is not 1D.
    """
    intersection, pred_size, target_size = _overlap_counts(pred, target, labels)
    return intersection / (pred_size + target_size - intersection)
