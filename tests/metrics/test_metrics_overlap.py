"""Dice and IoU per label of integer label maps: closed forms for shifted cubes, NaN for absent labels."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.metrics import dice_per_label, iou_per_label, present_labels

SIZE = 24


def cube(side: int, start: int = 4, shift: int = 0, axis: int = 0, label: int = 1, size: int = SIZE) -> torch.Tensor:
    """Label map (1, 1, size, size, size) holding a cube of ``side`` voxels, shifted by ``shift`` along ``axis``."""
    label_map = torch.zeros(1, 1, size, size, size, dtype=torch.long)
    index = [slice(start, start + side)] * 3
    index[axis] = slice(start + shift, start + shift + side)
    label_map[(0, 0, *index)] = label
    return label_map


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("side, shift", [(10, 0), (10, 1), (10, 3), (8, 5), (10, 10)])
def test_shifted_cube_closed_form(side, shift, axis):
    # overlap (side - shift) side^2: Dice = (side - shift) / side, IoU = (side - shift) / (side + shift)
    fixed = cube(side)
    moved = cube(side, shift=shift, axis=axis)
    dice = dice_per_label(moved, fixed)
    iou = iou_per_label(moved, fixed)
    assert dice.shape == iou.shape == (1, 1)
    assert dice.dtype == torch.float64
    assert float(dice) == pytest.approx((side - shift) / side, abs=1e-12)
    assert float(iou) == pytest.approx((side - shift) / (side + shift), abs=1e-12)


def test_identical_maps_score_one():
    label_map = cube(6, label=1) + cube(5, start=14, label=3)
    assert torch.equal(dice_per_label(label_map, label_map), torch.ones(1, 2, dtype=torch.float64))
    assert torch.equal(iou_per_label(label_map, label_map), torch.ones(1, 2, dtype=torch.float64))


def test_labels_are_independent_and_sorted():
    # label 2: cube shifted by 2 (Dice 0.8); label 1: identical small cube (Dice 1)
    fixed = cube(10, start=2, label=2) + cube(4, start=16, label=1)
    moved = cube(10, start=2, shift=2, axis=1, label=2) + cube(4, start=16, label=1)
    dice = dice_per_label(moved, fixed)
    torch.testing.assert_close(dice, torch.tensor([[1.0, 0.8]], dtype=torch.float64))


def test_absent_label_gives_nan_and_one_sided_label_gives_zero():
    # sample 0 has label 1 only, sample 1 has label 2 in pred only
    pred = torch.cat([cube(6, label=1), cube(6, label=2)])
    target = torch.cat([cube(6, label=1), torch.zeros(1, 1, SIZE, SIZE, SIZE, dtype=torch.long)])
    dice = dice_per_label(pred, target)
    iou = iou_per_label(pred, target)
    assert present_labels(pred, target) == [1, 2]
    for value in (dice, iou):
        assert value.shape == (2, 2)
        assert value[0, 0] == 1.0 and math.isnan(value[0, 1])  # label 2 absent from both maps of sample 0
        assert math.isnan(value[1, 0]) and value[1, 1] == 0.0  # label 1 absent; label 2 only in pred
    torch.testing.assert_close(torch.nanmean(dice, dim=1), torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_explicit_labels_keep_their_order_and_missing_ones_are_nan():
    fixed = cube(10, label=2)
    moved = cube(10, shift=5, label=2)
    dice = dice_per_label(moved, fixed, labels=[7, 2])
    assert math.isnan(dice[0, 0]) and float(dice[0, 1]) == 0.5


def test_no_labels_gives_empty_result():
    empty = torch.zeros(2, 1, 8, 8, 8, dtype=torch.long)
    assert dice_per_label(empty, empty).shape == (2, 0)
    assert present_labels(empty) == []


def test_float_label_maps_are_rounded():
    fixed = cube(10, shift=0).float()
    moved = cube(10, shift=3).float() * (1 + 1e-6)
    assert float(dice_per_label(moved, fixed)) == pytest.approx(0.7, abs=1e-12)


def test_present_labels_over_several_maps():
    assert present_labels(cube(4, label=5), cube(4, label=2), cube(4, label=5)) == [2, 5]


@pytest.mark.parametrize("function", [dice_per_label, iou_per_label])
def test_input_checks(function):
    good = cube(4)
    with pytest.raises(ValueError, match=r"pred .* and target .* must have the same shape"):
        function(good, cube(4, size=16))
    with pytest.raises(ValueError, match=r"pred must be a label map of shape \(B, 1, X, Y, Z\), got \(1, 24, 24, 24\)"):
        function(good[:, 0], good)
    with pytest.raises(ValueError, match=r"target must be a label map of shape \(B, 1, X, Y, Z\), got \(1, 2, 24"):
        function(good, torch.cat([good, good], dim=1))
    with pytest.raises(ValueError, match=r"labels must be a 1D sequence of L integers"):
        function(good, good, labels=[[1, 2]])
    with pytest.raises(TypeError, match=r"pred must be a torch.Tensor label map"):
        function(good.numpy(), good)
