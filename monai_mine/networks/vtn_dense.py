# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The VTN dense deformable subnetwork: a FlowNet-style encoder-decoder predicting a DDF."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from monai_mine.flows import geometry_dtype
from monai_mine.networks.blocks import LEAKY_RELU, check_pair_input, checkpointed, conv_block, upsample_block

__all__ = ["VTNDenseNet"]


class VTNDenseNet(nn.Module):
    """Dense registration subnetwork of VTN.

    Encoder (channels=16, depth=6): conv1 16 s2 | conv2 32 s2 | conv3 64 s2, conv3_1 64 | conv4 128 s2,
    conv4_1 128 | conv5 256 s2, conv5_1 256 | conv6 512 s2, conv6_1 512; level k has channels * 2^(k-1)
    channels and, from level 3 on, a second stride-1 convolution. Decoder, from the deepest level up: a
    3-channel flow prediction, its transposed-convolution upsampling, a transposed convolution of the features,
    concatenated with the encoder skip ([skip, deconv, flow]: 515, 259, 131, 67, 35 channels at 128^3 input);
    a final transposed convolution gives the full-resolution flow, multiplied by 20 * flow_multiplier.
    About 28 M parameters with the defaults. Inputs need each size divisible by 2^depth.

    Reference:
        Zhao et al., VTN, section IV-B and Figure 5; Dosovitskiy et al., FlowNet, ICCV 2015.
    """

    def __init__(
        self,
        in_channels: int = 2,
        channels: int = 16,
        depth: int = 6,
        flow_multiplier: float = 1.0,
        flow_init_std: float | None = 1e-5,
        act: tuple | str | None = LEAKY_RELU,
        norm: tuple | str | None = None,
        checkpointing: bool = False,
    ) -> None:
        """
        Args:
            in_channels: input channels (moving and fixed concatenated: 2).
            channels: channels of the first level; level k has channels * 2^(k-1).
            depth: number of stride-2 levels (VTN: 6, so 128^3 ends at 2^3); at least 2.
            flow_multiplier: scales the output flow (VTN: 1; recursive cascades use 1 / n_cascades).
            flow_init_std: standard deviation of the final flow layer's initial weights (it has no bias), so that the
                network starts near the identity, as VoxelMorph's flow layer does; ``None`` keeps PyTorch's default
                initialisation (the VTN paper's), under which each untrained stage outputs a random field of 1-2
                voxels on average (times the flow scale of 20).
            act: activation after every convolution but the flow predictions.
            norm: optional normalisation after the encoder convolutions.
            checkpointing: activation checkpointing in training: keep only each encoder level's and each decoder
                step's input and recompute the rest in the backward pass (less memory, same gradients).
        """
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}.")
        widths = [channels * 2**level for level in range(depth)]
        self.encoder = nn.ModuleList()
        channels_in = in_channels
        for level, width in enumerate(widths, start=1):
            layers = [conv_block(channels_in, width, strides=2, act=act, norm=norm)]
            if level >= 3:
                layers.append(conv_block(width, width, act=act, norm=norm))
            self.encoder.append(nn.Sequential(*layers))
            channels_in = width
        self.predict_flow = nn.ModuleList()
        self.upsample_flow = nn.ModuleList()
        self.upsample_features = nn.ModuleList()
        for skip_width in reversed(widths[:-1]):
            self.predict_flow.append(conv_block(channels_in, 3, act=None))
            self.upsample_flow.append(upsample_block(3, 3, act=None))
            self.upsample_features.append(upsample_block(channels_in, skip_width, act=act))
            channels_in = 2 * skip_width + 3
        self.final_flow = upsample_block(channels_in, 3, act=None)
        if flow_init_std is not None:
            for layer in self.final_flow.modules():
                if isinstance(layer, (nn.Conv3d, nn.ConvTranspose3d)):
                    nn.init.normal_(layer.weight, std=flow_init_std)  # the layer has no bias
        self.flow_scale = 20.0 * flow_multiplier
        self.total_stride = 2**depth
        self.checkpointing = checkpointing

    def _decode(self, level: int, features: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """One decoder step: ``[skip, upsampled features, upsampled flow prediction]`` of decoder ``level``."""
        flow = self.upsample_flow[level](self.predict_flow[level](features))
        return torch.cat([skip, self.upsample_features[level](features), flow], dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed.

        Returns:
            the DDF, Tensor in shape (B, 3, X, Y, Z), in voxels.
        """
        check_pair_input(image.shape, self.total_stride, type(self).__name__)
        skips, features = [], image
        for level in self.encoder:
            features = checkpointed(self.checkpointing, level, features)
            skips.append(features)
        for level, skip in enumerate(reversed(skips[:-1])):
            features = checkpointed(self.checkpointing, partial(self._decode, level), features, skip)
        flow = self.final_flow(features)
        return flow.to(geometry_dtype(flow)) * self.flow_scale  # a float32 DDF under autocast too
