# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The per-stage loss terms of a VTN cascade, built from its layout ("ADDD", "AD", "DD", ...) by the paper's rule."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from monai_mine.losses.affine_regularization import DeterminantLoss, OrthogonalityLoss
from monai_mine.losses.objective import AffineTerm, FlowTerm, InvertibilityTerm, LossTerm, SimilarityTerm

__all__ = ["vtn_loss_terms"]


def vtn_loss_terms(
    stages: str,
    similarity: nn.Module,
    smoothness: nn.Module,
    affine_similarity_weight: float = 1.0,
    dense_similarity_weights: Sequence[float] = (0.05, 1.0),
    orthogonality_weight: float = 0.1,
    determinant_weight: float = 0.1,
    smoothness_weight: float = 1.0,
    invertibility: nn.Module | None = None,
    invertibility_weight: float = 1e-3,
) -> list[LossTerm]:
    """The loss terms of a VTN cascade with the layout ``stages``, for :class:`RegistrationObjective`.

    The paper gives the weights of ADDD only (Table I), with the rule behind them: "only the final subnetwork and
    the affine subnetwork need to be trained with similarity loss" (Section V-A1). Its ablations D, DD, DDD, AD and
    ADD (Tables IV and VII) use the same losses without stating weights; this function extends Table I by the rule,
    counting the dense stages from the last one:

    - the affine stage: similarity (``affine_similarity_weight``, 1), orthogonality and determinant (0.1 each),
      named ``cc_affine``, ``orthogonality``, ``determinant``;
    - dense stage ``k`` (counted from 1): total variation of its own flow (``smoothness_weight``, 1), named
      ``tv_dense<k>``, and similarity, named ``cc_dense<k>``, weighted by ``dense_similarity_weights`` counted
      from the last stage: the last one 1, the one before it 0.05 (Table I's dense 2 of 3), earlier ones 0 (still
      computed and logged, as Table I's dense 1);
    - with ``invertibility``: the invertibility term (``invertibility_weight``, 1e-3) on the composed flows of the
      last stage, named ``invertibility`` (VTN-ADDD+inv).

    For ADDD these are exactly Table I's terms; AD gets similarity 1 on its affine and on its dense stage.

    Args:
        stages: the layout, an optional affine stage "A" then dense stages "D" (case-insensitive), as for
            :func:`monai_mine.networks.build_vtn`.
        similarity: the image similarity loss (VTN: :class:`CorrelationCoefficientLoss`), shared by all terms.
        smoothness: the flow regulariser of the dense stages (VTN: :class:`TotalVariationLoss`), shared.
        affine_similarity_weight: weight of the affine stage's similarity.
        dense_similarity_weights: weights of the dense stages' similarity, the last stage's last; dense stages
            before those get 0.
        orthogonality_weight: weight of :class:`OrthogonalityLoss` on the affine stage.
        determinant_weight: weight of :class:`DeterminantLoss` on the affine stage.
        smoothness_weight: weight of ``smoothness`` on every dense stage.
        invertibility: the invertibility loss (:class:`InvertibilityLoss`), or ``None`` to train without it.
        invertibility_weight: its weight.

    Returns:
        the terms, stage by stage (the affine stage's first), then the invertibility term.

    Raises:
        ValueError: when ``stages`` is not an optional "A" followed by "D"s, or is empty.

    Reference:
        Zhao et al., "Unsupervised 3D End-to-End Medical Image Registration with Volume Tweening Network",
        IEEE JBHI 2020, Section V-A1, Table I; ablations in Tables IV and VII.
    """
    layout = stages.upper()
    if not layout or not re.fullmatch("A?D*", layout):
        raise ValueError(
            "stages must be a VTN layout, an optional affine stage 'A' then dense stages 'D' (D, DD, DDD, AD, ADD, "
            f"ADDD, ...), got {stages!r}."
        )
    dense_count = layout.count("D")
    last = list(dense_similarity_weights)[max(len(dense_similarity_weights) - dense_count, 0) :]
    dense_weights = [0.0] * (dense_count - len(last)) + last
    terms: list[LossTerm] = []
    if layout.startswith("A"):
        terms += [
            SimilarityTerm(similarity, affine_similarity_weight, stage=0, name="cc_affine"),
            AffineTerm(OrthogonalityLoss(residual=True), orthogonality_weight, stage=0, name="orthogonality"),
            AffineTerm(DeterminantLoss(residual=True), determinant_weight, stage=0, name="determinant"),
        ]
    first_dense = len(layout) - dense_count
    for index, weight in enumerate(dense_weights, start=1):
        stage = first_dense + index - 1
        terms += [
            SimilarityTerm(similarity, weight, stage=stage, name=f"cc_dense{index}"),
            FlowTerm(smoothness, smoothness_weight, stage=stage, name=f"tv_dense{index}"),
        ]
    if invertibility is not None:
        terms.append(InvertibilityTerm(invertibility, invertibility_weight, stage=-1, name="invertibility"))
    return terms
