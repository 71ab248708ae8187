"""Pictures: slice orientation, checkerboards, deformation grids, Jacobian folds, and the QC figure file."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from monai_mine.visualize import (
    checkerboard,
    new_figure,
    qc_figure,
    save_figure,
    show_deformation_grid,
    show_difference,
    show_image,
    show_jacobian,
    show_label_contours,
    show_views,
    slice_2d,
)

SHAPE = (12, 10, 8)


def index_volume() -> np.ndarray:
    x, y, z = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return (100 * x + 10 * y + z).astype(np.float64)


@pytest.mark.parametrize(
    "view, index, horizontal, vertical, expected",
    [
        ("axial", 3, "x", "y", lambda h, v: 100 * h + 10 * v + 3),
        ("coronal", 2, "x", "z", lambda h, v: 100 * h + 20 + v),
        ("sagittal", 5, "y", "z", lambda h, v: 500 + 10 * h + v),
    ],
)
def test_slices_put_the_lower_axis_across_and_the_higher_up(view, index, horizontal, vertical, expected):
    plane = slice_2d(torch.from_numpy(index_volume())[None, None], view, index)  # leading axes of size 1 dropped
    sizes = dict(zip("xyz", SHAPE))
    assert plane.shape == (sizes[vertical], sizes[horizontal])
    v, h = np.meshgrid(np.arange(plane.shape[0]), np.arange(plane.shape[1]), indexing="ij")
    np.testing.assert_array_equal(plane, expected(h, v))
    assert slice_2d(index_volume(), view).shape == plane.shape  # middle slice by default


def test_checkerboard_alternates_blocks():
    a, b = np.zeros((4, 4, 4)), np.ones((4, 4, 4))
    board = checkerboard(a, b, tiles=2, normalize=False)
    block = lambda i, j, k: board[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2]  # noqa: E731
    for i, j, k in np.ndindex(2, 2, 2):
        assert (block(i, j, k) == (i + j + k) % 2).all()
    with pytest.raises(ValueError, match=r"same shape"):
        checkerboard(a, np.ones((4, 4, 5)))


def test_deformation_grid_moves_each_node_by_its_in_plane_displacement():
    figure, axes = new_figure(1, 2)
    still = show_deformation_grid(axes[0, 0], np.zeros((3, *SHAPE)), "axial", step=3)
    ddf = np.zeros((3, *SHAPE))
    ddf[0], ddf[1], ddf[2] = 1.0, 2.0, 5.0  # the z component is out of the axial plane
    moved = show_deformation_grid(axes[0, 1], ddf, "axial", step=3)
    for a, b in zip(still.get_segments(), moved.get_segments()):
        np.testing.assert_allclose(b - a, np.broadcast_to([1.0, 2.0], a.shape))
    first = still.get_segments()[0]  # the line y = 0 across x
    np.testing.assert_array_equal(first, np.column_stack([np.arange(SHAPE[0]), np.zeros(SHAPE[0])]))
    assert len(still.get_segments()) == len(range(0, SHAPE[1], 3)) + len(range(0, SHAPE[0], 3))


def test_jacobian_map_is_centred_at_one_and_marks_folds():
    jacobian = np.ones(SHAPE)
    jacobian[2:4, 2:5, 4] = -0.5
    jacobian[6, 6, 4] = 0.0
    figure, axes = new_figure(1, 1)
    image = show_jacobian(axes[0, 0], jacobian, "axial", index=4)
    assert image.norm.vcenter == 1.0 and (image.norm.vmin, image.norm.vmax) == (0.0, 2.0)
    folds = axes[0, 0].get_images()[1].get_array()
    assert int((~folds.mask).sum()) == 2 * 3 + 1  # det <= 0 voxels of the slice, drawn in the fold colour
    with pytest.raises(ValueError, match="vmax must be > 1"):
        show_jacobian(axes[0, 0], jacobian, vmax=1.0)


def test_contours_differences_and_views_draw():
    labels = np.zeros(SHAPE, np.int32)
    labels[2:8, 2:7, :] = 1
    labels[4:6, 3:5, :] = 4
    figure, axes = new_figure(2, 3)
    show_image(axes[0, 0], index_volume(), "axial")
    assert show_label_contours(axes[0, 0], labels, "axial") == [1, 4]
    difference = show_difference(axes[0, 1], index_volume(), np.zeros(SHAPE) + 1.0, normalize=False, vmax=50.0)
    assert difference.get_clim() == (-50.0, 50.0)
    images = show_views(axes[1], index_volume(), spacing=(1.0, 2.0, 3.0))
    assert [ax.get_title() for ax in axes[1]] == ["axial", "coronal", "sagittal"]
    assert images[0].axes.get_aspect() == pytest.approx(2.0)  # y spacing / x spacing
    with pytest.raises(ValueError, match=r"view must be one of"):
        slice_2d(index_volume(), "oblique")
    with pytest.raises(ValueError, match=r"slice index 8 is outside the axial range \[0, 7\]"):
        slice_2d(index_volume(), "axial", 8)


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_qc_figure_writes_one_png_atomically(tmp_path):
    rng = np.random.default_rng(0)
    fixed = rng.random(SHAPE)
    ddf = rng.normal(0.0, 0.5, (3, *SHAPE))
    path = qc_figure(fixed, np.roll(fixed, 1, 0), fixed, ddf, np.ones(SHAPE), tmp_path / "qc.png", spacing=(1, 1, 2))
    assert png_size(path) == (int(7 * 2.2 * 100), int(3 * 2.2 * 100))  # 7 columns x 3 views
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]  # no temporary file left
    with pytest.raises(ValueError, match=r"every input on one grid"):
        qc_figure(fixed, fixed, fixed, ddf[:, :-1], np.ones(SHAPE), tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"ddf must be a DDF of shape \(3, X, Y, Z\)"):
        qc_figure(fixed, fixed, fixed, ddf[:2], np.ones(SHAPE), tmp_path / "bad.png")
    figure, _ = new_figure(1, 1)
    assert png_size(save_figure(figure, tmp_path / "one.png", dpi=50)) == (110, 110)
