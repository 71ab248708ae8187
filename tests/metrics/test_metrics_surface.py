"""HD95 and ASD per label in mm: concentric spheres, anisotropic spacing, identical maps and empty labels."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.metrics import average_surface_distance_per_label, hausdorff_distance_per_label

SIZE = 32


def ball(radius: float, size: int = SIZE, label: int = 1) -> torch.Tensor:
    """Label map (1, 1, size, size, size): a ball of ``radius`` voxels around the grid centre."""
    axes = [torch.arange(size, dtype=torch.float64) - (size - 1) / 2] * 3
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return ((grid.square().sum(0).sqrt() <= radius).long() * label)[None, None]


def box(start: int, stop: int, shift: int = 0, axis: int = 0, size: int = 24) -> torch.Tensor:
    label_map = torch.zeros(1, 1, size, size, size, dtype=torch.long)
    index = [slice(start, stop)] * 3
    index[axis] = slice(start + shift, stop + shift)
    label_map[(0, 0, *index)] = 1
    return label_map


@pytest.mark.parametrize("r1, r2", [(4, 8), (5, 12), (6, 9)])
def test_concentric_spheres_hausdorff_is_radius_difference(r1, r2):
    inner, outer = ball(r1), ball(r2)
    for percentile in (95.0, None):
        hd = hausdorff_distance_per_label(inner, outer, spacing=(1.0, 1.0, 1.0), percentile=percentile)
        assert hd.shape == (1, 1) and hd.dtype == torch.float64
        assert abs(float(hd) - (r2 - r1)) <= 1.0  # within a voxel of the continuous value
    # isotropic spacing scales the distance exactly
    hd1 = hausdorff_distance_per_label(inner, outer, spacing=(1.0, 1.0, 1.0))
    hd2 = hausdorff_distance_per_label(inner, outer, spacing=(2.5, 2.5, 2.5))
    torch.testing.assert_close(hd2, 2.5 * hd1)


@pytest.mark.parametrize("axis, expected_mm", [(0, 6.0), (1, 3.0), (2, 3.0)])
def test_shift_scaled_by_anisotropic_spacing(axis, expected_mm):
    # a 3-voxel shift along `axis` with spacing (2, 1, 1) mm: 6 mm along axis 0, 3 mm along the others
    fixed = box(4, 14)
    moved = box(4, 14, shift=3, axis=axis)
    spacing = (2.0, 1.0, 1.0)
    hd_max = hausdorff_distance_per_label(moved, fixed, spacing, percentile=None)
    hd95 = hausdorff_distance_per_label(moved, fixed, spacing)
    assert float(hd_max) == pytest.approx(expected_mm, abs=1e-6)
    assert float(hd95) == pytest.approx(expected_mm, abs=1e-6)  # the shifted face is > 5 % of the edge voxels


def test_per_sample_spacing():
    fixed = torch.cat([box(4, 14), box(4, 14)])
    moved = torch.cat([box(4, 14, shift=3), box(4, 14, shift=3)])
    hd = hausdorff_distance_per_label(moved, fixed, [[2.0, 1.0, 1.0], [0.5, 1.0, 1.0]], percentile=None)
    torch.testing.assert_close(hd, torch.tensor([[6.0], [1.5]], dtype=torch.float64))


def test_identical_maps_have_zero_distances():
    two_labels = ball(6)
    two_labels[..., :4, :4, :4] = 2  # a box in a corner, touching the faces of the volume
    asd = average_surface_distance_per_label(two_labels, two_labels, spacing=(1.0, 2.0, 3.0))
    hd = hausdorff_distance_per_label(two_labels, two_labels, spacing=(1.0, 2.0, 3.0))
    assert torch.equal(asd, torch.zeros(1, 2, dtype=torch.float64))
    assert torch.equal(hd, torch.zeros(1, 2, dtype=torch.float64))


def test_asd_of_shifted_box_is_between_zero_and_shift():
    fixed = box(4, 14)
    moved = box(4, 14, shift=2, axis=2)
    asd = float(average_surface_distance_per_label(moved, fixed, (1.0, 1.0, 1.0)))
    assert 0.0 < asd < 2.0


def test_empty_label_gives_nan_without_warning(recwarn):
    present = ball(5)
    empty = torch.zeros_like(present)
    pred = torch.cat([present, empty, empty])
    target = torch.cat([present, present, empty])
    hd = hausdorff_distance_per_label(pred, target, (1.0, 1.0, 1.0), labels=[1])
    asd = average_surface_distance_per_label(pred, target, (1.0, 1.0, 1.0), labels=[1])
    for value in (hd, asd):
        assert value.shape == (3, 1)
        assert float(value[0]) == 0.0
        assert math.isnan(value[1]) and math.isnan(value[2])
    assert not [w for w in recwarn if issubclass(w.category, (UserWarning, FutureWarning))]


@pytest.mark.parametrize("function", [hausdorff_distance_per_label, average_surface_distance_per_label])
def test_input_checks(function):
    good = box(4, 10, size=12)
    with pytest.raises(
        ValueError,
        match=r"spacing must be 3 floats \(mm per axis\) or per-sample values of shape \(1, 3\), got shape \(2,\)",
    ):
        function(good, good, (1.0, 1.0))
    with pytest.raises(ValueError, match=r"spacing must be .* shape \(1, 3\), got shape \(2, 3\)"):
        function(good, good, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"spacing must hold positive finite values"):
        function(good, good, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"pred .* and target .* must have the same shape"):
        function(good, box(4, 10, size=14), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"target must be a label map of shape \(B, 1, X, Y, Z\)"):
        function(good, good[0], (1.0, 1.0, 1.0))


def test_percentile_check():
    good = box(4, 10, size=12)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\] or None for the maximum, got 120"):
        hausdorff_distance_per_label(good, good, (1.0, 1.0, 1.0), percentile=120)
