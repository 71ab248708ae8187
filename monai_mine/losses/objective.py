# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A registration objective: named, weighted loss terms, each reading one stage of a cascade's output.

A bundle config lists the terms of its paper's loss, e.g. VTN-ADDD (Table I)::

    RegistrationObjective([
        SimilarityTerm(CorrelationCoefficientLoss(), weight=1.0, stage=0, name="cc_affine"),
        AffineTerm(OrthogonalityLoss(), weight=0.1, stage=0, name="orthogonality"),
        ...
    ])

and MIRegNet: ``SimilarityTerm(MINELoss(), 1.0)`` + ``FlowTerm(TotalVariationLoss(), 0.01)``. The VTN bundles build
theirs from the cascade layout with :func:`monai_mine.losses.vtn_loss_terms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import one_hot

from monai_mine.flows import warp
from monai_mine.stages import StageRecord

__all__ = [
    "AffineTerm",
    "DisplacementTerm",
    "FlowTerm",
    "InvertibilityTerm",
    "LabelTerm",
    "LossTerm",
    "RegistrationObjective",
    "RegistrationOutputs",
    "SimilarityTerm",
]


@dataclass
class RegistrationOutputs:
    """What one training step produced for a batch of pairs; the input of every :class:`LossTerm`.

    Attributes:
        moving: Tensor in shape (B, 1, X, Y, Z).
        fixed: Tensor in shape (B, 1, X, Y, Z).
        records: the cascade's stage records, moving -> fixed.
        moving_label: integer label map (B, 1, X, Y, Z), or ``None``.
        fixed_label: integer label map (B, 1, X, Y, Z), or ``None``.
        reverse_records: the stage records of the reverse pass (fixed -> moving), or ``None``.
        target_ddf: the pairs' known answer (B, 3, X, Y, Z) in voxels, or ``None``.
    """

    moving: torch.Tensor
    fixed: torch.Tensor
    records: list[StageRecord]
    moving_label: torch.Tensor | None = None
    fixed_label: torch.Tensor | None = None
    reverse_records: list[StageRecord] | None = None
    target_ddf: torch.Tensor | None = None


class LossTerm(nn.Module):
    """One weighted term of a registration objective, applied to one stage's record.

    Subclasses implement :meth:`value`; ``weight`` and the name are applied by :class:`RegistrationObjective`.
    """

    needs_labels = False
    needs_reverse = False

    def __init__(self, loss: nn.Module, weight: float = 1.0, stage: int = -1, name: str | None = None) -> None:
        """
        Args:
            loss: the loss module.
            weight: its weight in the total loss (0 computes and logs it without training on it).
            stage: which stage record it reads; negative counts from the last stage that ran.
            name: the name it is logged under; default ``"<loss class>_stage<stage>"``.
        """
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight of a loss term must be >= 0, got {weight} for {type(loss).__name__}.")
        self.loss = loss
        self.weight = float(weight)
        self.stage = int(stage)
        self.name = name or f"{type(loss).__name__}_stage{stage}"

    def record(self, records: list[StageRecord]) -> StageRecord:
        """The record this term reads, with an error naming the term when the cascade is shorter."""
        if not -len(records) <= self.stage < len(records):
            raise ValueError(f"loss term {self.name!r} reads stage {self.stage}, but only {len(records)} stages ran.")
        return records[self.stage]

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        """The unweighted loss, a scalar tensor."""
        raise NotImplementedError


class SimilarityTerm(LossTerm):
    """``loss(warped moving, fixed)`` at the stage: correlation coefficient, MINE, or any MONAI image loss."""

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        return self.loss(self.record(outputs.records).warped, outputs.fixed)


class FlowTerm(LossTerm):
    """``loss(flow)`` on the stage's own flow, e.g. total variation on a dense stage (VTN eq. 10)."""

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        return self.loss(self.record(outputs.records).flow)


class AffineTerm(LossTerm):
    """``loss(W)`` on an affine stage's matrix, e.g. orthogonality and determinant (VTN eq. 8-9)."""

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        record = self.record(outputs.records)
        if record.matrix is None:
            raise ValueError(f"loss term {self.name!r} needs an affine stage, but stage {self.stage} is {record.kind}.")
        return self.loss(record.matrix)


class LabelTerm(LossTerm):
    """``loss(warped one-hot moving label, one-hot fixed label)``: the Dice term of MIDiceRegNet.

    The moving label is one-hot encoded and warped with trilinear interpolation, so the term is differentiable
    in the flow. Labels are used in training only.
    """

    needs_labels = True

    def __init__(
        self,
        loss: nn.Module,
        weight: float = 1.0,
        stage: int = -1,
        name: str | None = None,
        num_classes: int | None = None,
    ) -> None:
        """
        Args:
            loss: a loss on one-hot maps (B, K, X, Y, Z), e.g. ``monai.losses.DiceLoss(include_background=False)``.
            weight: see :class:`LossTerm`.
            stage: see :class:`LossTerm`.
            name: see :class:`LossTerm`.
            num_classes: classes including background; by default one more than the largest label in the batch.
        """
        super().__init__(loss, weight, stage, name)
        self.num_classes = num_classes

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        if outputs.moving_label is None or outputs.fixed_label is None:
            raise ValueError(f"loss term {self.name!r} needs moving_label and fixed_label in every training pair.")
        moving_label, fixed_label = outputs.moving_label.long(), outputs.fixed_label.long()
        num_classes = self.num_classes or int(max(moving_label.max(), fixed_label.max())) + 1
        moving_onehot = _one_hot(moving_label, num_classes).to(outputs.moving.dtype)
        fixed_onehot = _one_hot(fixed_label, num_classes).to(outputs.moving.dtype)
        warped = warp(moving_onehot, self.record(outputs.records).composed_flow)
        return self.loss(warped, fixed_onehot)


class InvertibilityTerm(LossTerm):
    """``loss(f12, f21)`` on the composed flows of the forward and the reverse pass (VTN eq. 12)."""

    needs_reverse = True

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        if outputs.reverse_records is None:
            raise ValueError(f"loss term {self.name!r} needs the reverse pass (fixed -> moving) in the same step.")
        forward_flow = self.record(outputs.records).composed_flow
        backward_flow = self.record(outputs.reverse_records).composed_flow
        return self.loss(forward_flow, backward_flow)


class DisplacementTerm(LossTerm):
    """``loss(composed flow, known answer)``: a supervised term for synthetic pairs whose answer is known.

    The answer (``target_ddf``, voxels) comes from :class:`~monai_mine.transforms.RandIdentityPaird` followed by
    :class:`~monai_mine.transforms.RandPairDeformd`; with :class:`~monai_mine.losses.EndPointErrorLoss` the term
    is the mean distance between the predicted and the true displacement. Off (absent) in the papers' settings.
    """

    def value(self, outputs: RegistrationOutputs) -> torch.Tensor:
        if outputs.target_ddf is None:
            raise ValueError(
                f"loss term {self.name!r} needs the known answer 'target_ddf' in every training pair: make pairs "
                "with RandIdentityPaird(prob=1, target_key='target_ddf') followed by RandPairDeformd."
            )
        return self.loss(self.record(outputs.records).composed_flow, outputs.target_ddf)


def _one_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, 1, X, Y, Z) integer labels -> (B, K, X, Y, Z) one-hot."""
    return one_hot(label[:, 0], num_classes).movedim(-1, 1)


class RegistrationObjective(nn.Module):
    """The weighted sum of named loss terms. Its parameters (e.g. a MINE critic) train with the network.

    Calling it returns ``(total, values)``: the total loss (scalar tensor) and each term's unweighted value by
    name (detached scalar tensors, for logging).
    """

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        """
        Args:
            terms: the loss terms; names must be unique.

        Raises:
            ValueError: without terms, or with a repeated name.
        """
        super().__init__()
        if not terms:
            raise ValueError("RegistrationObjective needs at least one loss term, got none.")
        names = [term.name for term in terms]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"loss term names must be unique, repeated: {repeated}.")
        self.terms = nn.ModuleList(terms)

    @property
    def needs_reverse(self) -> bool:
        """Whether a term needs the reverse pass (fixed -> moving)."""
        return any(term.needs_reverse for term in self.terms)

    @property
    def needs_labels(self) -> bool:
        """Whether a term needs label maps of both images."""
        return any(term.needs_labels for term in self.terms)

    def forward(self, outputs: RegistrationOutputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = {term.name: term.value(outputs) for term in self.terms}
        total = sum(term.weight * values[term.name].float() for term in self.terms)
        return total, {name: value.detach() for name, value in values.items()}
