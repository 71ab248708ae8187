# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration networks: MINE critic, AffineNet, VTN dense subnetwork, U-Net DeformNet, cascade, builders, and the
protocols they satisfy (:mod:`monai_mine.networks.contracts`).

A cascade's per-stage records are :class:`monai_mine.stages.StageRecord`; ``monai_mine.networks.StageRecord`` is a
deprecated alias of it, kept for one release.
"""

from __future__ import annotations

from monai_mine._deprecated import moved_names
from monai_mine.networks.affine_net import AffineNet
from monai_mine.networks.cascade import RegistrationCascade
from monai_mine.networks.contracts import AffineStage, JointMarginalCritic, RegistrationStage, SampledCritic
from monai_mine.networks.mine_critic import MINECritic
from monai_mine.networks.unet_deform import UNetDeformNet
from monai_mine.networks.variants import build_miregnet, build_vtn
from monai_mine.networks.vtn_dense import VTNDenseNet

__all__ = [
    "AffineNet",
    "AffineStage",
    "JointMarginalCritic",
    "SampledCritic",
    "MINECritic",
    "RegistrationCascade",
    "RegistrationStage",
    "UNetDeformNet",
    "VTNDenseNet",
    "build_miregnet",
    "build_vtn",
]

__getattr__ = moved_names(__name__, {"StageRecord": "monai_mine.stages"})
