# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Regularity of a DDF from the Jacobian determinant of ``x + ddf(x)``: folding and SDlogJ.

The determinant is :func:`monai_mine.flows.jacobian_determinant` (central differences inside the volume,
one-sided on its faces). It does not depend on the voxel spacing: scaling the axes conjugates the Jacobian.
"""

from __future__ import annotations

import torch

from monai_mine.flows import check_ddf, jacobian_determinant
from monai_mine.metrics._checks import as_mask, plain_tensor

__all__ = ["JACOBIAN_EPS", "STATISTICS", "determinant_statistics", "jacobian_statistics"]

STATISTICS = ("folding_percent", "sdlogj", "sdlogj_l2r", "min_det", "max_det")
"""The keys of :func:`jacobian_statistics`, in order."""

JACOBIAN_EPS = 1e-9
"""Determinants (or ``det + 3`` for the Learn2Reg variant) are clipped to this value before the log."""


def _std(values: torch.Tensor) -> torch.Tensor:
    """Population standard deviation (ddof 0) of a 1D Tensor, modified in place: the values are first shifted by the
    first one, so that a constant field gives exactly 0."""
    return values.sub_(values[0].clone()).std(correction=0)


def determinant_statistics(det: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The statistics of :func:`jacobian_statistics` from a determinant map (B, 1, X, Y, Z) computed already.

    Sample by sample, with one temporary the size of a sample's voxels: fit for volumes of 10^8 voxels.

    Raises:
        ValueError: when ``mask`` is not (B, 1, X, Y, Z) with the shape of ``det``.
    """
    keep = as_mask(mask, tuple(det.shape))
    stats = {name: det.new_full((det.shape[0],), float("nan")) for name in STATISTICS}
    for index in range(det.shape[0]):
        values = det[index].flatten() if keep is None else det[index][keep[index]]
        if not values.numel():
            continue  # an empty mask: every statistic NaN
        stats["folding_percent"][index] = 100.0 * (values <= 0).sum().to(det.dtype) / values.numel()
        stats["min_det"][index], stats["max_det"][index] = values.min(), values.max()
        stats["sdlogj"][index] = _std(values.clamp_min(JACOBIAN_EPS).log_())
        stats["sdlogj_l2r"][index] = _std((values + 3.0).clamp_min_(JACOBIAN_EPS).log_())
    return stats


def jacobian_statistics(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-sample statistics of the Jacobian determinant ``det(I + grad ddf)``.

    - ``folding_percent``: ``100 * share of voxels with det <= 0``;
    - ``sdlogj``: standard deviation of ``log(max(det, 1e-9))``;
    - ``sdlogj_l2r``: the Learn2Reg evaluation scripts' variant, standard deviation of ``log(max(det + 3, 1e-9))``
      (they add 3 before the log; it is not the same number as ``sdlogj`` and should be reported under its own
      name);
    - ``min_det`` and ``max_det``.

    Standard deviations are population ones (ddof 0, as ``numpy.std``). All are taken over the voxels of ``mask``
    when given, else over the whole volume.

    Args:
        ddf: Tensor in shape (B, 3, X, Y, Z), displacement in voxels, each spatial size at least 2.
        mask: optional Tensor in shape (B, 1, X, Y, Z); non-zero voxels are kept. A sample whose mask is empty
            gets NaN for every statistic.

    Returns:
        dict of Tensors in shape (B,), in the dtype of ``ddf``, with the keys ``folding_percent``, ``sdlogj``,
        ``sdlogj_l2r``, ``min_det`` and ``max_det``.

    Raises:
        ValueError: when ``ddf`` is not (B, 3, X, Y, Z) or ``mask`` is not (B, 1, X, Y, Z) with the same B, X, Y, Z.
    """
    check_ddf(ddf)
    ddf = plain_tensor(ddf)
    if not ddf.is_floating_point():
        ddf = ddf.float()
    return determinant_statistics(jacobian_determinant(ddf), mask)
