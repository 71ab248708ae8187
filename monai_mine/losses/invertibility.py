# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Invertibility (round-trip) loss of a forward and a backward DDF (VTN eq. 12)."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.flows import check_ddf, compose_ddf
from monai_mine.losses._reduction import reduce_per_sample

__all__ = ["InvertibilityLoss"]


class InvertibilityLoss(_Loss):
    """``||f12 * f21||^2 + ||f21 * f12||^2``: both round trips should displace no voxel.

    ``*`` is DDF composition (:func:`monai_mine.flows.compose_ddf`). The squared norm is summed over the three
    displacement components and averaged over the voxels considered. Composition resamples one flow with the
    other, which is unreliable where the flow leaves the volume, so by default only the central region is used:
    the first and last quarter along each axis are dropped (``central_fraction=0.5``), as in the VTN paper.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, eq. 12 and appendix C.
    """

    def __init__(self, central_fraction: float = 0.5, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        """
        Args:
            central_fraction: share of each axis, centred, where the loss is evaluated; 1.0 uses the whole volume.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.

        Raises:
            ValueError: when ``central_fraction`` is not in (0, 1].
        """
        super().__init__(reduction=LossReduction(reduction).value)
        if not 0.0 < central_fraction <= 1.0:
            raise ValueError(f"central_fraction must be in (0, 1], got {central_fraction}.")
        self.central_fraction = central_fraction

    def _central(self, field: torch.Tensor) -> torch.Tensor:
        slices = []
        for size in field.shape[2:]:
            keep = max(1, round(size * self.central_fraction))
            start = (size - keep) // 2
            slices.append(slice(start, start + keep))
        return field[(slice(None), slice(None), *slices)]

    def forward(self, forward_ddf: torch.Tensor, backward_ddf: torch.Tensor) -> torch.Tensor:
        """
        Args:
            forward_ddf: ``f12``, moving -> fixed, Tensor in shape (B, 3, X, Y, Z).
            backward_ddf: ``f21``, fixed -> moving, Tensor in shape (B, 3, X, Y, Z).
        """
        check_ddf(forward_ddf, "forward_ddf")
        check_ddf(backward_ddf, "backward_ddf")
        if forward_ddf.shape != backward_ddf.shape:
            raise ValueError(
                f"forward_ddf {tuple(forward_ddf.shape)} and backward_ddf {tuple(backward_ddf.shape)} "
                "must have the same shape."
            )
        loss = 0.0
        for round_trip in (compose_ddf(forward_ddf, backward_ddf), compose_ddf(backward_ddf, forward_ddf)):
            loss = loss + self._central(round_trip).float().square().sum(1).flatten(1).mean(1)
        return reduce_per_sample(loss, self.reduction)
