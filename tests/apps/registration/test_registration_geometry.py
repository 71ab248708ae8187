"""Geometry of real-file registration: the working grid, resampling through world space, DDFs across grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation, Resize
from registration_cases import grid_affine, two_blobs

from monai_mine.apps.registration import (
    Grid,
    closest_ras_grid,
    ddf_to_grid,
    geometry,
    load_volume,
    physical_displacement,
    resample_to_grid,
    warp_to_grid,
    working_grid,
)
from monai_mine.apps.registration.geometry import to_closest_ras
from monai_mine.flows import jacobian_determinant, warp
from tests.helpers import world_points, write_nifti


def corners(grid: Grid) -> np.ndarray:
    """World positions of the 8 corner voxel centres, sorted."""
    index = np.array(
        [[i, j, k] for i in (0, grid.shape[0] - 1) for j in (0, grid.shape[1] - 1) for k in (0, grid.shape[2] - 1)],
        dtype=float,
    )
    points = index @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    return points[np.lexsort(points.T[::-1])]


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "SAL"])
def test_closest_ras_grid_is_the_same_box(axcodes):
    grid = Grid((7, 5, 4), grid_affine((1.5, 2.0, 0.8), (3.0, -4.0, 9.0), axcodes))
    ras = closest_ras_grid(grid)
    assert ras.axcodes == "RAS"
    assert sorted(ras.shape) == sorted(grid.shape)
    np.testing.assert_allclose(corners(ras), corners(grid), atol=1e-9)
    assert sorted(ras.spacing) == pytest.approx(sorted(grid.spacing))


def test_working_grid_is_the_bundles_orientation_and_resize(tmp_path):
    """Resampling onto the working grid equals the bundles' Orientationd("RAS") + Resized, values and affine."""
    shape = (20, 14, 18)
    affine = grid_affine((1.5, 2.0, 1.2), (5.0, -3.0, 2.0), "PIR", shape=shape)
    path = write_nifti(tmp_path / "pir.nii.gz", two_blobs(shape, affine), affine)
    orientation, resize = Orientation("RAS", labels=None), Resize((16,) * 3, mode="trilinear")
    preprocess = Compose([LoadImage(image_only=True), EnsureChannelFirst(), orientation, resize])
    expected = preprocess(str(path))
    volume = load_volume(path)
    working = working_grid(volume.grid, 16)
    resampled = resample_to_grid(volume.tensor(), volume.grid, working)
    assert working.axcodes == "RAS" and working.shape == (16, 16, 16)
    np.testing.assert_allclose(resampled.numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(working.affine, np.asarray(expected.affine), atol=1e-5)


def test_resample_onto_own_grid_is_identity_and_slabs_do_not_matter(monkeypatch):
    grid = Grid((9, 8, 7), grid_affine((1.1, 0.9, 2.0), (1.0, 2.0, 3.0), "LPI"))
    image = torch.rand(2, 9, 8, 7)
    np.testing.assert_allclose(resample_to_grid(image, grid, grid).numpy(), image.numpy(), atol=1e-6)
    target = Grid((11, 6, 9), grid_affine((0.7, 1.3, 1.5), (0.5, 3.0, 4.0), "RAS"))
    whole = resample_to_grid(image, grid, target)
    monkeypatch.setattr(geometry, "SLAB_VOXELS", 60)  # one row of 6 x 9 voxels per slab
    np.testing.assert_array_equal(resample_to_grid(image, grid, target).numpy(), whole.numpy())


def test_resample_samples_world_positions():
    """A linear function of world coordinates is reproduced exactly (trilinear) on another grid."""
    source = Grid((20, 22, 18), grid_affine((1.0, 1.2, 1.5), (1.0, 2.0, 3.0), "LAS", shape=(20, 22, 18)))
    target = Grid((8, 9, 7), grid_affine((2.0, 1.7, 2.5), (0.0, 1.0, 2.0), "SPR", shape=(8, 9, 7)))  # inside

    def ramp(grid):
        points = world_points(grid.shape, grid.affine)
        return torch.from_numpy(0.3 * points[..., 0] - 0.2 * points[..., 1] + 0.1 * points[..., 2])[None]

    resampled = resample_to_grid(ramp(source).float(), source, target)
    np.testing.assert_allclose(resampled.numpy(), ramp(target).numpy(), atol=1e-4)


def test_ddf_to_grid_keeps_the_world_displacement():
    source = Grid((6, 6, 6), grid_affine((2.0, 2.5, 3.0), (0.0, 0.0, 0.0), "RAS"))
    target = Grid((9, 7, 8), grid_affine((1.0, 1.5, 2.0), (1.0, 2.0, 1.0), "PSL"))
    constant = torch.tensor([1.0, -2.0, 0.5])
    mapped = ddf_to_grid(constant[:, None, None, None].expand(3, 6, 6, 6), source, target)
    world = source.affine[:3, :3] @ constant.numpy()  # mm
    expected = np.linalg.solve(target.affine[:3, :3], world)
    np.testing.assert_allclose(mapped.reshape(3, -1).numpy(), np.repeat(expected[:, None], 9 * 7 * 8, 1), atol=1e-5)
    physical = physical_displacement(mapped, target)
    np.testing.assert_allclose(physical.reshape(3, -1).numpy().mean(1), world, atol=1e-5)


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR"])
def test_ddf_to_grid_from_the_working_grid_equals_sampling_through_world_points(axcodes):
    # the working grid's DDF reaches the fixed grid by separable resizing (box to box, axes permuted and flipped);
    # it must equal the general path: each component sampled at the world points, then in the fixed grid's voxels
    fixed = Grid((23, 17, 20), grid_affine((1.2, 0.9, 1.6), (3.0, -2.0, 1.0), axcodes))
    working = working_grid(fixed, 8)
    ddf = torch.randn(3, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    components = np.linalg.inv(fixed.affine[:3, :3]) @ working.affine[:3, :3]
    expected = np.einsum("ij,j...->i...", components, resample_to_grid(ddf, working, fixed).double().numpy())
    np.testing.assert_allclose(ddf_to_grid(ddf, working, fixed).numpy(), expected, atol=1e-5)


def test_warp_on_own_grid_equals_flows_warp():
    grid = Grid((12, 10, 11), grid_affine((1.3, 0.8, 2.0), (4.0, -1.0, 0.0), "LPS"))
    torch.manual_seed(0)
    image = torch.rand(1, 12, 10, 11)
    ddf = torch.nn.functional.interpolate(torch.randn(1, 3, 3, 3, 3) * 3, size=(12, 10, 11), mode="trilinear")[0]
    np.testing.assert_allclose(
        warp_to_grid(image, grid, ddf, grid).numpy(), warp(image[None], ddf[None])[0].numpy(), atol=1e-5
    )
    labels = torch.randint(0, 5, (1, 12, 10, 11), dtype=torch.int16)
    warped_labels = warp_to_grid(labels, grid, ddf, grid, mode="nearest")
    assert warped_labels.dtype == torch.int16
    expected = warp(labels[None].double(), ddf[None].double(), mode="nearest")[0].round().to(torch.int16)
    assert (warped_labels != expected).float().mean() < 0.01  # nearest ties may round differently


def test_warp_across_grids_is_physical():
    """Warping the same continuous image stored on two different grids gives the same result."""
    ddf_grid = Grid((14, 12, 10), grid_affine((1.5, 1.5, 2.0), (0.0, 0.0, 0.0), "RAS", shape=(14, 12, 10)))
    fine = Grid((40, 36, 30), grid_affine((0.8, 0.7, 0.9), (0.5, -0.5, 0.2), "PIL", shape=(40, 36, 30)))
    ddf = torch.zeros(3, 14, 12, 10)
    ddf[0], ddf[1], ddf[2] = 1.2, -0.7, 0.4  # voxels of ddf_grid
    on_ddf_grid = torch.from_numpy(two_blobs(ddf_grid.shape, ddf_grid.affine))[None]
    on_fine_grid = torch.from_numpy(two_blobs(fine.shape, fine.affine))[None]
    shift_mm = ddf_grid.affine[:3, :3] @ np.array([1.2, -0.7, 0.4])
    expected = two_blobs(ddf_grid.shape, ddf_grid.affine, shift=-shift_mm)  # I(x + d): content moved by -d
    np.testing.assert_allclose(warp_to_grid(on_fine_grid, fine, ddf, ddf_grid)[0].numpy(), expected, atol=0.02)
    inside = (slice(0, 12), slice(1, 12), slice(0, 9))  # x + d stays inside the coarse grid (no border padding)
    coarse = warp_to_grid(on_ddf_grid, ddf_grid, ddf, ddf_grid)[0].numpy()
    np.testing.assert_allclose(coarse[inside], expected[inside], atol=0.03)


def test_to_closest_ras_keeps_the_physical_displacement():
    grid = Grid((5, 6, 7), grid_affine((1.0, 2.0, 3.0), (0.0, 0.0, 0.0), "PIL"))
    ddf = torch.randn(3, 5, 6, 7, dtype=torch.float64)
    oriented, spacing = to_closest_ras(ddf.numpy(), grid, vector=True)
    ras = closest_ras_grid(grid)
    assert spacing == pytest.approx(ras.spacing)
    world = to_closest_ras(physical_displacement(ddf, grid).numpy(), grid)[0]
    np.testing.assert_allclose(physical_displacement(torch.from_numpy(oriented), ras).numpy(), world, atol=1e-12)


def test_grid_rejects_bad_geometry():
    with pytest.raises(ValueError, match="invertible"):
        Grid((4, 4, 4), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"3 positive sizes"):
        Grid((4, 4), np.eye(4))
    with pytest.raises(ValueError, match="finite 4x4"):
        Grid((4, 4, 4), np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="at least 2 voxels"):
        working_grid(Grid((4, 4, 4), np.eye(4)), 1)


def test_jacobian_map_slab_by_slab_equals_the_whole_volume(monkeypatch):
    """Slabs of one, two and several rows (a last slab of one row too) give the whole-volume determinant exactly."""
    ddf = torch.randn(3, 7, 5, 4, generator=torch.Generator().manual_seed(0))
    whole = jacobian_determinant(ddf[None])[0]
    for rows in (1, 2, 3):
        monkeypatch.setattr(geometry, "SLAB_VOXELS", rows * 5 * 4)
        assert torch.equal(geometry.jacobian_map(ddf), whole)
