# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration losses: MINE, correlation coefficient (global and local), MIND-SSC, affine regularisers, smoothness,
invertibility, end-point error against a known answer (synthetic pairs), and the objective that weighs them per
cascade stage (``RegistrationObjective`` and its terms; ``vtn_loss_terms`` builds a VTN cascade's terms from its
layout).

Dice on warped labels comes from MONAI (``monai.losses.DiceLoss``, through ``LabelTerm``).
"""

from __future__ import annotations

from monai_mine.losses.affine_regularization import DeterminantLoss, OrthogonalityLoss
from monai_mine.losses.displacement import EndPointErrorLoss
from monai_mine.losses.invertibility import InvertibilityLoss
from monai_mine.losses.mind import MINDSSCLoss, mind_ssc
from monai_mine.losses.mine import (
    MINELoss,
    donsker_varadhan_bound,
    logmeanexp,
    sample_voxels,
    shuffle_voxels,
    standardize_intensities,
)
from monai_mine.losses.objective import (
    AffineTerm,
    DisplacementTerm,
    FlowTerm,
    InvertibilityTerm,
    LabelTerm,
    LossTerm,
    RegistrationObjective,
    RegistrationOutputs,
    SimilarityTerm,
)
from monai_mine.losses.similarity import CorrelationCoefficientLoss, LocalCorrelationLoss
from monai_mine.losses.smoothness import TotalVariationLoss
from monai_mine.losses.vtn import vtn_loss_terms

__all__ = [
    "AffineTerm",
    "CorrelationCoefficientLoss",
    "DeterminantLoss",
    "DisplacementTerm",
    "EndPointErrorLoss",
    "FlowTerm",
    "InvertibilityLoss",
    "InvertibilityTerm",
    "LabelTerm",
    "LocalCorrelationLoss",
    "LossTerm",
    "MINDSSCLoss",
    "MINELoss",
    "OrthogonalityLoss",
    "RegistrationObjective",
    "RegistrationOutputs",
    "SimilarityTerm",
    "TotalVariationLoss",
    "donsker_varadhan_bound",
    "logmeanexp",
    "mind_ssc",
    "sample_voxels",
    "shuffle_voxels",
    "standardize_intensities",
    "vtn_loss_terms",
]
