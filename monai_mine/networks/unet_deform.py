# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""DeformNet of MIRegNet: MONAI's U-Net with a flow head that starts near the identity."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from monai.networks.layers import SkipConnection, get_act_layer
from monai.networks.nets import UNet
from torch import nn

from monai_mine.flows import geometry_dtype
from monai_mine.networks.blocks import LEAKY_RELU, check_instance_norm_input, check_pair_input, checkpointed

__all__ = ["UNetDeformNet"]


class UNetDeformNet(nn.Module):
    """MIRegNet's DeformNet: a MONAI UNet with instance normalisation mapping (moving, fixed) to a DDF.

    The MIRegNet paper describes its DeformNet as "a variant of the U-net" with encoding-decoding convolutions,
    skip connections and instance normalisation; MONAI's residual UNet is exactly that, maintained and
    familiar to MONAI users, and keeps MIRegNet distinct from VTN's FlowNet-style dense subnetwork.

    Reference:
        Huang et al., MIRegNet, section 2; Ronneberger et al., U-Net, MICCAI 2015.
    """

    def __init__(
        self,
        in_channels: int = 2,
        channels: Sequence[int] = (16, 32, 64, 128, 128),
        strides: Sequence[int] = (2, 2, 2, 2),
        num_res_units: int = 1,
        act: tuple | str | None = LEAKY_RELU,
        norm: tuple | str | None = "instance",
        flow_scale: float = 1.0,
        flow_init_std: float = 1e-5,
        checkpointing: bool = False,
    ) -> None:
        """
        Args:
            in_channels: input channels (moving and fixed concatenated: 2).
            channels: channels of each U-Net level (MONAI UNet argument).
            strides: strides between levels; len(strides) == len(channels) - 1.
            num_res_units: residual units per level.
            act: activation.
            norm: normalisation (the paper uses instance normalisation).
            flow_scale: multiplies the flow head's output to give the DDF in voxels.
            flow_init_std: standard deviation of the flow head's initial weights (bias zero): the network starts
                near the identity transform, as VoxelMorph's flow layer does, instead of a random field.
            checkpointing: activation checkpointing in training: keep only the input of each U-Net level's down and
                up block and recompute the rest in the backward pass (less memory, same gradients).
        """
        super().__init__()
        self.unet = UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=channels[0],
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
            act=act,
            norm=norm,
        )
        self.activation = get_act_layer(act) if act is not None else nn.Identity()
        self.flow = nn.Conv3d(channels[0], 3, kernel_size=3, padding=1)
        nn.init.normal_(self.flow.weight, std=flow_init_std)
        nn.init.zeros_(self.flow.bias)
        self.flow_scale = flow_scale
        self.total_stride = prod(strides)
        self.norm = norm
        self.checkpointing = checkpointing

    def _run_unet(self, block: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """``block(features)`` for a MONAI UNet level ``Sequential(down, SkipConnection(sublevel), up)``, with each
        down and up block checkpointed separately (checkpointing the nested sublevel as well would recompute the
        deepest levels once per enclosing level)."""
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
            down, skip, up = block
            if skip.mode != "cat":
                raise ValueError(f"checkpointing supports U-Net skip connections that concatenate, got {skip.mode!r}.")
            features = checkpointed(True, down, features)
            inner = self._run_unet(skip.submodule, features)
            return checkpointed(True, up, torch.cat([features, inner], dim=skip.dim))
        return checkpointed(True, block, features)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.

        Returns:
            the DDF, Tensor in shape (B, 3, X, Y, Z), in voxels.
        """
        check_pair_input(image.shape, self.total_stride, type(self).__name__)
        if self.training:
            check_instance_norm_input(image.shape, self.total_stride, type(self).__name__, self.norm)
        if self.checkpointing and torch.is_grad_enabled() and not torch.jit.is_tracing():
            features = self._run_unet(self.unet.model, image)
        else:
            features = self.unet(image)
        flow = self.flow(self.activation(features))
        return flow.to(geometry_dtype(flow)) * self.flow_scale  # a float32 DDF under autocast too
