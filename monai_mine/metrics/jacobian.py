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

__all__ = ["jacobian_statistics", "JACOBIAN_EPS"]

JACOBIAN_EPS = 1e-9
"""Determinants (or ``det + 3`` for the Learn2Reg variant) are clipped to this value before the log."""


def _masked_std(values: torch.Tensor, weights: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Population standard deviation (ddof 0) of ``values`` (B, N) over the voxels where ``weights`` is 1.

    Values are first shifted by one of the kept values of each sample, so that a constant field gives exactly 0.
    """
    reference = values.gather(1, weights.argmax(dim=1, keepdim=True))  # first kept voxel of each sample
    shifted = torch.where(weights > 0, values - reference, torch.zeros_like(values))  # ignore values outside
    mean = (shifted * weights).sum(dim=1, keepdim=True) / count[:, None]
    variance = ((shifted - mean).square() * weights).sum(dim=1) / count
    return variance.sqrt()


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
    det = jacobian_determinant(ddf).flatten(1)  # (B, N)
    keep = as_mask(mask, (ddf.shape[0], 1, *ddf.shape[2:]))
    weights = torch.ones_like(det) if keep is None else keep.flatten(1).to(det.dtype)
    count = weights.sum(dim=1)  # 0 for an empty mask: every statistic below becomes NaN
    inside = weights > 0
    nan = torch.full_like(count, float("nan"))

    folding = 100.0 * ((det <= 0) & inside).sum(dim=1).to(det.dtype) / count
    log_det = torch.log(det.clamp_min(JACOBIAN_EPS))
    log_det_l2r = torch.log((det + 3.0).clamp_min(JACOBIAN_EPS))
    min_det = torch.where(inside, det, torch.full_like(det, float("inf"))).amin(dim=1)
    max_det = torch.where(inside, det, torch.full_like(det, float("-inf"))).amax(dim=1)
    empty = count == 0
    return {
        "folding_percent": folding,
        "sdlogj": _masked_std(log_det, weights, count),
        "sdlogj_l2r": _masked_std(log_det_l2r, weights, count),
        "min_det": torch.where(empty, nan, min_det),
        "max_det": torch.where(empty, nan, max_det),
    }
