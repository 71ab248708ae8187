"""RandContrastRemapd: a new, repeatable random contrast per image, in [0, 1], labels and other keys untouched."""

from __future__ import annotations

import pytest
import torch

from monai_mine.transforms import RandContrastRemapd
from monai_mine.transforms.contrast import piecewise_linear


def _tissues(size: int = 16) -> torch.Tensor:
    """Three tissues of intensity 0.2, 0.5 and 0.8 in slabs along the first axis, (1, X, Y, Z)."""
    image = torch.full((1, size, size, size), 0.2)
    image[:, size // 3 :] = 0.5
    image[:, 2 * size // 3 :] = 0.8
    return image


def test_piecewise_linear_hits_its_knots_and_interpolates_between_them():
    values = torch.tensor([1.0, 0.0, 0.5])
    image = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, -1.0])
    torch.testing.assert_close(piecewise_linear(image, values), torch.tensor([1.0, 0.5, 0.0, 0.25, 0.5, 0.5, 1.0]))


def test_output_is_in_the_unit_range_repeatable_and_new_at_every_call():
    first, second = RandContrastRemapd(keys=["image"]), RandContrastRemapd(keys=["image"])
    first.set_random_state(3)
    second.set_random_state(3)
    a, b = first({"image": _tissues()})["image"], second({"image": _tissues()})["image"]
    torch.testing.assert_close(a, b)
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0
    again = first({"image": _tissues()})["image"]
    assert (again - a).abs().max() > 0.05


def test_non_monotone_functions_reorder_tissues_and_monotone_ones_keep_or_reverse_them():
    image = _tissues()
    orders = {"monotone": set(), "any": set()}
    for name, probability in (("monotone", 1.0), ("any", 0.0)):
        transform = RandContrastRemapd(keys=["image"], monotone_prob=probability, bias=0.0, gamma=0.0, noise=0.0)
        transform.set_random_state(0)
        for _ in range(30):
            out = transform({"image": image})["image"][0]
            means = [float(out[i].mean()) for i in (0, 8, 15)]  # one plane inside each slab
            orders[name].add(tuple(sorted(range(3), key=means.__getitem__)))
    assert orders["monotone"] <= {(0, 1, 2), (2, 1, 0)}
    assert len(orders["any"]) > 2


def test_only_listed_keys_change_and_each_key_gets_its_own_draw():
    pair = {"moving_image": _tissues(), "fixed_image": _tissues(), "moving_label": torch.ones(1, 16, 16, 16)}
    transform = RandContrastRemapd(keys=["moving_image", "fixed_image"])
    transform.set_random_state(5)
    out = transform(pair)
    assert (out["moving_image"] - out["fixed_image"]).abs().max() > 0.05
    assert out["moving_label"] is pair["moving_label"]
    assert torch.equal(pair["moving_image"], _tissues())  # the input is not modified


def test_probability_zero_leaves_images_alone():
    image = _tissues()
    assert RandContrastRemapd(keys=["image"], prob=0.0)({"image": image})["image"] is image


@pytest.mark.parametrize(
    "settings, message",
    [({"bands": 0}, "bands must be at least 1"), ({"noise": -1}, "must be >= 0"), ({"monotone_prob": 2}, "in [0, 1]")],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RandContrastRemapd(**settings)
