# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI dictionary transforms: checks that stop bad input early with a message naming the file, and the random
augmentation of pairs.

:class:`CheckedLoadImaged` (:mod:`~monai_mine.transforms.loading`) loads images as MONAI's ``LoadImaged`` does;
the ``Check*d`` transforms (:mod:`~monai_mine.transforms.checks`) check what was loaded; :func:`root_cause` finds
a check's error inside MONAI's wrappers. This is their one public home: bundle configs name them
``monai_mine.transforms.<Name>`` (``monai_mine.data.<Name>`` is a deprecated alias, kept for one release).
:class:`RandPairDeformd` (:mod:`~monai_mine.transforms.augment`) gives the moving image a new random deformation
at every call and :class:`RandIdentityPaird` now and then makes a pair identical; :class:`RandContrastRemapd`
(:mod:`~monai_mine.transforms.contrast`) gives an image a new random contrast.
"""

from __future__ import annotations

from monai_mine.transforms.augment import RandIdentityPaird, RandPairDeformd
from monai_mine.transforms.checks import (
    CheckFinited,
    CheckLabelGridd,
    CheckNonConstantd,
    CheckNonEmptyLabeld,
    CheckSameShaped,
    CheckSpatialDimsd,
    root_cause,
)
from monai_mine.transforms.contrast import RandContrastRemapd
from monai_mine.transforms.loading import CheckedLoadImaged

__all__ = [
    "CheckFinited",
    "CheckLabelGridd",
    "CheckNonConstantd",
    "CheckNonEmptyLabeld",
    "CheckSameShaped",
    "CheckSpatialDimsd",
    "CheckedLoadImaged",
    "RandContrastRemapd",
    "RandIdentityPaird",
    "RandPairDeformd",
    "root_cause",
]
