# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Benchmarks: registration accuracy on real-image pairs against ANTs and Elastix, and speed.

The real-image benchmark (``monai-mine benchmark``; needs the ``benchmark`` extra: nilearn, antspyx, itk-elastix,
matplotlib), on the ICBM152 template of :mod:`monai_mine.apps.template`: :mod:`~monai_mine.apps.benchmark.pairs`
(pairs under a known transform), :mod:`~monai_mine.apps.benchmark.classical` (ANTs and Elastix as dense DDFs),
:mod:`~monai_mine.apps.benchmark.training` (checkpoints trained on benchmark-style pairs),
:mod:`~monai_mine.apps.benchmark.methods`, :mod:`~monai_mine.apps.benchmark.evaluation`,
:mod:`~monai_mine.apps.benchmark.report` and :mod:`~monai_mine.apps.benchmark.runner`.
"""

from __future__ import annotations

from monai_mine.apps.benchmark.classical import ants_syn, elastix_affine_bspline
from monai_mine.apps.benchmark.pairs import TRACKS, BenchmarkPair, make_pair
from monai_mine.apps.benchmark.runner import run_benchmark

__all__ = [
    "TRACKS",
    "BenchmarkPair",
    "ants_syn",
    "elastix_affine_bspline",
    "make_pair",
    "run_benchmark",
]
