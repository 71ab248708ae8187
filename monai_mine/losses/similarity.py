# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Correlation-coefficient similarity (VTN eq. 5-7)."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.losses._reduction import check_same_shape, reduce_per_sample

__all__ = ["CorrelationCoefficientLoss"]


class CorrelationCoefficientLoss(_Loss):
    """``1 - r`` with ``r`` the Pearson correlation of two images over all voxels of each sample.

    ``r = cov(I1, I2) / sqrt((var(I1) + eps) (var(I2) + eps))``. The loss is 0 for an image and any positive
    linear rescaling of it, 1 for uncorrelated images and 2 for a negative rescaling.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, eq. 5-7.
    """

    def __init__(self, eps: float = 1e-6, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        """
        Args:
            eps: added to each variance inside the square root.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: the warped moving image, Tensor in shape (B, C, X, Y, Z).
            target: the fixed image, Tensor in shape (B, C, X, Y, Z).

        Raises:
            ValueError: when the shapes differ or are not 5D.
        """
        check_same_shape(pred, target)
        x = pred.flatten(1).float()
        y = target.flatten(1).float()
        x = x - x.mean(dim=1, keepdim=True)
        y = y - y.mean(dim=1, keepdim=True)
        cov = (x * y).mean(dim=1)
        denom = torch.sqrt((x.square().mean(dim=1) + self.eps) * (y.square().mean(dim=1) + self.eps))
        return reduce_per_sample(1.0 - cov / denom, self.reduction)
