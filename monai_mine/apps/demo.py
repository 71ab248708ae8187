# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A short demo: register one synthetic pair by optimising an untrained VTN cascade on it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from monai.metrics import compute_dice
from monai.networks.utils import one_hot

from monai_mine.data import synthetic_pair
from monai_mine.flows import jacobian_determinant, warp
from monai_mine.keys import FIXED_LABEL, MOVING_LABEL
from monai_mine.losses import CorrelationCoefficientLoss, DeterminantLoss, OrthogonalityLoss, TotalVariationLoss
from monai_mine.networks import RegistrationCascade, build_vtn
from monai_mine.stages import StageRecord

__all__ = ["DemoResult", "register_synthetic_pair", "vtn_table1_loss", "mean_dice"]

# VTN Table I: similarity weight per dense stage, in order (the affine stage always has weight 1).
_DENSE_SIMILARITY_WEIGHTS = {1: (1.0,), 2: (0.05, 1.0), 3: (0.0, 0.05, 1.0)}


@dataclass
class DemoResult:
    """Dice before and after registration, folding share of the final DDF, and timings."""

    dice_before: float
    dice_after: float
    folding_percent: float
    seconds: float
    steps: int


def vtn_table1_loss(records: list[StageRecord], fixed: torch.Tensor) -> torch.Tensor:
    """VTN's training loss of a cascade's stage records with the Table I weights.

    Correlation coefficient on the affine stage (weight 1) and on the dense stages (0, 0.05, 1 for three stages),
    determinant 0.1 and orthogonality 0.1 on the affine stage, total variation 1 on each dense stage's own flow.
    """
    similarity, tv = CorrelationCoefficientLoss(), TotalVariationLoss()
    orthogonality, determinant = OrthogonalityLoss(), DeterminantLoss()
    dense = [r for r in records if r.kind == "dense"]
    weights = _DENSE_SIMILARITY_WEIGHTS.get(len(dense), (0.0,) * (len(dense) - 1) + (1.0,))
    loss = fixed.new_zeros(())
    for record in records:
        if record.kind == "affine":
            loss = loss + similarity(record.warped, fixed)
            loss = loss + 0.1 * determinant(record.matrix) + 0.1 * orthogonality(record.matrix)
    for record, weight in zip(dense, weights):
        if weight:
            loss = loss + weight * similarity(record.warped, fixed)
        loss = loss + tv(record.flow)
    return loss


def mean_dice(label_a: torch.Tensor, label_b: torch.Tensor, num_classes: int) -> float:
    """Mean Dice over the foreground labels 1..num_classes-1 of two (B, 1, X, Y, Z) label maps."""
    dice = compute_dice(one_hot(label_a, num_classes), one_hot(label_b, num_classes), include_background=False)
    return float(dice.nanmean())


def register_synthetic_pair(
    size: int = 32,
    steps: int = 60,
    learning_rate: float = 1e-3,
    seed: int = 0,
    network: RegistrationCascade | None = None,
) -> tuple[DemoResult, dict[str, torch.Tensor]]:
    """Optimise an untrained cascade on one synthetic pair (instance optimisation) and measure the result.

    Args:
        size: edge of the synthetic volume (divisible by the network's total stride).
        steps: Adam steps on the pair.
        learning_rate: Adam learning rate.
        seed: seed of the pair and of the network's initialisation.
        network: the cascade to optimise; by default a small VTN "ADDD" (8 channels, depth 3).

    Returns:
        the :class:`DemoResult` and the tensors ``fixed``, ``moving``, ``warped``, ``ddf``, ``fixed_label``,
        ``moving_label``, ``warped_label``, each (1, C, X, Y, Z).
    """
    torch.manual_seed(seed)
    pair = synthetic_pair(size=size, seed=seed)
    net = network if network is not None else build_vtn("ADDD", channels=8, depth=3)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    num_classes = int(pair.fixed_label.max()) + 1
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = vtn_table1_loss(net.stages(pair.moving, pair.fixed), pair.fixed)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        ddf = net(torch.cat([pair.moving, pair.fixed], dim=1))
    seconds = time.perf_counter() - start
    warped_label = warp(pair.moving_label, ddf, mode="nearest")
    result = DemoResult(
        dice_before=mean_dice(pair.moving_label, pair.fixed_label, num_classes),
        dice_after=mean_dice(warped_label, pair.fixed_label, num_classes),
        folding_percent=float((jacobian_determinant(ddf) <= 0).float().mean() * 100),
        seconds=seconds,
        steps=steps,
    )
    tensors = {
        "fixed": pair.fixed,
        "moving": pair.moving,
        "warped": warp(pair.moving, ddf),
        "ddf": ddf,
        FIXED_LABEL: pair.fixed_label,
        MOVING_LABEL: pair.moving_label,
        "warped_label": warped_label,
    }
    return result, tensors
