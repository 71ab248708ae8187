# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Data helpers: synthetic pairs, the demo dataset, datalists (also from Learn2Reg tasks) and unpaired pairing.

The loading and checking transforms (``CheckedLoadImaged``, ``Check*d``, ``root_cause``) live in
:mod:`monai_mine.transforms`. Their old names here (``monai_mine.data.<Name>``, which configs and exports of earlier
releases name) are deprecated aliases of the same objects, kept for one release: each use warns with a
``DeprecationWarning``.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names
from monai_mine.data.datalist import is_unpaired, load_registration_datalist, load_unpaired_images
from monai_mine.data.datasets import registration_dataset
from monai_mine.data.demo_dataset import DEMO_FLAVOURS, default_cache_dir, demo_datalist
from monai_mine.data.learn2reg import Learn2RegTask, displacement_name, learn2reg_datalist, read_learn2reg_task
from monai_mine.data.pairing import UnpairedRegistrationDataset, random_pairs
from monai_mine.data.synthetic import SyntheticPair, synthetic_pair

__all__ = [
    "DEMO_FLAVOURS",
    "Learn2RegTask",
    "SyntheticPair",
    "UnpairedRegistrationDataset",
    "default_cache_dir",
    "demo_datalist",
    "displacement_name",
    "is_unpaired",
    "learn2reg_datalist",
    "load_registration_datalist",
    "load_unpaired_images",
    "random_pairs",
    "read_learn2reg_task",
    "registration_dataset",
    "synthetic_pair",
]

MOVED_TO_TRANSFORMS = (
    "CheckFinited",
    "CheckLabelGridd",
    "CheckNonConstantd",
    "CheckNonEmptyLabeld",
    "CheckSameShaped",
    "CheckSpatialDimsd",
    "CheckedLoadImaged",
    "root_cause",
)
"""Names whose home is :mod:`monai_mine.transforms`; ``monai_mine.data.<name>`` is a deprecated alias (since 0.1.0,
removed in 0.2.0)."""

__getattr__ = moved_names(__name__, homes("monai_mine.transforms", MOVED_TO_TRANSFORMS))
