# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""AffineNet: a strided CNN that regresses an affine transform (VTN affine subnetwork, MIRegNet AffineNet)."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from torch import nn

from monai_mine.flows import affine_to_ddf, full_precision
from monai_mine.networks.blocks import LEAKY_RELU, check_instance_norm_input, check_pair_input, checkpointed, conv_block

__all__ = ["AffineNet", "POOLINGS"]

POOLINGS = ("mean", "moments")


class AffineNet(nn.Module):
    """Strided convolutional encoder, global average pooling and a linear head to W (3x3) and b (3).

    The transform is x -> x + W (x - c) + b with c the grid centre, so A = I + W is the affine matrix.
    The head starts near zero (identity transform). Global average pooling, instead of the original VTN's
    convolution over the whole remaining volume, lets any input size divisible by total_stride work.

    Reference:
        Zhao et al., VTN, section IV-A and eq. 11; Huang et al., MIRegNet, section 2 (STN-style AffineNet).
    """

    def __init__(
        self,
        in_channels: int = 2,
        channels: Sequence[int] = (16, 32, 64, 64, 128, 128, 256, 256),
        strides: Sequence[int] = (2, 2, 2, 1, 2, 1, 2, 1),
        act: tuple | str | None = LEAKY_RELU,
        norm: tuple | str | None = None,
        init_std: float = 1e-3,
        checkpointing: bool = False,
        pooling: str = "mean",
    ) -> None:
        """
        Args:
            in_channels: input channels (moving and fixed concatenated: 2).
            channels: output channels of each encoder convolution (VTN: 16, 32, 64, 64, 128, 128, 256, 256).
            strides: stride of each encoder convolution (VTN: 2, 2, 2, 1, 2, 1, 2, 1; 128^3 ends at 4^3).
            act: activation after each convolution.
            norm: optional normalisation (MIRegNet uses "instance").
            init_std: standard deviation of the head's initial weights (bias starts at 0), small so that the
                initial transform is close to the identity while gradients still reach every layer.
            checkpointing: activation checkpointing in training: keep only each encoder convolution's input and
                recompute the rest in the backward pass (less memory, same gradients).
            pooling: how the last feature map (B, C, x, y, z) becomes the head's input. ``"mean"``: global average
                pooling, (B, C). ``"moments"``: the mean and the first moments ``mean(feature * u_i)`` along each
                axis, with ``u_i`` the centred coordinate in [-1, 1], (B, 4C). A plain mean discards where a
                feature is, which a rotation or a scaling (a displacement that grows with the position) needs;
                measured on the contrast demo pairs with the MINE loss, an AffineNet with ``"mean"`` learned one
                transform for all pairs, one with ``"moments"`` a transform per pair.

        Raises:
            ValueError: on channels and strides of different lengths, or an unknown pooling.
        """
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f"channels and strides must be non-empty and of equal length, got {len(channels)} and {len(strides)}."
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        layers, channels_in = [], in_channels
        for channels_out, stride in zip(channels, strides):
            layers.append(conv_block(channels_in, channels_out, strides=stride, act=act, norm=norm))
            channels_in = channels_out
        self.encoder = nn.Sequential(*layers)
        self.pooling = pooling
        self.head = nn.Linear(channels_in * (4 if pooling == "moments" else 1), 12)
        nn.init.normal_(self.head.weight, std=init_std)
        nn.init.zeros_(self.head.bias)
        self.total_stride = prod(strides)
        self.norm = norm
        self.checkpointing = checkpointing

    def predict_affine(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.

        Returns:
            W in shape (B, 3, 3) and b in shape (B, 3) (voxels).
        """
        check_pair_input(image.shape, self.total_stride, type(self).__name__)
        if self.training:
            check_instance_norm_input(image.shape, self.total_stride, type(self).__name__, self.norm)
        features = image
        for layer in self.encoder:
            features = checkpointed(self.checkpointing, layer, features)
        with full_precision(image.device):  # 12 numbers that move every voxel: kept out of autocast
            params = self.head(self._pool(features.to(self.head.weight.dtype)))
        return params[:, :9].reshape(-1, 3, 3), params[:, 9:]

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, x, y, z) -> (B, C) for ``"mean"`` pooling, (B, 4C) for ``"moments"``."""
        pooled = [features.mean(dim=(2, 3, 4))]
        if self.pooling == "moments":
            ones = torch.ones_like(features[:1, :1])
            for axis in (2, 3, 4):  # tensor ops only, so that a traced network accepts other sizes
                index = ones.cumsum(axis)
                centred = index - index.mean(dim=axis, keepdim=True)
                centred = centred / centred.abs().amax().clamp_min(0.5)  # in [-1, 1]; 0 along a 1-voxel axis
                pooled.append((features * centred).mean(dim=(2, 3, 4)))
        return torch.cat(pooled, dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.

        Returns:
            the affine DDF, Tensor in shape (B, 3, X, Y, Z), in voxels.
        """
        matrix, translation = self.predict_affine(image)
        return affine_to_ddf(matrix, translation, image.shape[2:])
