"""Data checks: bad data stops with a message naming the file, also through MONAI's Compose and Dataset."""

from __future__ import annotations

import re
import traceback

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset, MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_mine.transforms import (
    CheckFinited,
    CheckLabelGridd,
    CheckNonConstantd,
    CheckNonEmptyLabeld,
    CheckSameShaped,
    CheckSpatialDimsd,
    root_cause,
)
from tests.helpers import REPOSITORY, write_nifti


def _nifti(path, array):
    return str(write_nifti(path, array))


def _load(keys, *checks):
    return Compose([LoadImaged(keys), EnsureChannelFirstd(keys), *checks])


def _raises_naming(transform, data, pattern):
    """Run ``transform``; the check's ValueError must match ``pattern`` and show in MONAI's traceback."""
    with pytest.raises(RuntimeError, match=r"applying transform Check") as caught:
        transform(data)
    cause = root_cause(caught.value)
    assert isinstance(cause, ValueError) and re.search(pattern, str(cause)), str(cause)
    assert re.search(pattern, "".join(traceback.format_exception(caught.value)))


def test_finite_check_names_file_and_counts(tmp_path):
    array = np.zeros((4, 4, 4), dtype=np.float32)
    array[0, 0, :2] = np.nan
    array[1, 1, 1] = -np.inf
    bad = _nifti(tmp_path / "bad.nii.gz", array)
    good = _nifti(tmp_path / "good.nii.gz", np.ones((4, 4, 4), dtype=np.float32))
    keys = ["fixed_image", "moving_image"]
    transform = _load(keys, CheckFinited(keys))
    _raises_naming(
        transform,
        {"fixed_image": good, "moving_image": bad},
        re.escape(f"{bad} (key 'moving_image') has 2 NaN and 1 infinite voxel(s) out of 64"),
    )
    out = transform({"fixed_image": good, "moving_image": good})
    assert out["fixed_image"].shape == (1, 4, 4, 4) and float(out["fixed_image"].sum()) == 64


def test_checks_pass_data_through_unchanged():
    image = torch.rand(1, 4, 4, 4)
    label = torch.ones(1, 4, 4, 4, dtype=torch.int64)
    data = {"image": image, "label": label, "other": "kept"}
    for check in (
        CheckFinited(["image", "label"]),
        CheckSameShaped(["image", "label"]),
        CheckNonEmptyLabeld("label"),
        CheckSpatialDimsd(["image", "label"]),
    ):
        out = check(data)
        assert out["image"] is image and out["label"] is label and out["other"] == "kept"


def test_without_metadata_the_key_is_named():
    with pytest.raises(ValueError, match=r"^key 'image' has 1 NaN and 0 infinite voxel\(s\) out of 8\.$"):
        CheckFinited("image")({"image": np.array([[[np.nan, 0], [0, 0]], [[0, 0], [0, 0]]])})
    with pytest.raises(ValueError, match=r"^key 'label' is an empty label map"):
        CheckNonEmptyLabeld("label")({"label": torch.zeros(1, 2, 2, 2)})


def test_same_shape_check_names_every_key_file_and_shape(tmp_path):
    fixed = _nifti(tmp_path / "fixed.nii.gz", np.zeros((4, 4, 4), dtype=np.float32))
    moving = _nifti(tmp_path / "moving.nii.gz", np.zeros((4, 5, 6), dtype=np.float32))
    keys = ["fixed_image", "moving_image", "fixed_label"]
    transform = Compose(
        [
            LoadImaged(keys, allow_missing_keys=True),
            EnsureChannelFirstd(keys, allow_missing_keys=True),
            CheckSameShaped(keys, allow_missing_keys=True),
        ]
    )
    pattern = re.escape(
        f"Spatial shapes differ: {fixed} (key 'fixed_image'): (4, 4, 4); {moving} (key 'moving_image'): (4, 5, 6)."
    )
    _raises_naming(transform, {"fixed_image": fixed, "moving_image": moving}, pattern)
    assert transform({"fixed_image": fixed, "moving_image": fixed})["moving_image"].shape == (1, 4, 4, 4)
    with pytest.raises(KeyError, match="fixed_label"):
        CheckSameShaped(keys)({"fixed_image": torch.zeros(1, 2, 2, 2), "moving_image": torch.zeros(1, 2, 2, 2)})


def test_same_shape_check_compares_spatial_axes_only():
    data = {"image": torch.zeros(1, 4, 4, 4), "ddf": torch.zeros(3, 4, 4, 4), "raw": np.zeros((4, 4, 4))}
    assert CheckSameShaped(["image", "ddf", "raw"])(data)["ddf"] is data["ddf"]


def test_empty_label_check_names_file(tmp_path):
    empty = _nifti(tmp_path / "empty_seg.nii.gz", np.zeros((4, 4, 4), dtype=np.int16))
    full = np.zeros((4, 4, 4), dtype=np.int16)
    full[1, 2, 3] = 2
    labelled = _nifti(tmp_path / "seg.nii.gz", full)
    keys = ["fixed_label", "moving_label"]
    transform = _load(keys, CheckNonEmptyLabeld(keys))
    _raises_naming(
        transform,
        {"fixed_label": labelled, "moving_label": empty},
        re.escape(f"{empty} (key 'moving_label') is an empty label map: no foreground"),
    )
    assert int(transform({"fixed_label": labelled, "moving_label": labelled})["moving_label"].sum()) == 2


@pytest.mark.parametrize(
    "name, array, shape",
    [
        ("slice2d.nii.gz", np.zeros((4, 5), dtype=np.float32), (1, 4, 5)),
        ("vector5d.nii.gz", np.zeros((4, 4, 4, 1, 3), dtype=np.float32), (3, 4, 4, 4, 1)),
    ],
)
def test_spatial_dims_check_names_file_and_shape(tmp_path, name, array, shape):
    path = _nifti(tmp_path / name, array)
    pattern = re.escape(f"{path} (key 'image') has shape {shape}") + r".*3 spatial axes, \(C, X, Y, Z\)"
    _raises_naming(_load("image", CheckSpatialDimsd("image")), {"image": path}, pattern)


def test_spatial_dims_check_accepts_channels_and_other_dims(tmp_path):
    series = _nifti(tmp_path / "series.nii.gz", np.zeros((4, 4, 4, 2), dtype=np.float32))  # 2 channels, 3D
    assert _load("image", CheckSpatialDimsd("image"))({"image": series})["image"].shape == (2, 4, 4, 4)
    assert CheckSpatialDimsd("image", spatial_dims=2)({"image": torch.zeros(1, 4, 4)})["image"].shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"key 'image' has shape \(1, 4, 4, 4\).*2 spatial axes, \(C, X, Y\)"):
        CheckSpatialDimsd("image", spatial_dims=2)({"image": MetaTensor(torch.zeros(1, 4, 4, 4))})


def test_message_surfaces_through_a_monai_dataset(tmp_path):
    array = np.ones((4, 4, 4), dtype=np.float32)
    array[2, 2, 2] = np.inf
    bad = _nifti(tmp_path / "case_007.nii.gz", array)
    dataset = Dataset([{"image": bad}], transform=_load("image", CheckFinited("image")))
    with pytest.raises(RuntimeError) as caught:
        dataset[0]
    assert f"{bad} (key 'image') has 0 NaN and 1 infinite voxel(s)" in str(root_cause(caught.value))
    assert "case_007.nii.gz" in "".join(traceback.format_exception(caught.value))


def test_repr_names_class_and_keys():
    assert repr(CheckFinited(["fixed_image", "moving_image"])) == "CheckFinited(keys=['fixed_image', 'moving_image'])"
    assert repr(CheckSpatialDimsd("image")) == "CheckSpatialDimsd(keys=['image'], spatial_dims=3)"


def test_constant_image_check_names_file_and_value(tmp_path):
    blank = _nifti(tmp_path / "blank.nii.gz", np.full((4, 4, 4), 3.5, dtype=np.float32))
    varied = _nifti(tmp_path / "varied.nii.gz", np.arange(64, dtype=np.float32).reshape(4, 4, 4))
    keys = ["fixed_image", "moving_image"]
    transform = _load(keys, CheckNonConstantd(keys))
    pattern = re.escape(f"{blank} (key 'moving_image') is constant (every voxel is 3.5): nothing to register")
    _raises_naming(transform, {"fixed_image": varied, "moving_image": blank}, pattern)
    assert float(transform({"fixed_image": varied, "moving_image": varied})["moving_image"].max()) == 63


def test_label_grid_check_compares_each_label_with_its_own_image(tmp_path):
    image = _nifti(tmp_path / "image.nii.gz", np.zeros((4, 4, 4), dtype=np.float32))
    label = _nifti(tmp_path / "label.nii.gz", np.ones((4, 4, 4), dtype=np.int16))
    shifted = str(tmp_path / "shifted_label.nii.gz")
    affine = np.eye(4)
    affine[0, 3] = 1.5  # same shape, origin 1.5 mm away
    write_nifti(shifted, np.ones((4, 4, 4), dtype=np.int16), affine)
    keys = ["moving_image", "moving_label", "fixed_image"]
    check = CheckLabelGridd("moving_label", image_keys="moving_image", allow_missing_keys=True)
    transform = _load(keys, check)
    pattern = re.escape(f"label map {shifted} (key 'moving_label') is not on the grid of its image {image}") + (
        r".*\[1\.0, 0\.0, 0\.0, 1\.5\].*expected the same shape and voxel-to-world affine"
    )
    _raises_naming(transform, {"moving_image": image, "moving_label": shifted, "fixed_image": image}, pattern)
    assert transform({"moving_image": image, "moving_label": label, "fixed_image": image})["moving_label"].sum() == 64
    assert "moving_label" not in _load(["moving_image"], check)({"moving_image": image})  # optional labels
    with pytest.raises(ValueError, match=r"image_keys \['a'\] must pair one image with each label key"):
        CheckLabelGridd(["x", "y"], image_keys=["a"])


def test_spatial_dims_check_rejects_a_single_slice_volume(tmp_path):
    path = _nifti(tmp_path / "slice.nii.gz", np.zeros((4, 4, 1), dtype=np.float32))
    pattern = re.escape(f"{path} (key 'image') has shape (1, 4, 4, 1): each spatial axis needs at least 2 voxels")
    _raises_naming(_load("image", CheckSpatialDimsd("image")), {"image": path}, pattern)
    assert CheckSpatialDimsd("image", min_size=1)({"image": torch.zeros(1, 4, 4, 1)})["image"].shape == (1, 4, 4, 1)


def test_the_old_names_under_monai_mine_data_are_deprecated_aliases_of_the_same_objects():
    """Configs and exports of earlier releases name the loading and checking transforms ``monai_mine.data.<Name>``:
    each old name warns (``DeprecationWarning``, naming the new home) and is the object of ``monai_mine.transforms``."""
    import monai_mine.data
    import monai_mine.transforms

    names = [name for name in monai_mine.transforms.__all__ if name.startswith("Check")]
    assert len(names) == 7
    for name in [*names, "root_cause"]:
        with pytest.warns(DeprecationWarning, match=rf"monai_mine\.data\.{name} has been deprecated since version .*"
                          rf"use monai_mine\.transforms\.{name} instead"):  # fmt: skip
            alias = getattr(monai_mine.data, name)
        assert alias is getattr(monai_mine.transforms, name)
        assert name not in monai_mine.data.__all__
    with pytest.raises(AttributeError, match="has no attribute 'CheckNothingd'"):
        monai_mine.data.CheckNothingd  # noqa: B018


def test_a_config_naming_an_old_transform_still_builds_it_with_a_warning():
    """What a config of an earlier release (or the ``inference.json`` inside an older export) names still works."""
    parser = ConfigParser({"check": {"_target_": "monai_mine.data.CheckFinited", "keys": "image"}})
    with pytest.warns(DeprecationWarning, match="use monai_mine.transforms.CheckFinited instead"):
        check = parser.get_parsed_content("check")
    assert isinstance(check, CheckFinited)


def test_the_bundle_configs_name_the_transforms_in_their_home():
    configs = sorted((REPOSITORY / "bundles").glob("*/configs/*.json"))
    assert configs
    for config in configs:
        assert "monai_mine.data.Check" not in config.read_text(), config
