# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Held-out contrasts: benchmark pairs whose moving image has an intensity mapping no training run has seen.

The multimodal track's moving image is the template's T2-like rendering (CSF bright, GM mid, WM dark, built from
tissue probabilities); the MI bundles train on that pairing. A held-out contrast renders the moving image from
the T1 template through another mapping, inside the brain mask (the background stays 0):

- ``power_inverse``: ``1 - T1^3``, a monotone decreasing power law (CSF 0.94, GM 0.73, WM 0.42 at the tissue
  means), curved where the T2-like rendering is a mixture of tissue values;
- ``non_monotone``: a piecewise-linear map through the T1 tissue means that makes grey matter the brightest
  tissue, white matter mid and CSF dark (CSF 0.30, GM 0.90, WM 0.50): no monotone function of T1 or of the T2-like
  image gives it.

Each held-out pair has exactly the geometry of the multimodal test pair with the same seed
(:func:`~monai_mine.apps.benchmark.pairs.make_pair`): only the moving intensities differ, so the scores compare
contrasts, not deformations.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from monai_mine.apps.benchmark.pairs import BenchmarkPair, make_pair
from monai_mine.apps.template import BrainTemplate
from monai_mine.flows import warp

__all__ = ["HELD_OUT_CONTRASTS", "held_out_contrast", "make_contrast_pair"]

HELD_OUT_CONTRASTS = ("power_inverse", "non_monotone")
"""The held-out moving-image contrasts."""

_NON_MONOTONE_KNOTS = (
    (0.0, 0.2, 0.39, 0.65, 0.84, 1.0),  # T1: background, dark CSF edge, CSF, GM, WM tissue means, brightest
    (0.0, 0.15, 0.30, 0.90, 0.50, 0.20),
)


def held_out_contrast(template: BrainTemplate, kind: str) -> np.ndarray:
    """The template rendered in a held-out contrast: float32 (X, Y, Z) in [0, 1], 0 outside the brain mask.

    Raises:
        ValueError: on an unknown kind.
    """
    if kind not in HELD_OUT_CONTRASTS:
        raise ValueError(f"held-out contrast must be one of {HELD_OUT_CONTRASTS}, got {kind!r}.")
    t1 = np.clip(template.t1.astype(np.float64), 0.0, 1.0)
    if kind == "power_inverse":
        rendered = 1.0 - t1**3
    else:
        rendered = np.interp(t1, *_NON_MONOTONE_KNOTS)
    return (rendered * template.mask).astype(np.float32)


def make_contrast_pair(template: BrainTemplate, kind: str, seed: int) -> BenchmarkPair:
    """The multimodal benchmark pair of ``seed`` with its moving image rendered in a held-out contrast.

    Args:
        template: the benchmark's template.
        kind: one of :data:`HELD_OUT_CONTRASTS`.
        seed: the pair's seed (e.g. :func:`~monai_mine.apps.benchmark.pairs.pair_seed` of the multimodal test split).

    Returns:
        the :class:`~monai_mine.apps.benchmark.pairs.BenchmarkPair` with ``track`` set to ``kind``.
    """
    source = torch.from_numpy(held_out_contrast(template, kind))[None, None]
    pair = make_pair(template, "multimodal", seed)
    moving = warp(source, torch.from_numpy(pair.displacement)[None])[0, 0].numpy()
    return dataclasses.replace(pair, track=kind, moving=moving)
