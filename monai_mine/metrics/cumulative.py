# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration metrics as MONAI ``CumulativeIterationMetric``: call per batch, ``aggregate()`` per epoch.

Like ``monai.metrics.DiceMetric``, each call takes batch-first Tensors or lists of channel-first Tensors, buffers
one value per pair, and ``aggregate()`` reduces the buffer (NaN entries skipped) with MONAI's ``reduction``.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from monai_mine.metrics._checks import LabelsLike
from monai_mine.metrics.jacobian import jacobian_statistics
from monai_mine.metrics.overlap import dice_per_label

__all__ = ["LabelDiceMetric", "JacobianFoldingMetric"]


class _PerPairMetric(CumulativeIterationMetric):
    """Buffers a (B, 1) value per batch; ``aggregate`` reduces it with ``do_metric_reduction``."""

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered per-pair values.

        Args:
            reduction: overrides the constructor's ``reduction``; ``"mean"`` gives the mean over pairs,
                ``"none"`` the (N, 1) buffer itself. NaN values (pairs without a measurable value) are skipped.

        Returns:
            The reduced value, with the count of non-NaN pairs when ``get_not_nans`` is True.

        Raises:
            ValueError: when nothing has been buffered since the last ``reset()``.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"{type(self).__name__} has no buffered values to aggregate; call it on a batch first.")
        value, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (value, not_nans) if self.get_not_nans else value


class LabelDiceMetric(_PerPairMetric):
    """Mean Dice per registered pair over its labels, from integer label maps.

    For each pair, the Dice of every label present in the warped moving map or the fixed map
    (:func:`~monai_mine.metrics.dice_per_label`), averaged over those labels; a pair with no foreground label at
    all gives NaN, which ``aggregate()`` skips.

    Example::

        metric = LabelDiceMetric()
        metric(y_pred=warp(moving_label, ddf, mode="nearest"), y=fixed_label)
        mean_dice = metric.aggregate().item()
    """

    def __init__(
        self,
        labels: LabelsLike = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        """
        Args:
            labels: labels to average over; defaults to the non-zero labels present in either map of each pair.
            reduction: MONAI ``MetricReduction`` applied by ``aggregate()``; ``"mean"`` averages over pairs.
            get_not_nans: whether ``aggregate()`` also returns the number of non-NaN pairs.
        """
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.labels = labels

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            y_pred: warped moving label map, integer Tensor in shape (B, 1, X, Y, Z).
            y: fixed label map, integer Tensor in shape (B, 1, X, Y, Z).

        Returns:
            float64 Tensor in shape (B, 1): mean Dice of each pair.

        Raises:
            ValueError: when ``y`` is missing or the maps are not (B, 1, X, Y, Z) of one shape.
        """
        if y is None:
            raise ValueError("y (the fixed label map, shape (B, 1, X, Y, Z)) is required for LabelDiceMetric.")
        dice = dice_per_label(y_pred, y, self.labels)
        if dice.shape[1] == 0:
            return torch.full((dice.shape[0], 1), float("nan"), dtype=dice.dtype, device=dice.device)
        return torch.nanmean(dice, dim=1, keepdim=True)


class JacobianFoldingMetric(_PerPairMetric):
    """Folding percentage per DDF: ``100 * share of voxels with det(I + grad ddf) <= 0``.

    Example::

        metric = JacobianFoldingMetric()
        metric(y_pred=ddf)  # y is ignored
        mean_folding_percent = metric.aggregate().item()
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            y_pred: DDF, Tensor in shape (B, 3, X, Y, Z), displacement in voxels.
            y: ignored (an engine's label may be passed through).

        Returns:
            Tensor in shape (B, 1): folding percentage of each DDF.

        Raises:
            ValueError: when ``y_pred`` is not (B, 3, X, Y, Z).
        """
        return jacobian_statistics(y_pred)["folding_percent"].unsqueeze(1)
