"""prepare_registration_batch, RegistrationBatch and split_records."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_mine.engines import RegistrationBatch, prepare_registration_batch
from monai_mine.engines.batch import split_records

SHAPE = (2, 1, 16, 16, 16)


def batch_dict(labels: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = {"moving_image": torch.rand(SHAPE, generator=g), "fixed_image": torch.rand(SHAPE, generator=g)}
    if labels:
        data["moving_label"] = torch.randint(0, 3, SHAPE, generator=g)
        data["fixed_label"] = torch.randint(0, 3, SHAPE, generator=g)
    return data


def test_prepare_batch_takes_images_as_float32_and_labels_as_given():
    data = batch_dict()
    data["moving_image"] = data["moving_image"].double()
    batch = prepare_registration_batch(data, "cpu")
    assert batch.moving.dtype == batch.fixed.dtype == torch.float32
    torch.testing.assert_close(batch.moving, data["moving_image"].float())
    torch.testing.assert_close(batch.fixed, data["fixed_image"])
    assert batch.has_labels
    assert torch.equal(batch.moving_label, data["moving_label"]) and batch.moving_label.dtype == torch.int64
    assert torch.equal(batch.fixed_label, data["fixed_label"])


@pytest.mark.parametrize("present", ["moving_label", "fixed_label"])
def test_labels_are_used_only_when_both_are_present(present):
    data = batch_dict(labels=False)
    data[present] = torch.zeros(1, 1, 8, 8, 8, dtype=torch.int64)  # a lone label is ignored, not even checked
    batch = prepare_registration_batch(data)
    assert batch.moving_label is None and batch.fixed_label is None
    assert not batch.has_labels


@pytest.mark.parametrize("missing", ["moving_image", "fixed_image"])
def test_a_missing_image_key_lists_the_keys_present(missing):
    data = batch_dict()
    del data[missing]
    message = f"registration batch needs {missing!r}; it has {sorted(data)}."
    with pytest.raises(KeyError, match=re.escape(message)):
        prepare_registration_batch(data)


def test_a_batch_that_is_not_a_dict_raises():
    with pytest.raises(TypeError, match="must be a dict of tensors, got list"):
        prepare_registration_batch([torch.zeros(SHAPE), torch.zeros(SHAPE)])


def test_a_pair_with_different_shapes_names_both_keys():
    data = batch_dict(labels=False)
    data["moving_image"] = torch.zeros(2, 1, 16, 16, 8)
    with pytest.raises(
        ValueError,
        match=r"moving_image \(moving_image\) has shape \(2, 1, 16, 16, 8\), but fixed_image \(fixed_image\) has "
        r"\(2, 1, 16, 16, 16\): a pair must share one grid",
    ):
        prepare_registration_batch(data)


def test_a_label_with_another_shape_is_named():
    data = batch_dict()
    data["fixed_label"] = torch.zeros(2, 1, 16, 8, 16, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"fixed_label \(fixed_label\) has shape \(2, 1, 16, 8, 16\)"):
        prepare_registration_batch(data)


def test_a_shape_mismatch_names_the_files_from_meta_data():
    affine = np.eye(4)
    items = [
        {
            "moving_image": MetaTensor(torch.zeros(1, 16, 16, 8), affine=affine, meta={"filename_or_obj": "/d/m.nii"}),
            "fixed_image": MetaTensor(torch.zeros(1, 16, 16, 16), affine=affine, meta={"filename_or_obj": "/d/f.nii"}),
        }
    ]
    data = next(iter(DataLoader(items, batch_size=1)))
    assert isinstance(data["moving_image"], MetaTensor)
    with pytest.raises(ValueError, match=r"moving_image \(/d/m\.nii\) has shape .* but fixed_image \(/d/f\.nii\) has"):
        prepare_registration_batch(data)


@pytest.mark.parametrize(
    "shape",
    [(1, 16, 16, 16), (2, 2, 16, 16, 16), (2, 1, 16, 16, 16, 1)],
    ids=["4d", "two-channels", "6d"],
)
def test_a_tensor_that_is_not_b1xyz_raises(shape):
    data = batch_dict(labels=False)
    data["fixed_image"] = torch.zeros(shape)
    message = f"fixed_image (fixed_image) must be a (B, 1, X, Y, Z) batch, got shape {tuple(shape)}."
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare_registration_batch(data)


def test_network_input_puts_moving_first_and_reverse_swaps():
    batch = prepare_registration_batch(batch_dict(labels=False))
    image = batch.network_input()
    assert image.shape == (2, 2, 16, 16, 16)
    assert torch.equal(image[:, :1], batch.moving) and torch.equal(image[:, 1:], batch.fixed)
    reverse = batch.network_input(reverse=True)
    assert torch.equal(reverse[:, :1], batch.fixed) and torch.equal(reverse[:, 1:], batch.moving)


def test_plain_drops_meta_tensors():
    meta = MetaTensor(torch.rand(SHAPE), meta={"filename_or_obj": "x"})
    batch = RegistrationBatch(moving=meta, fixed=meta.clone(), moving_label=None, fixed_label=meta.clone().long())
    plain = batch.plain()
    assert all(type(value) is torch.Tensor for value in (plain.moving, plain.fixed, plain.fixed_label))
    assert plain.moving_label is None
    assert torch.equal(plain.moving, meta.as_tensor())


@pytest.mark.parametrize("stages", ["AD", "DA"])
def test_split_records_of_a_doubled_batch_equal_the_two_halves_run_separately(tiny_vtn, stages):
    network = tiny_vtn(stages).eval()
    batch = prepare_registration_batch(batch_dict(labels=False))
    forward_input, reverse_input = batch.network_input(), batch.network_input(reverse=True)
    with torch.no_grad():
        doubled = network(torch.cat([forward_input, reverse_input]), return_stages=True)
        first, second = split_records(doubled, forward_input.shape[0])
        expected_first = network(forward_input, return_stages=True)
        expected_second = network(reverse_input, return_stages=True)
    assert len(first) == len(second) == len(stages)
    for got, expected in zip(first + second, expected_first + expected_second):
        assert got.kind == expected.kind
        for name in ("flow", "composed_flow", "warped", "matrix", "translation"):
            value, reference = getattr(got, name), getattr(expected, name)
            if reference is None:
                assert value is None
            else:
                assert value.shape == reference.shape
                torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)


def test_a_known_answer_travels_with_the_batch_and_a_wrong_shape_is_refused():
    data = batch_dict(labels=False)
    data["target_ddf"] = torch.rand(2, 3, 16, 16, 16).double()
    batch = prepare_registration_batch(data, "cpu")
    torch.testing.assert_close(batch.target_ddf, data["target_ddf"].float())
    assert prepare_registration_batch(batch_dict(), "cpu").target_ddf is None
    data["target_ddf"] = torch.rand(2, 3, 8, 8, 8)
    with pytest.raises(
        ValueError, match=r"target_ddf has shape \(2, 3, 8, 8, 8\), but fixed_image .* \(2, 1, 16, 16, 16\)"
    ):
        prepare_registration_batch(data, "cpu")
