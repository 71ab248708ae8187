# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The contracts between networks and the code that runs them, declared as ``typing.Protocol`` classes.

Networks satisfy these structurally: :class:`~monai_mine.networks.AffineNet`, :class:`~monai_mine.networks.VTNDenseNet`
and :class:`~monai_mine.networks.UNetDeformNet` are registration stages (the first an affine one), and
:class:`~monai_mine.networks.MINECritic` is a joint/marginal critic; none of them inherits from a protocol. The
protocols are runtime-checkable, so ``isinstance`` tells whether a module offers a contract (it checks that the
members exist, not their signatures). See ``docs/design.md`` section 3 for the conventions behind them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["AffineStage", "JointMarginalCritic", "RegistrationStage", "SampledCritic"]


@runtime_checkable
class RegistrationStage(Protocol):
    """A stage of a :class:`~monai_mine.networks.RegistrationCascade`, and the contract of every registration network.

    Attributes:
        total_stride: the product of the network's downsampling strides; inputs must have every spatial size
            divisible by it.
    """

    total_stride: int

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 the (warped) moving image, channel 1 the fixed image.

        Returns:
            the DDF, Tensor in shape (B, 3, X, Y, Z), in voxels: ``warped(x) = moving(x + ddf(x))``.
        """
        ...


@runtime_checkable
class AffineStage(RegistrationStage, Protocol):
    """A registration stage whose transform is affine, ``x -> x + W (x - c) + b`` with ``c = (N - 1) / 2``.

    A cascade composes the parameters of consecutive affine stages exactly instead of resampling their DDFs, and
    training losses (orthogonality, determinant) read ``A = I + W``.
    """

    def predict_affine(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.

        Returns:
            ``W`` in shape (B, 3, 3) and ``b`` in shape (B, 3), in voxels.
        """
        ...


@runtime_checkable
class JointMarginalCritic(Protocol):
    """A MINE critic that scores joint and marginal pairs in one call.

    Any module ``critic(moving, fixed) -> scores (B, 1, X, Y, Z)`` can be the critic of
    :class:`~monai_mine.losses.MINELoss`; one that also offers :meth:`joint_and_marginal` lets the loss share the
    work common to both scorings (for :class:`~monai_mine.networks.MINECritic`, the moving branch runs once).
    """

    def __call__(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Per-voxel scores, Tensor in shape (B, 1, X, Y, Z), of images in shape (B, C, X, Y, Z)."""
        ...

    def joint_and_marginal(
        self, moving: torch.Tensor, fixed: torch.Tensor, fixed_marginal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            moving: Tensor in shape (B, C, X, Y, Z).
            fixed: Tensor in shape (B, C, X, Y, Z).
            fixed_marginal: Tensor in shape (B, C, X, Y, Z), e.g. ``fixed`` with its voxels shuffled.

        Returns:
            the scores of ``(moving, fixed)`` and of ``(moving, fixed_marginal)``, each in shape (B, 1, X, Y, Z),
            equal to two calls of the critic.
        """
        ...


@runtime_checkable
class SampledCritic(Protocol):
    """A MINE critic that scores joint and marginal pairs at sampled voxels only (``MINELoss(samples=...)``)."""

    def joint_and_marginal_at(
        self, moving: torch.Tensor, fixed: torch.Tensor, joint_index: torch.Tensor, marginal_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            moving: Tensor in shape (B, C, X, Y, Z).
            fixed: Tensor in shape (B, C, X, Y, Z).
            joint_index: flat voxel indices, Tensor in shape (B, N): the joint pairs' voxels.
            marginal_index: flat voxel indices, Tensor in shape (B, N): where the marginal pairs' fixed intensities
                come from (their moving side is at ``joint_index``).

        Returns:
            joint and marginal scores, each Tensor in shape (B, 1, N).
        """
        ...
