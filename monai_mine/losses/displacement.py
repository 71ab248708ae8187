# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""End-point error between a predicted and a known DDF: the supervised term of synthetic training pairs."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.flows import check_ddf
from monai_mine.losses._reduction import check_same_shape, reduce_per_sample

__all__ = ["EndPointErrorLoss"]


class EndPointErrorLoss(_Loss):
    """Mean Euclidean distance between two DDFs, in voxels: per sample ``mean_x |pred(x) - target(x)|``.

    ``eps`` inside the square root keeps the gradient finite where the two fields agree exactly.
    """

    def __init__(self, reduction: LossReduction | str = LossReduction.MEAN, eps: float = 1e-6) -> None:
        """
        Args:
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
            eps: added to the squared distance before the square root, voxels^2.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        self.eps = float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: Tensor in shape (B, 3, X, Y, Z), voxels.
            target: Tensor in shape (B, 3, X, Y, Z), voxels.
        """
        check_ddf(pred, "pred")
        check_same_shape(pred, target, "pred", "target")
        distance = ((pred.float() - target.float()).square().sum(1) + self.eps).sqrt()
        return reduce_per_sample(distance.flatten(1).mean(1), self.reduction)
