# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Builders of the two systems: VTN cascades (A/D layouts such as "ADDD") and MIRegNet (AffineNet + DeformNet)."""

from __future__ import annotations

from collections.abc import Sequence

from monai_mine.networks.affine_net import AffineNet
from monai_mine.networks.cascade import RegistrationCascade
from monai_mine.networks.unet_deform import UNetDeformNet
from monai_mine.networks.vtn_dense import VTNDenseNet

__all__ = ["build_vtn", "build_miregnet", "vtn_affine_plan"]


def vtn_affine_plan(channels: int = 16, levels: int = 5) -> tuple[list[int], list[int]]:
    """Channels and strides of the VTN affine encoder: ``levels`` stride-2 convolutions, ``channels * 2^(k-1)``
    wide, each from level 3 on followed by a stride-1 convolution.

    ``vtn_affine_plan(16, 5)`` is the paper's (16, 32, 64, 64, 128, 128, 256, 256) with strides
    (2, 2, 2, 1, 2, 1, 2, 1): 128^3 ends at 4^3, one level above the dense subnetworks' 2^3.
    """
    widths, strides = [], []
    for level in range(1, levels + 1):
        width = channels * 2 ** (level - 1)
        widths.append(width)
        strides.append(2)
        if level >= 3:
            widths.append(width)
            strides.append(1)
    return widths, strides


def build_vtn(
    stages: str = "ADDD",
    channels: int = 16,
    depth: int = 6,
    flow_multiplier: float = 1.0,
    flow_init_std: float | None = 1e-5,
    checkpointing: bool = False,
) -> RegistrationCascade:
    """A VTN cascade from a layout string: "A" an affine subnetwork, "D" a dense one.

    "ADDD" is the paper's main model (VTN-ADDD, and VTN-ADDD+inv with the invertibility loss in training);
    "D", "DD", "AD", "ADD"... are its ablations (Table IV).

    Args:
        stages: layout, letters A and D (case-insensitive).
        channels: first-level channels of the dense subnetworks (VTN: 16); the affine encoder scales with it.
        depth: stride-2 levels of each dense subnetwork (VTN: 6; inputs divisible by 2^depth).
        flow_multiplier: output scale of the dense subnetworks.
        flow_init_std: initial weight scale of each dense subnetwork's final flow layer (``None``: PyTorch's default,
            the paper's); see :class:`~monai_mine.networks.VTNDenseNet`.
        checkpointing: activation checkpointing in every subnetwork while training (less memory, same gradients).

    Raises:
        ValueError: on an empty layout or a letter other than A and D.
    """
    layout = stages.upper()
    if not layout or set(layout) - {"A", "D"}:
        raise ValueError(f"stages must be a non-empty string of 'A' (affine) and 'D' (dense), got {stages!r}.")
    affine_channels, affine_strides = vtn_affine_plan(channels, depth - 1)
    modules = [
        AffineNet(channels=affine_channels, strides=affine_strides, checkpointing=checkpointing)
        if letter == "A"
        else VTNDenseNet(
            channels=channels,
            depth=depth,
            flow_multiplier=flow_multiplier,
            flow_init_std=flow_init_std,
            checkpointing=checkpointing,
        )
        for letter in layout
    ]
    return RegistrationCascade(modules)


def build_miregnet(
    affine_channels: Sequence[int] = (16, 32, 64, 64, 128, 128, 256, 256),
    affine_strides: Sequence[int] = (2, 2, 2, 1, 2, 1, 2, 1),
    deform_channels: Sequence[int] = (16, 32, 64, 128, 128),
    deform_strides: Sequence[int] = (2, 2, 2, 2),
    norm: str = "instance",
    checkpointing: bool = False,
    affine_pooling: str = "mean",
) -> RegistrationCascade:
    """MIRegNet / MIDiceRegNet: an STN-style AffineNet followed by a U-Net DeformNet (the two differ only in loss).

    Args:
        affine_channels: AffineNet encoder channels.
        affine_strides: AffineNet encoder strides.
        deform_channels: U-Net channels per level.
        deform_strides: U-Net strides between levels.
        norm: normalisation in both networks (the paper: instance normalisation).
        checkpointing: activation checkpointing in both networks while training (less memory, same gradients).
        affine_pooling: the AffineNet's pooling, ``"mean"`` or ``"moments"`` (position-aware; see AffineNet).
    """
    return RegistrationCascade(
        [
            AffineNet(
                channels=affine_channels,
                strides=affine_strides,
                norm=norm,
                checkpointing=checkpointing,
                pooling=affine_pooling,
            ),
            UNetDeformNet(channels=deform_channels, strides=deform_strides, norm=norm, checkpointing=checkpointing),
        ]
    )
