# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The two-entrance MINE critic T(M, F)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_mine.networks.blocks import LEAKY_RELU, conv_block

__all__ = ["MINECritic"]


def _gather_voxels(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``flat`` (B, C, V) at the voxels ``index`` (B, N): Tensor in shape (B, C, N)."""
    return flat.gather(2, index[:, None].expand(-1, flat.shape[1], -1))


def _convolve_at(block: nn.Module, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A stride-1 "same" convolution block (MONAI ``Convolution``: conv, then its activation) evaluated only at the
    voxels ``index`` (B, N) of ``features`` (B, C, X, Y, Z): the zero-padded ``k``^3 neighbourhood of each voxel is
    gathered and multiplied by the kernel, as the convolution does there. Returns Tensor in shape (B, C_out, N)."""
    conv = block.conv
    kernel = conv.kernel_size[0]
    half = kernel // 2
    padded = torch.nn.functional.pad(features, (half,) * 6)
    sizes = padded.shape[2:]
    x, rest = index // (features.shape[3] * features.shape[4]), index % (features.shape[3] * features.shape[4])
    y, z = rest // features.shape[4], rest % features.shape[4]
    corner = (x * sizes[1] + y) * sizes[2] + z  # the neighbourhood's first voxel in the padded volume
    steps = torch.arange(kernel, device=index.device)
    offsets = ((steps[:, None, None] * sizes[1] + steps[None, :, None]) * sizes[2] + steps[None, None, :]).flatten()
    neighbours = (corner[:, None, :] + offsets[None, :, None]).flatten(1)  # (B, k^3 N), kernel order as conv weight
    gathered = _gather_voxels(padded.flatten(2), neighbours)  # (B, C, k^3 N)
    gathered = gathered.view(len(features), -1, index.shape[1])  # (B, C k^3, N)
    out = torch.einsum("oi,bin->bon", conv.weight.flatten(1), gathered)
    if conv.bias is not None:
        out = out + conv.bias[None, :, None]
    return block.adn(out) if hasattr(block, "adn") else out


class MINECritic(nn.Module):
    """Per-voxel statistics network ``T(M, F)`` of MINE with one entrance branch per image.

    Each branch is a stack of stride-1 convolutions; the two feature maps are concatenated and a head of
    1x1x1 convolutions maps them to one score per voxel, so every voxel is one sample of the joint (or, with a
    voxel-shuffled fixed image, the marginal) distribution.

    Only the moving branch sees a neighbourhood (``kernel_size``); the fixed branch and the head are per-voxel.
    This keeps the Donsker-Varadhan value a true lower bound of the mutual information between the moving
    image's neighbourhood and the fixed intensity: shuffling the fixed voxels preserves the fixed image's
    per-voxel distribution exactly, whereas a critic that looked at fixed neighbourhoods could tell a smooth
    fixed image from its shuffled copy without the moving image (measured: a bound of 6 nats for a constant
    moving image after 50 steps). With ``kernel_size=1`` the critic is the classic per-voxel MINE network of the
    two intensities.

    Reference:
        Huang et al., MIRegNet, section 2 ("a well-designed two-entrance CNN"); Belghazi et al., MINE, ICML 2018.
    """

    def __init__(
        self,
        in_channels: int = 1,
        branch_channels: Sequence[int] = (8, 16),
        head_channels: Sequence[int] = (32,),
        kernel_size: int = 3,
        act: tuple | str | None = LEAKY_RELU,
        norm: tuple | str | None = None,
    ) -> None:
        """
        Args:
            in_channels: channels of each of the two images.
            branch_channels: output channels of the convolutions of each entrance branch.
            head_channels: output channels of the head's hidden 1x1x1 convolutions; a 1x1x1 convolution to one
                score follows them.
            kernel_size: kernel size of the moving branch's convolutions (the fixed branch and head use 1).
            act: activation after each hidden convolution (MONAI name or (name, args)).
            norm: optional normalisation after each hidden convolution.
        """
        super().__init__()
        if not branch_channels:
            raise ValueError("branch_channels must name at least one convolution, got an empty sequence.")

        def stack(channels_in: int, channels: Sequence[int], kernel: int) -> nn.Sequential:
            layers = []
            for channels_out in channels:
                layers.append(conv_block(channels_in, channels_out, kernel_size=kernel, act=act, norm=norm))
                channels_in = channels_out
            return nn.Sequential(*layers)

        self.in_channels = in_channels
        self.moving_branch = stack(in_channels, branch_channels, kernel_size)
        self.fixed_branch = stack(in_channels, branch_channels, 1)
        head_in = 2 * branch_channels[-1]
        self.head = stack(head_in, head_channels, 1)
        self.score = conv_block(head_channels[-1] if head_channels else head_in, 1, kernel_size=1, act=None)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """
        Args:
            moving: Tensor in shape (B, in_channels, X, Y, Z).
            fixed: Tensor in shape (B, in_channels, X, Y, Z).

        Returns:
            scores, Tensor in shape (B, 1, X, Y, Z).
        """
        self._check_inputs(moving=moving, fixed=fixed)
        return self._head_scores(self.moving_branch(moving), self.fixed_branch(fixed))

    def joint_and_marginal(
        self, moving: torch.Tensor, fixed: torch.Tensor, fixed_marginal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the joint pairs ``(moving, fixed)`` and the marginal pairs ``(moving, fixed_marginal)``.

        Equal to ``(self(moving, fixed), self(moving, fixed_marginal))``, but the moving branch (the only one
        with a neighbourhood, hence most of the critic's cost) runs once for both.

        Args:
            moving: Tensor in shape (B, in_channels, X, Y, Z).
            fixed: Tensor in shape (B, in_channels, X, Y, Z).
            fixed_marginal: Tensor in shape (B, in_channels, X, Y, Z), e.g. ``fixed`` with shuffled voxels.

        Returns:
            joint scores and marginal scores, each Tensor in shape (B, 1, X, Y, Z).
        """
        self._check_inputs(moving=moving, fixed=fixed, fixed_marginal=fixed_marginal)
        moving_features = self.moving_branch(moving)
        fixed_features = self.fixed_branch(torch.cat([fixed, fixed_marginal]))
        scores = self._head_scores(moving_features.repeat(2, 1, 1, 1, 1), fixed_features)
        return scores.chunk(2)

    def joint_and_marginal_at(
        self, moving: torch.Tensor, fixed: torch.Tensor, joint_index: torch.Tensor, marginal_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of joint and marginal pairs at sampled voxels only: the critic's minibatch of samples.

        The joint pairs are ``(moving, fixed)`` at the voxels ``joint_index``; the marginal pairs take the moving
        side at the same voxels and the fixed intensity at the voxels ``marginal_index`` (drawn independently,
        they sample the product of the marginals as a voxel shuffle does). Equal to the scores of
        :meth:`joint_and_marginal` at those voxels (with ``fixed_marginal[joint_index] = fixed[marginal_index]``),
        but the moving branch's last convolution, the fixed branch and the head run only there, which is most of
        the critic's work: the earlier moving-branch layers run on the whole volume (the last one needs their
        neighbourhoods), the last one on the gathered ``kernel_size``^3 neighbourhoods.

        Args:
            moving: Tensor in shape (B, in_channels, X, Y, Z).
            fixed: Tensor in shape (B, in_channels, X, Y, Z).
            joint_index: flat voxel indices (into X * Y * Z), Tensor in shape (B, N), int64.
            marginal_index: flat voxel indices of the marginal pairs' fixed intensities, Tensor in shape (B, N).

        Returns:
            joint scores and marginal scores, each Tensor in shape (B, 1, N).

        Raises:
            ValueError: on mismatched shapes or indices, or a critic with normalisation (whose statistics need every
                voxel).
        """
        self._check_inputs(moving=moving, fixed=fixed)
        if joint_index.shape != marginal_index.shape or joint_index.ndim != 2 or joint_index.shape[0] != len(moving):
            raise ValueError(
                f"joint_index {tuple(joint_index.shape)} and marginal_index {tuple(marginal_index.shape)} must both "
                f"be (B, N) with B = {len(moving)}."
            )
        if any(isinstance(module, nn.modules.batchnorm._NormBase) for module in self.modules()):
            raise ValueError("a MINECritic with normalisation scores every voxel; sampled scoring needs norm=None.")
        features = moving
        for layer in self.moving_branch[:-1]:
            features = layer(features)
        moving_features = _convolve_at(self.moving_branch[-1], features, joint_index)  # (B, C, N)
        fixed_flat = fixed.flatten(2)
        fixed_samples = torch.cat(
            [_gather_voxels(fixed_flat, joint_index), _gather_voxels(fixed_flat, marginal_index)]
        )  # (2B, in_channels, N)
        fixed_features = self.fixed_branch(fixed_samples[..., None, None])
        scores = self._head_scores(moving_features[..., None, None].repeat(2, 1, 1, 1, 1), fixed_features)
        joint, marginal = scores[..., 0, 0].chunk(2)
        return joint, marginal

    def _head_scores(self, moving_features: torch.Tensor, fixed_features: torch.Tensor) -> torch.Tensor:
        return self.score(self.head(torch.cat([moving_features, fixed_features], dim=1)))

    def _check_inputs(self, **images: torch.Tensor) -> None:
        for name, image in images.items():
            if image.ndim != 5 or image.shape[1] != self.in_channels:
                raise ValueError(
                    f"MINECritic expects {name} of shape (B, {self.in_channels}, X, Y, Z), got {tuple(image.shape)}."
                )
        moving = images["moving"]
        for name, image in images.items():
            if image.shape != moving.shape:
                raise ValueError(
                    f"MINECritic's {name} {tuple(image.shape)} and moving {tuple(moving.shape)} differ in shape."
                )
