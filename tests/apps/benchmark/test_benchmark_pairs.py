# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Benchmark pairs: bounds of the random transform, the ground truth reproduces the pair, seeds, the inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_mine.apps.benchmark.pairs import (
    TRACKS,
    deform_template,
    make_pair,
    pair_seed,
    random_affine,
    smooth_deformation,
)
from monai_mine.flows import compose_ddf, warp


def test_random_affine_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        matrix, translation = random_affine(rng, 8.0, 0.08, 3.0)
        # A = R S: the singular values are the scale factors, and R = A S^-1 is a rotation
        scales = np.sqrt(np.linalg.eigvalsh(matrix.T @ matrix))
        assert scales.min() >= 0.92 - 1e-9 and scales.max() <= 1.08 + 1e-9
        rotation = matrix @ np.linalg.inv(np.diag(np.linalg.norm(matrix, axis=0)))
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
        angle = math.degrees(math.acos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert angle <= 3 * 8.0 + 1e-6  # three rotations of at most 8 degrees each
        assert np.abs(translation).max() <= 3.0


def test_smooth_deformation_bounded_smooth_and_seeded():
    shape = (20, 24, 16)
    field = smooth_deformation(shape, np.random.default_rng(1), 5.0, control_points=4)
    assert field.shape == (3, *shape) and field.dtype == np.float32
    norm = np.linalg.norm(field, axis=0)
    assert norm.max() <= 5.0 + 1e-5 and norm.max() > 1.0
    assert np.abs(np.diff(field, axis=1)).max() < 1.0  # smooth: small voxel-to-voxel changes
    np.testing.assert_array_equal(field, smooth_deformation(shape, np.random.default_rng(1), 5.0, control_points=4))


@pytest.mark.parametrize("track", TRACKS)
def test_pair_ground_truth_reproduces_the_pair(template, pairs, track):
    pair = pairs[track]
    shape = template.t1.shape
    assert pair.fixed.shape == pair.moving.shape == pair.moving_label.shape == shape
    assert pair.displacement.shape == pair.ground_truth.shape == (3, *shape)
    source = template.t1 if track == "mono" else template.t2_like
    # the generating DDF makes the moving image from the template: the warp check
    remade = warp(torch.from_numpy(source)[None, None], torch.from_numpy(pair.displacement)[None])[0, 0]
    np.testing.assert_allclose(remade.numpy(), pair.moving, atol=1e-6)
    # the ground truth registers the pair: it undoes the generating DDF inside the brain
    residual = compose_ddf(torch.from_numpy(pair.displacement)[None], torch.from_numpy(pair.ground_truth)[None])
    assert residual[0].norm(dim=0)[torch.from_numpy(pair.mask)].max() < 0.05
    truth = torch.from_numpy(pair.ground_truth)[None]
    warped_label = warp(torch.from_numpy(pair.moving_label)[None, None], truth, mode="nearest")
    before = (pair.moving_label == pair.fixed_label)[pair.mask].mean()
    after = (warped_label[0, 0].numpy() == pair.fixed_label)[pair.mask].mean()
    assert before < 0.75 and after > 0.9


def test_transform_bounds_and_seeds(template):
    displacement, moving, _ = deform_template(template, "mono", seed=5)
    magnitude = displacement[0].norm(dim=0)
    # affine part: rotations <= 8 deg about each axis and scaling <= 8 % move a voxel at most about
    # (|R S - I| * radius) + translation; plus at most 8 voxels of smooth deformation
    radius = math.sqrt(3) * (template.t1.shape[0] - 1) / 2
    assert magnitude.max() <= (math.radians(24) + 0.08 * 1.08) * radius + math.sqrt(3) * 3 + 8
    torch.testing.assert_close(deform_template(template, "mono", seed=5)[1], moving, atol=0, rtol=0)
    assert not torch.equal(deform_template(template, "mono", seed=6)[1], moving)


def test_pair_seeds_are_disjoint():
    seeds = {
        pair_seed(0, track, split, index)
        for track in TRACKS
        for split in ("test", "training", "validation")
        for index in range(100)
    }
    assert len(seeds) == 2 * 3 * 100
    with pytest.raises(ValueError, match="split must be one of"):
        pair_seed(0, "mono", "train", 0)
    with pytest.raises(ValueError, match="track must be one of"):
        make_pair(None, "ct", 0)
    assert pair_seed(0, "mono", "test", 3) == 3  # the seed of the session's pairs: a test pair
