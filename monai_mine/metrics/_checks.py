# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Shared input checks of the metrics: label maps, label lists, spacings and masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
from monai.utils import convert_to_tensor

LabelsLike = Optional[Union[Sequence[int], torch.Tensor, np.ndarray]]
SpacingLike = Union[Sequence[float], Sequence[Sequence[float]], torch.Tensor, np.ndarray]


def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """``value`` as a plain ``torch.Tensor`` (a ``MetaTensor`` loses its metadata)."""
    return convert_to_tensor(value, track_meta=False)


def as_label_map(label_map: torch.Tensor, name: str) -> torch.Tensor:
    """Check one label map of shape (B, 1, X, Y, Z) and return it as an integer tensor.

    Floating maps (MONAI loads label files as float) are rounded to the nearest integer.
    """
    if not isinstance(label_map, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor label map of shape (B, 1, X, Y, Z), got {type(label_map).__name__}."
        )
    label_map = plain_tensor(label_map)
    if label_map.ndim != 5 or label_map.shape[1] != 1:
        raise ValueError(f"{name} must be a label map of shape (B, 1, X, Y, Z), got {tuple(label_map.shape)}.")
    if label_map.is_floating_point():
        label_map = label_map.round()
    return label_map.long()


def check_label_pair(
    pred: torch.Tensor, target: torch.Tensor, pred_name: str = "pred", target_name: str = "target"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two label maps of one shape (B, 1, X, Y, Z); return both as integer tensors."""
    pred = as_label_map(pred, pred_name)
    target = as_label_map(target, target_name)
    if pred.shape != target.shape:
        raise ValueError(
            f"{pred_name} {tuple(pred.shape)} and {target_name} {tuple(target.shape)} must have the same shape "
            f"(B, 1, X, Y, Z)."
        )
    return pred, target


def present_labels(*maps: torch.Tensor) -> list[int]:
    """Sorted non-zero labels present in any of the label maps (over the whole batch).

    Args:
        maps: integer label maps, Tensors of any shape (typically (B, 1, X, Y, Z)); 0 is background.

    Returns:
        Sorted list of the distinct non-zero labels.
    """
    found: set[int] = set()
    for label_map in maps:
        values = plain_tensor(label_map)
        if values.is_floating_point():
            values = values.round()
        values = values.long()
        if values.device.type == "cpu":  # numpy's unique is much faster than torch's CPU sort on large volumes
            distinct = np.unique(values.numpy()).tolist()
        else:
            distinct = torch.unique(values).tolist()
        found.update(int(v) for v in distinct)
    found.discard(0)
    return sorted(found)


def resolve_labels(labels: LabelsLike, *maps: torch.Tensor) -> list[int]:
    """``labels`` as a list of ints, or the non-zero labels present in ``maps`` when ``labels`` is None."""
    if labels is None:
        return present_labels(*maps)
    values = torch.as_tensor(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be a 1D sequence of L integers, got shape {tuple(values.shape)}.")
    if values.is_floating_point() and not torch.equal(values, values.round()):
        raise ValueError(f"labels must be integers, got {values.tolist()}.")
    return [int(v) for v in values.tolist()]


def as_spacing(spacing: SpacingLike, batch_size: int, name: str = "spacing") -> torch.Tensor:
    """Check a voxel spacing in mm and broadcast it to one row per sample.

    Args:
        spacing: 3 positive floats (one spacing for every sample), or per-sample values of shape (B, 3).
        batch_size: ``B``.
        name: argument name used in error messages.

    Returns:
        Tensor in shape (B, 3), float64 on the CPU.
    """
    if isinstance(spacing, torch.Tensor):
        values = plain_tensor(spacing).detach().cpu().to(torch.float64)
    else:
        try:
            values = torch.as_tensor(np.asarray(spacing, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must be 3 floats (mm per axis) or per-sample values of shape ({batch_size}, 3): {error}"
            ) from None
    if values.ndim == 1 and values.shape[0] == 3:
        values = values.expand(batch_size, 3)
    elif values.ndim != 2 or values.shape != (batch_size, 3):
        raise ValueError(
            f"{name} must be 3 floats (mm per axis) or per-sample values of shape ({batch_size}, 3), "
            f"got shape {tuple(values.shape)}."
        )
    if not bool(torch.all(torch.isfinite(values) & (values > 0))):
        raise ValueError(f"{name} must hold positive finite values in mm, got {values.tolist()}.")
    return values


def as_mask(mask: torch.Tensor | None, shape: torch.Size, name: str = "mask") -> torch.Tensor | None:
    """Check an optional voxel mask of shape (B, 1, X, Y, Z); return it as a boolean tensor (non-zero = inside)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {tuple(shape)}, got {type(mask).__name__}.")
    mask = plain_tensor(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (B, 1, X, Y, Z), got {tuple(mask.shape)}.")
    return mask != 0
