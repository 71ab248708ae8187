# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Shared helpers of the losses: per-sample reduction and input checks."""

from __future__ import annotations

import torch
from monai.utils import LossReduction


def reduce_per_sample(values: torch.Tensor, reduction: LossReduction | str) -> torch.Tensor:
    """Reduce a per-sample loss of shape (B,) as MONAI's ``reduction`` argument says.

    Returns:
        A scalar for ``"mean"`` and ``"sum"``, the (B,) tensor itself for ``"none"``.
    """
    reduction = LossReduction(reduction)
    if reduction == LossReduction.MEAN:
        return values.mean()
    if reduction == LossReduction.SUM:
        return values.sum()
    return values


def check_same_shape(
    pred: torch.Tensor, target: torch.Tensor, pred_name: str = "pred", target_name: str = "target"
) -> None:
    """Raise ``ValueError`` unless both inputs are batched 3D tensors ``(B, C, X, Y, Z)`` of one shape."""
    for name, tensor in ((pred_name, pred), (target_name, target)):
        if tensor.ndim != 5:
            raise ValueError(f"{name} must have shape (B, C, X, Y, Z), got {tuple(tensor.shape)}.")
    if pred.shape != target.shape:
        raise ValueError(
            f"{pred_name} {tuple(pred.shape)} and {target_name} {tuple(target.shape)} must have the same shape."
        )
