"""Pictures: slice orientation, checkerboards, deformation grids, Jacobian folds, and the QC figure file."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from monai_mine.visualize import (
    _FRAME_RGB,
    FOLD_COLOR,
    GRID_COLOR,
    QC_COLUMNS,
    _rgb,
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


def panel_boxes(picture: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of the inside of every framed panel, row by row (text is too small to count)."""
    components, _ = ndimage.label((picture == _FRAME_RGB).all(-1), structure=np.ones((3, 3)))
    boxes = [
        (r.start + 1, c.start + 1, r.stop - r.start - 2, c.stop - c.start - 2)
        for r, c in ndimage.find_objects(components)
    ]
    return sorted(box for box in boxes if min(box[2:]) > 20)


def qc_inputs() -> tuple[np.ndarray, ...]:
    """Binary images (grey values that no frame has): fixed bright for x < 6, moving one voxel further; warped =
    fixed; a smooth DDF; a Jacobian with a folded 2^3 block through the middle slices."""
    fixed = np.zeros(SHAPE)
    fixed[:6] = 1.0
    ddf = np.zeros((3, *SHAPE))
    ddf[0] = 0.5 * np.sin(np.arange(SHAPE[1]) / 2.0)[None, :, None]
    jacobian = np.ones(SHAPE)
    jacobian[5:7, 4:6, 3:5] = -1.0
    return fixed, np.roll(fixed, 1, 0), fixed, ddf, jacobian


def test_qc_figure_draws_every_column_at_true_proportions(tmp_path):
    path = qc_figure(*qc_inputs(), tmp_path / "qc.png", spacing=(1, 1, 2), title="a -> b")
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]  # no temporary file left
    picture = np.asarray(Image.open(path).convert("RGB"))
    boxes = panel_boxes(picture)
    assert len(boxes) == 3 * len(QC_COLUMNS)
    rows = [boxes[k : k + len(QC_COLUMNS)] for k in range(0, len(boxes), len(QC_COLUMNS))]
    # mm extents x 12, y 10, z 16: the longest side (z) is 2 inches at 100 dpi, the others in proportion
    for row, (height, width) in zip(rows, [(125, 150), (200, 150), (200, 125)]):  # axial, coronal, sagittal
        assert {box[0] for box in row} == {row[0][0]} and all(box[2:] == (height, width) for box in row)

    def panel(row: int, column: str) -> np.ndarray:
        top, left, height, width = rows[row][QC_COLUMNS.index(column)]
        return picture[top : top + height, left : left + width]

    fixed, moving = panel(0, "fixed"), panel(0, "moving")  # axial: x across, 12.5 pixels a voxel
    assert (fixed[:, :75] == 255).all() and (fixed[:, 75:] == 0).all()  # bright for x < 6
    assert (moving[:, 13:87] == 255).all() and (moving[:, 88:] == 0).all()  # moving: x in [1, 7)
    assert (panel(2, "fixed") == 0).all()  # sagittal: the middle slice x = 6 is dark
    for row in range(3):
        for column in QC_COLUMNS:
            image = panel(row, column)
            folds = (image == _rgb(FOLD_COLOR)).all(-1).sum()
            lines = (image == _rgb(GRID_COLOR)).all(-1).sum()
            assert (folds > 0) == (column == "Jacobian det") and (lines > 0) == (column == "grid"), (row, column)
    # one view: its longest side (x, 12 mm) is the 2 inches, 100 pixels at 50 dpi
    small = qc_figure(*qc_inputs(), tmp_path / "small.png", spacing=(1, 1, 2), views=("axial",), dpi=50)
    assert [box[2:] for box in panel_boxes(np.asarray(Image.open(small).convert("RGB")))] == [(83, 100)] * 7


def test_qc_figure_refuses_bad_inputs_with_a_message(tmp_path):
    fixed, moving, warped, ddf, jacobian = qc_inputs()
    bad = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=r"every input on one grid"):
        qc_figure(fixed, moving, warped, ddf[:, :-1], jacobian, bad)
    with pytest.raises(ValueError, match=r"ddf must be a DDF of shape \(3, X, Y, Z\)"):
        qc_figure(fixed, moving, warped, ddf[:2], jacobian, bad)
    with pytest.raises(ValueError, match=r"spacing must be 3 positive voxel sizes in mm, got \(1.0, 1.0\)"):
        qc_figure(fixed, moving, warped, ddf, jacobian, bad, spacing=(1, 1))
    with pytest.raises(ValueError, match=r"spacing must be 3 positive"):
        qc_figure(fixed, moving, warped, ddf, jacobian, bad, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match=r"at least one view"):
        qc_figure(fixed, moving, warped, ddf, jacobian, bad, views=())
    with pytest.raises(ValueError, match=r"view must be one of"):
        qc_figure(fixed, moving, warped, ddf, jacobian, bad, views=("oblique",))
    assert not list(tmp_path.iterdir())


def test_save_figure_writes_the_figure_at_its_dpi(tmp_path):
    figure, _ = new_figure(1, 1)
    assert png_size(save_figure(figure, tmp_path / "one.png", dpi=50)) == (110, 110)
