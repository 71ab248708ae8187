# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Data helpers: synthetic registration pairs, the embedded demo dataset and NIfTI output."""

from __future__ import annotations

from monai_mine.data.demo_dataset import DEMO_FLAVOURS, default_cache_dir, demo_datalist
from monai_mine.data.nifti import save_nifti
from monai_mine.data.synthetic import SyntheticPair, synthetic_pair

__all__ = [
    "DEMO_FLAVOURS",
    "SyntheticPair",
    "default_cache_dir",
    "demo_datalist",
    "save_nifti",
    "synthetic_pair",
]
