# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A cascade of registration stages (affine and dense) whose flows are composed."""

from __future__ import annotations

from collections.abc import Sequence
from math import lcm

import torch
from torch import nn

from monai_mine.flows import affine_to_ddf, compose_affine_ddf, compose_affine_params, compose_ddf, warp
from monai_mine.networks.blocks import check_pair_input
from monai_mine.networks.contracts import AffineStage, RegistrationStage
from monai_mine.stages import StageRecord

__all__ = ["RegistrationCascade"]


class RegistrationCascade(nn.Module):
    """Chains registration stages, each registering the moving image warped by all stages before it.

    A stage is a module satisfying :class:`~monai_mine.networks.contracts.RegistrationStage` (it maps
    ``(B, 2, X, Y, Z)`` (warped moving, fixed) to a DDF and exposes an integer ``total_stride``); an **affine**
    stage satisfies :class:`~monai_mine.networks.contracts.AffineStage` too (``predict_affine(image) -> (W, b)``,
    see :class:`AffineNet`). Flows are composed (``g_1 * ... * g_k``, VTN eq. 2-4), exactly and without resampling
    while the flow so far is affine (VTN eq. 19), and the **original** moving image is always resampled with the
    composed flow, never re-warped.

    ``forward(image)`` returns the total DDF (the network contract of ``docs/design.md`` section 3);
    :meth:`stages` returns a :class:`StageRecord` per stage for training.

    Reference:
        Zhao et al., VTN, section III-B and Figure 2.
    """

    def __init__(self, stages: Sequence[nn.Module]) -> None:
        """
        Args:
            stages: the stage modules (each a :class:`~monai_mine.networks.contracts.RegistrationStage`), applied
                in order (e.g. [AffineNet(), VTNDenseNet(), ...] for "AD...").

        Raises:
            ValueError: when no stage is given or a stage is not a RegistrationStage with an integer total_stride.
        """
        super().__init__()
        if not stages:
            raise ValueError("RegistrationCascade needs at least one stage, got none.")
        for index, stage in enumerate(stages):
            if not (isinstance(stage, RegistrationStage) and isinstance(stage.total_stride, int)):
                raise ValueError(
                    f"stage {index} ({type(stage).__name__}) is not a RegistrationStage "
                    "(monai_mine.networks.contracts): it must map (B, 2, X, Y, Z) to a DDF in forward and expose an "
                    "integer total_stride."
                )
        self.subnetworks = nn.ModuleList(stages)
        # checked once here: plain booleans in the forward pass, which tracing and torch.compile read as constants
        self._affine_flags = tuple(self.is_affine(stage) for stage in stages)
        self.total_stride = lcm(*(stage.total_stride for stage in stages))
        self.active_stages: int | None = None

    def set_active_stages(self, count: int | None) -> None:
        """Run only the first ``count`` stages (``None``: all), e.g. while training MIRegNet's AffineNet alone.

        Raises:
            ValueError: when count is not between 1 and the number of stages.
        """
        if count is not None and not 1 <= count <= len(self.subnetworks):
            raise ValueError(f"active stages must be between 1 and {len(self.subnetworks)}, got {count}.")
        self.active_stages = count

    @staticmethod
    def is_affine(stage: nn.Module) -> bool:
        """Whether stage is an :class:`~monai_mine.networks.contracts.AffineStage` (it offers predict_affine)."""
        return isinstance(stage, AffineStage)

    @property
    def stage_kinds(self) -> str:
        """The cascade's layout as letters, e.g. "ADDD" (A affine, D dense)."""
        return "".join("A" if affine else "D" for affine in self._affine_flags)

    def stages(self, moving: torch.Tensor, fixed: torch.Tensor, warp_last: bool = True) -> list[StageRecord]:
        """Run every stage and record its output.

        Args:
            moving: Tensor in shape (B, 1, X, Y, Z).
            fixed: Tensor in shape (B, 1, X, Y, Z).
            warp_last: resample the moving image with the last composed flow too; ``False`` when only the DDF is
                needed (inference), which saves one full-resolution resampling (the last record's ``warped`` is
                then ``None``).

        Returns:
            one :class:`StageRecord` per active stage (all stages unless :meth:`set_active_stages` says otherwise),
            in order; the last ``composed_flow`` is the total DDF.
        """
        if moving.shape != fixed.shape:
            raise ValueError(f"moving {tuple(moving.shape)} and fixed {tuple(fixed.shape)} must have the same shape.")
        pair_shape = (moving.shape[0], moving.shape[1] + fixed.shape[1], *moving.shape[2:])
        check_pair_input(pair_shape, self.total_stride, type(self).__name__)
        shape = moving.shape[2:]
        records: list[StageRecord] = []
        composed: torch.Tensor | None = None
        composed_affine: tuple[torch.Tensor, torch.Tensor] | None = None  # (W, b) while every stage was affine
        warped = moving
        active = self.subnetworks[: self.active_stages]
        for index, stage in enumerate(active):
            image = torch.cat([warped, fixed], dim=1)
            matrix = translation = None
            if self._affine_flags[index]:
                matrix, translation = stage.predict_affine(image)
                flow = affine_to_ddf(matrix, translation, shape)
                if composed is None or composed_affine is not None:
                    composed_affine = (
                        (matrix, translation)
                        if composed_affine is None
                        else compose_affine_params(composed_affine, (matrix, translation))
                    )
                    composed = affine_to_ddf(*composed_affine, shape)
                else:
                    composed = compose_ddf(composed, flow)
            else:
                flow = stage(image)
                if composed is None:
                    composed = flow
                elif composed_affine is not None:
                    composed = compose_affine_ddf(*composed_affine, flow)
                else:
                    composed = compose_ddf(composed, flow)
                composed_affine = None
            warped = warp(moving, composed) if warp_last or index < len(active) - 1 else None
            kind = "affine" if matrix is not None else "dense"
            records.append(StageRecord(kind, flow, composed, warped, matrix, translation))
        return records

    def forward(self, image: torch.Tensor, return_stages: bool = False) -> torch.Tensor | list[StageRecord]:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.
            return_stages: return every :class:`StageRecord` instead of the total DDF (training calls the cascade
                this way so that wrappers such as DistributedDataParallel see a forward pass).

        Returns:
            the total DDF, Tensor in shape (B, 3, X, Y, Z), in voxels; or the stage records.
        """
        check_pair_input(image.shape, self.total_stride, type(self).__name__)
        records = self.stages(image[:, :1], image[:, 1:], warp_last=return_stages)
        return records if return_stages else records[-1].composed_flow
