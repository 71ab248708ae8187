# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The score that selects the best model in validation: mean label Dice, or image similarity without labels."""

from __future__ import annotations

import torch
from ignite.metrics import Metric
from torch import nn

from monai_mine.keys import FIXED_LABEL
from monai_mine.metrics import dice_per_label

__all__ = ["ValidationScore"]


class ValidationScore(Metric):
    """Mean Dice of the warped moving labels against the fixed labels over validation pairs (higher is better),
    as the MIRegNet paper restores its best validation model; where a pair has no labels, minus an image
    similarity loss of the warped moving image and the fixed one (e.g. ``monai.losses.GlobalMutualInformationLoss``
    for multimodal pairs). Dice is reported only when every pair has labels, so scores are never mixed.

    Reads the :class:`~monai_mine.engines.RegistrationEvaluator`'s decollated output.
    """

    def __init__(self, similarity: nn.Module | None = None, output_transform=lambda output: output, device="cpu"):
        """
        Args:
            similarity: loss on ``(warped (1, 1, X, Y, Z), fixed (1, 1, X, Y, Z))`` for unlabelled pairs; lower is
                better. Required when a validation pair has no labels.
            output_transform: maps the engine output to the list of per-pair dicts.
            device: Ignite metric device.
        """
        self.similarity = similarity
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._dice: list[float] = []
        self._similarity: list[float] = []
        self._unlabelled = 0

    def update(self, output) -> None:
        for item in output if isinstance(output, (list, tuple)) else [output]:
            if "warped_label" in item and FIXED_LABEL in item:
                dice = dice_per_label(item["warped_label"][None].round().long(), item[FIXED_LABEL][None].round().long())
                self._dice.append(float(torch.nanmean(dice)))
            else:
                self._unlabelled += 1
            if self.similarity is not None:
                with torch.no_grad():
                    value = self.similarity(torch.as_tensor(item["warped"])[None], torch.as_tensor(item["fixed"])[None])
                self._similarity.append(-float(value))

    def compute(self) -> float:
        if not self._dice and not self._unlabelled:
            raise ValueError("ValidationScore received no validation pairs.")
        if self._unlabelled == 0:
            return sum(self._dice) / len(self._dice)
        if self.similarity is None:
            raise ValueError(
                f"{self._unlabelled} validation pairs have no labels: give ValidationScore a similarity loss (e.g. "
                "monai.losses.GlobalMutualInformationLoss) or add moving_label/fixed_label to the validation list."
            )
        return sum(self._similarity) / len(self._similarity)
