# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Benchmarks: registration accuracy on real-image pairs against ANTs and Elastix, and speed.

The real-image benchmark (``monai-mine benchmark``; needs the ``benchmark`` extra: nilearn, antspyx, itk-elastix,
matplotlib): :mod:`~monai_mine.benchmark.template` (the ICBM152 template from nilearn's package data),
:mod:`~monai_mine.benchmark.pairs` (pairs under a known transform), :mod:`~monai_mine.benchmark.classical` (ANTs and
Elastix as dense DDFs), :mod:`~monai_mine.benchmark.training` (checkpoints trained on benchmark-style pairs),
:mod:`~monai_mine.benchmark.methods`, :mod:`~monai_mine.benchmark.evaluation`, :mod:`~monai_mine.benchmark.report`
and :mod:`~monai_mine.benchmark.runner`.
"""

from __future__ import annotations

from monai_mine.benchmark.classical import ants_syn, elastix_affine_bspline
from monai_mine.benchmark.pairs import TRACKS, BenchmarkPair, make_pair
from monai_mine.benchmark.runner import run_benchmark
from monai_mine.benchmark.template import BrainTemplate, build_template

__all__ = [
    "TRACKS",
    "BenchmarkPair",
    "BrainTemplate",
    "ants_syn",
    "build_template",
    "elastix_affine_bspline",
    "make_pair",
    "run_benchmark",
]
