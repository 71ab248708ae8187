# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Data helpers: synthetic pairs, the demo dataset, datalists (also from Learn2Reg tasks) and unpaired pairing.

The checking transforms (``CheckedLoadImaged``, ``Check*d``, ``root_cause``) live in :mod:`monai_mine.transforms`;
they are re-exported here because bundle configs name them ``monai_mine.data.<Name>``.
"""

from __future__ import annotations

from monai_mine.data.datalist import is_unpaired, load_registration_datalist, load_unpaired_images
from monai_mine.data.datasets import registration_dataset
from monai_mine.data.demo_dataset import DEMO_FLAVOURS, default_cache_dir, demo_datalist
from monai_mine.data.learn2reg import Learn2RegTask, displacement_name, learn2reg_datalist, read_learn2reg_task
from monai_mine.data.pairing import UnpairedRegistrationDataset, random_pairs
from monai_mine.data.synthetic import SyntheticPair, synthetic_pair
from monai_mine.transforms import (
    CheckedLoadImaged,
    CheckFinited,
    CheckLabelGridd,
    CheckNonConstantd,
    CheckNonEmptyLabeld,
    CheckSameShaped,
    CheckSpatialDimsd,
    root_cause,
)

__all__ = [
    "CheckFinited",
    "CheckLabelGridd",
    "CheckNonConstantd",
    "CheckNonEmptyLabeld",
    "CheckSameShaped",
    "CheckSpatialDimsd",
    "CheckedLoadImaged",
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
    "root_cause",
    "synthetic_pair",
]
