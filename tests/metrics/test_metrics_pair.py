"""registration_metrics: one flat dict of floats per pair, consistent with the per-metric functions."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.flows import warp
from monai_mine.metrics import (
    average_surface_distance_per_label,
    dice_per_label,
    hausdorff_distance_per_label,
    iou_per_label,
    registration_metrics,
)

SIZE = 20


def box(label: int, start: int, stop: int, size: int = SIZE) -> torch.Tensor:
    label_map = torch.zeros(1, 1, size, size, size, dtype=torch.long)
    label_map[..., start:stop, start:stop, start:stop] = label
    return label_map


def test_ddf_only_gives_jacobian_keys():
    results = registration_metrics(torch.zeros(2, 3, 12, 12, 12))
    assert results == [{"folding_percent": 0.0, "sdlogj": 0.0, "min_det": 1.0, "max_det": 1.0}] * 2
    assert all(isinstance(v, float) for v in results[0].values())


def test_warped_labels_give_label_keys_consistent_with_functions():
    # moving labels 1 and 2, warped by a constant shift of 2 voxels along X with nearest-neighbour sampling
    moving = box(1, 3, 9) + box(2, 11, 17)
    fixed = moving.clone()
    ddf = torch.zeros(1, 3, SIZE, SIZE, SIZE)
    ddf[:, 0] = 2.0
    warped = warp(moving, ddf, mode="nearest")
    spacing = (2.0, 1.0, 1.0)
    (result,) = registration_metrics(ddf, warped, fixed, spacing=spacing)
    expected_keys = {"folding_percent", "sdlogj", "min_det", "max_det", "dice", "iou", "hd95", "asd"}
    expected_keys |= {f"{key}_{label}" for key in ("dice", "iou", "hd95", "asd") for label in (1, 2)}
    assert set(result) == expected_keys
    for key, function in (
        ("dice", dice_per_label),
        ("iou", iou_per_label),
        ("hd95", lambda p, t: hausdorff_distance_per_label(p, t, spacing)),
        ("asd", lambda p, t: average_surface_distance_per_label(p, t, spacing)),
    ):
        values = function(warped, fixed)[0]
        assert result[f"{key}_1"] == pytest.approx(float(values[0]))
        assert result[f"{key}_2"] == pytest.approx(float(values[1]))
        assert result[key] == pytest.approx(float(values.mean()))
    # a 6-voxel box shifted by 2 voxels: Dice 4/6, HD 2 voxels = 4 mm along X
    assert result["dice_1"] == pytest.approx(4 / 6) and result["dice_2"] == pytest.approx(4 / 6)
    assert result["hd95_1"] == pytest.approx(4.0)
    assert result["folding_percent"] == 0.0 and result["min_det"] == 1.0


def test_labels_absent_from_a_pair_are_nan_and_skipped_in_means():
    fixed = torch.cat([box(1, 3, 9) + box(2, 11, 17), box(1, 3, 9)])
    warped = fixed.clone()
    results = registration_metrics(torch.zeros(2, 3, SIZE, SIZE, SIZE), warped, fixed, spacing=[[1, 1, 1], [2, 2, 2]])
    assert results[0]["dice"] == 1.0 and results[0]["dice_2"] == 1.0
    assert results[1]["dice"] == 1.0 and math.isnan(results[1]["dice_2"]) and math.isnan(results[1]["hd95_2"])
    assert results[1]["asd"] == 0.0


def test_no_foreground_gives_nan_means():
    empty = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    (result,) = registration_metrics(torch.zeros(1, 3, 8, 8, 8), empty, empty, labels=[1])
    assert math.isnan(result["dice"]) and math.isnan(result["dice_1"]) and math.isnan(result["hd95"])


def test_input_checks():
    ddf = torch.zeros(1, 3, 8, 8, 8)
    label = box(1, 2, 5, size=8)
    with pytest.raises(ValueError, match=r"warped_label and fixed_label must be given together"):
        registration_metrics(ddf, warped_label=label)
    with pytest.raises(
        ValueError, match=r"warped_label and fixed_label must have shape \(1, 1, 8, 8, 8\) to match ddf"
    ):
        registration_metrics(ddf, box(1, 2, 5, size=10), box(1, 2, 5, size=10))
    with pytest.raises(ValueError, match=r"warped_label \(1, 1, 8, 8, 8\) and fixed_label \(1, 1, 10, 10, 10\) must"):
        registration_metrics(ddf, label, box(1, 2, 5, size=10))
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\)"):
        registration_metrics(ddf[:, :1], label, label)
    with pytest.raises(ValueError, match=r"spacing must be 3 floats .* shape \(1, 3\), got shape \(4,\)"):
        registration_metrics(ddf, label, label, spacing=(1, 1, 1, 1))
