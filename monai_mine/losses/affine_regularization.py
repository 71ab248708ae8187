# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Regularisation of an affine stage's matrix ``A = I + W`` (VTN eq. 8-9)."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.flows import determinant_3x3
from monai_mine.losses._reduction import reduce_per_sample

__all__ = ["OrthogonalityLoss", "DeterminantLoss"]


def _affine_matrix(matrix: torch.Tensor, residual: bool) -> torch.Tensor:
    if matrix.ndim != 3 or matrix.shape[1:] != (3, 3):
        raise ValueError(f"matrix must have shape (B, 3, 3), got {tuple(matrix.shape)}.")
    matrix = matrix.float()
    return matrix + torch.eye(3, dtype=matrix.dtype, device=matrix.device) if residual else matrix


class OrthogonalityLoss(_Loss):
    """How far ``A`` is from orthogonal: ``sum_i (s_i^2 + s_i^-2) - 6`` over the singular values ``s_i`` of ``A``.

    Computed in closed form, without an SVD: with ``C = A^T A + eps I`` (eigenvalues ``s_i^2 + eps``),
    ``L = tr C + (1 + eps)^2 m2(C) / det C - 6 (1 + eps)``, where ``m2`` is the sum of the principal 2x2 minors
    (so ``m2 / det`` is the sum of the inverse eigenvalues). ``L`` is exactly 0 for every rotation.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, eq. 8 and appendix D.
    """

    def __init__(
        self, residual: bool = True, eps: float = 1e-5, reduction: LossReduction | str = LossReduction.MEAN
    ) -> None:
        """
        Args:
            residual: the input is ``W`` and ``A = I + W`` (the affine network's output); ``False``: the input is ``A``.
            eps: added to the diagonal of ``A^T A`` to keep the inverse finite.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        self.residual = residual
        self.eps = eps

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        """
        Args:
            matrix: ``W`` (or ``A`` when ``residual=False``), Tensor in shape (B, 3, 3).
        """
        a = _affine_matrix(matrix, self.residual)
        c = a.transpose(1, 2) @ a + self.eps * torch.eye(3, dtype=a.dtype, device=a.device)
        trace = c.diagonal(dim1=1, dim2=2).sum(-1)
        minors = (
            c[:, 0, 0] * c[:, 1, 1]
            - c[:, 0, 1] * c[:, 1, 0]
            + c[:, 0, 0] * c[:, 2, 2]
            - c[:, 0, 2] * c[:, 2, 0]
            + c[:, 1, 1] * c[:, 2, 2]
            - c[:, 1, 2] * c[:, 2, 1]
        )
        loss = trace + (1 + self.eps) ** 2 * minors / determinant_3x3(c) - 6 * (1 + self.eps)
        return reduce_per_sample(loss, self.reduction)


class DeterminantLoss(_Loss):
    """``(det A - 1)^2``: penalises reflections and volume change of the affine stage.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, eq. 9.
    """

    def __init__(self, residual: bool = True, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        """
        Args:
            residual: the input is ``W`` and ``A = I + W``; ``False``: the input is ``A``.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        self.residual = residual

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        """
        Args:
            matrix: ``W`` (or ``A`` when ``residual=False``), Tensor in shape (B, 3, 3).
        """
        det = determinant_3x3(_affine_matrix(matrix, self.residual))
        return reduce_per_sample((det - 1.0).square(), self.reduction)
