# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Total-variation smoothness of a DDF (VTN eq. 10)."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.flows import check_ddf
from monai_mine.losses._reduction import reduce_per_sample

__all__ = ["TotalVariationLoss"]


class TotalVariationLoss(_Loss):
    """Squared forward differences of a DDF along the three axes, normalised by its size.

    Per sample: ``sum_axes sum_voxels,channels (ddf(x + e_axis) - ddf(x))^2 / (2 * 3 * X * Y * Z)``, as the
    authors' VTN code computes it (``tf.nn.l2_loss`` of each axis' differences over the flow's element count),
    so that the Table I weights carry over. A constant field gives 0; the ramp ``ddf_0(x) = a x_0`` gives
    ``a^2 (X - 1) / (6 X)``.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, eq. 10.
    """

    def __init__(self, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        """
        Args:
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
        """
        super().__init__(reduction=LossReduction(reduction).value)

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        """
        Args:
            ddf: Tensor in shape (B, 3, X, Y, Z), in voxels.
        """
        check_ddf(ddf)
        ddf = ddf.float()
        squares = sum(torch.diff(ddf, dim=axis).square().flatten(1).sum(1) for axis in (2, 3, 4))
        return reduce_per_sample(squares / (2 * ddf[0].numel()), self.reduction)
