"""Synthetic pairs are deterministic and consistent with their known displacement."""

from __future__ import annotations

import torch

from monai_mine.data import synthetic_pair
from monai_mine.flows import warp


def test_same_seed_same_pair_other_seed_other_pair():
    a, b, c = synthetic_pair(24, seed=3), synthetic_pair(24, seed=3), synthetic_pair(24, seed=4)
    assert torch.equal(a.moving, b.moving) and torch.equal(a.displacement, b.displacement)
    assert not torch.equal(a.moving, c.moving)


def test_moving_is_fixed_warped_by_displacement():
    pair = synthetic_pair(24, num_structures=4, seed=0)
    assert torch.allclose(pair.moving, warp(pair.fixed, pair.displacement))
    assert torch.equal(pair.moving_label, warp(pair.fixed_label, pair.displacement, mode="nearest"))
    assert set(pair.fixed_label.unique().tolist()) == {0, 1, 2, 3, 4}
    assert 0.0 <= float(pair.fixed.min()) and float(pair.fixed.max()) <= 1.0
    assert 0.5 < float(pair.displacement.abs().max()) < 12.0
