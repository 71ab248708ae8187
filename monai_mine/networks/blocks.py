# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Convolution blocks and input checks shared by the registration networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["LEAKY_RELU", "conv_block", "upsample_block", "check_pair_input"]

LEAKY_RELU = ("leakyrelu", {"negative_slope": 0.1})


def conv_block(
    in_channels: int,
    out_channels: int,
    strides: int = 1,
    kernel_size: int = 3,
    act: tuple | str | None = LEAKY_RELU,
    norm: tuple | str | None = None,
) -> nn.Module:
    """3D convolution with "same" padding, bias, then optional normalisation and activation."""
    return Convolution(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        strides=strides,
        kernel_size=kernel_size,
        act=act,
        norm=norm,
        conv_only=act is None and norm is None,
    )


def upsample_block(in_channels: int, out_channels: int, act: tuple | str | None = LEAKY_RELU) -> nn.Module:
    """Transposed 3D convolution, kernel 4, stride 2, no bias: doubles each spatial size."""
    return Convolution(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        strides=2,
        kernel_size=4,
        padding=1,
        output_padding=0,
        act=act,
        norm=None,
        bias=False,
        is_transposed=True,
        conv_only=act is None,
    )


def check_pair_input(shape: Sequence[int], total_stride: int, network: str) -> None:
    """Raise ``ValueError`` unless ``shape`` is (B, 2, X, Y, Z) with each spatial size divisible by the stride.

    Skipped while ``torch.jit.trace`` records: Python checks are not part of a trace, and the traced sizes would
    be frozen into it as constants.

    Args:
        shape: the input's shape, e.g. ``image.shape``.
        total_stride: the network's total downsampling factor.
        network: the network's name, for the message.
    """
    if torch.jit.is_tracing():
        return
    shape = tuple(shape)
    if len(shape) != 5 or shape[1] != 2:
        raise ValueError(
            f"{network} expects image of shape (B, 2, X, Y, Z) (channel 0 moving, channel 1 fixed), got {shape}."
        )
    if any(size % total_stride for size in shape[2:]):
        raise ValueError(
            f"{network} needs each spatial size divisible by its total stride {total_stride}, "
            f"got spatial shape {shape[2:]}; pad or resample the images."
        )
