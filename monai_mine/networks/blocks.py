# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Convolution blocks and input checks shared by the registration networks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import torch
from monai.networks.blocks import Convolution
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "LEAKY_RELU",
    "conv_block",
    "upsample_block",
    "check_pair_input",
    "check_instance_norm_input",
    "checkpointed",
]

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


def check_instance_norm_input(shape: Sequence[int], total_stride: int, network: str, norm: tuple | str | None) -> None:
    """Raise ``ValueError`` when instance normalisation would see a single voxel at the network's deepest level.

    PyTorch then fails in training with "Expected more than 1 spatial element when training", which names neither the
    network nor the size it needs. Call it in training only (in evaluation a single voxel normalises to zero).

    Args:
        shape: the input's shape (B, C, X, Y, Z).
        total_stride: the network's total downsampling factor.
        network: the network's name, for the message.
        norm: the network's normalisation argument; only instance normalisation is checked.
    """
    if norm is None or "instance" not in str(norm).lower() or torch.jit.is_tracing():
        return
    spatial = tuple(shape)[2:]
    if prod(size // total_stride for size in spatial) <= 1:
        raise ValueError(
            f"{network} with instance normalisation trains on inputs of at least {2 * total_stride} voxels along some "
            f"axis (more than one voxel at its deepest level, total stride {total_stride}), got spatial shape "
            f"{spatial}; use a larger image_size, or smaller strides."
        )


def checkpointed(enabled: bool, function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``function(*inputs)``, with activation checkpointing when ``enabled`` and gradients are being recorded.

    Checkpointing keeps only ``inputs`` for the backward pass and recomputes ``function``'s intermediate activations
    there (non-reentrant ``torch.utils.checkpoint``): less memory for about one more forward pass of compute, and
    the same gradients. Without gradients (inference) or while ``torch.jit.trace`` records, it is a plain call.

    Args:
        enabled: the network's ``checkpointing`` switch.
        function: a module or function of tensors returning a tensor.
        inputs: its tensor arguments.
    """
    if enabled and torch.is_grad_enabled() and not torch.jit.is_tracing():
        return checkpoint(function, *inputs, use_reentrant=False)
    return function(*inputs)
