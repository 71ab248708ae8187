# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The ICBM152 template on the benchmark grid: geometry, tissue labels, the T2-like rendering, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIZE

from monai_mine.apps.template import LABEL_NAMES, build_template, icbm152_files


def test_files_come_from_nilearn():
    files = icbm152_files()
    assert set(files) == {"t1", "gm", "wm"}
    assert all(path.is_file() and "nilearn" in path.parts for path in files.values())


def test_grid_shapes_and_spacing(template):
    shape = (SIZE,) * 3
    for array in (template.t1, template.t2_like, template.labels, template.mask):
        assert array.shape == shape
    assert template.spacing == pytest.approx((192.0 / SIZE,) * 3)
    np.testing.assert_allclose(np.diag(template.affine)[:3], template.spacing)
    # the grid is centred on the brain: the mask's bounding box stays inside, with margin on every side
    corners = np.argwhere(template.mask)
    assert corners.min(axis=0).min() >= 1 and corners.max(axis=0).max() <= SIZE - 2


def test_labels_are_the_tissues_inside_the_brain_mask(template):
    assert set(np.unique(template.labels)) == {0, *LABEL_NAMES}
    np.testing.assert_array_equal(template.labels > 0, template.mask)
    fractions = {name: (template.labels == label).mean() for label, name in LABEL_NAMES.items()}
    assert fractions["gm"] > fractions["wm"] > fractions["csf"] > 0.005
    assert template.t1.dtype == np.float32 and 0.0 <= template.t1.min() and template.t1.max() <= 1.0


def test_t1_and_t2_like_contrasts_are_reversed(template):
    """T1: WM brighter than GM brighter than CSF; the T2-like image: CSF brightest, then GM, WM darkest."""
    t1 = {name: template.t1[template.labels == label].mean() for label, name in LABEL_NAMES.items()}
    t2 = {name: template.t2_like[template.labels == label].mean() for label, name in LABEL_NAMES.items()}
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert (template.t2_like[~template.mask] == 0).all()


def test_deterministic(template):
    again = build_template(SIZE)
    np.testing.assert_array_equal(again.t1, template.t1)
    np.testing.assert_array_equal(again.labels, template.labels)


@pytest.mark.parametrize(("size", "fov", "match"), [(4, 192.0, "size must be"), (32, 0.0, "field_of_view_mm")])
def test_bad_arguments(size, fov, match):
    with pytest.raises(ValueError, match=match):
        build_template(size, fov)
