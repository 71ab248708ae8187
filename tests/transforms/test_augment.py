"""RandPairDeformd: a new, repeatable random deformation of the moving image and its label at every call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_mine.flows import compose_ddf, invert_ddf, warp
from monai_mine.transforms import RandIdentityPaird, RandPairDeformd
from monai_mine.transforms.augment import known_answer, random_rotation


def _pair(size: int = 24) -> dict[str, torch.Tensor]:
    image = torch.rand(1, size, size, size, generator=torch.Generator().manual_seed(0))
    return {"moving_image": image, "moving_label": (image * 3).long(), "fixed_image": image.clone()}


def test_a_pure_translation_moves_the_image_by_the_drawn_shift():
    transform = RandPairDeformd(rotation=0, scaling=0, translation=3, deformation=0)
    transform.set_random_state(1)
    ramp = torch.arange(24.0)[:, None, None].expand(24, 24, 24)[None]
    out = transform({"moving_image": ramp})
    shift = transform._shift
    assert np.abs(shift).max() > 0.5  # a real draw
    inside = out["moving_image"][0, 4:-4, 4:-4, 4:-4]  # away from the border padding
    torch.testing.assert_close(inside, ramp[0, 4:-4, 4:-4, 4:-4] + float(shift[0]), atol=1e-4, rtol=0)


def test_draws_are_repeatable_under_a_seed_and_new_at_every_call():
    first, second = RandPairDeformd(), RandPairDeformd()
    first.set_random_state(7)
    second.set_random_state(7)
    a, b = first(_pair()), second(_pair())
    torch.testing.assert_close(a["moving_image"], b["moving_image"])
    again = first(_pair())
    assert (again["moving_image"] - a["moving_image"]).abs().max() > 0.1


def test_only_the_moving_side_changes_and_labels_stay_labels():
    pair = _pair()
    transform = RandPairDeformd()
    transform.set_random_state(0)
    out = transform(pair)
    assert torch.equal(out["fixed_image"], pair["fixed_image"])
    assert (out["moving_image"] - pair["moving_image"]).abs().mean() > 0.05
    assert out["moving_label"].dtype == torch.int64
    assert set(out["moving_label"].unique().tolist()) <= set(pair["moving_label"].unique().tolist())


def test_displacement_is_smooth_and_bounded():
    transform = RandPairDeformd(rotation=5, scaling=0.05, translation=2, deformation=3)
    transform.set_random_state(3)
    transform.randomize()
    ddf = transform.displacement((32, 32, 32))
    # rotation 5 deg and scaling 5 % of a radius of 16 voxels, plus the translation and the smooth part
    assert ddf.abs().max() < 16 * (np.deg2rad(5) * 3 + 0.05) + 2 * 3**0.5 + 3 * 3**0.5
    assert (ddf[:, :, 1:] - ddf[:, :, :-1]).abs().max() < 1.0  # no tearing between neighbours


def test_no_draw_and_missing_labels_leave_the_pair_alone():
    pair = _pair()
    unchanged = RandPairDeformd(prob=0.0)(pair)
    assert torch.equal(unchanged["moving_image"], pair["moving_image"])
    images_only = RandPairDeformd()({"moving_image": pair["moving_image"]})
    assert set(images_only) == {"moving_image"}


def test_rotation_matrices_are_rotations():
    matrix = random_rotation([0.3, -0.2, 0.5])
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(matrix), 1.0)


@pytest.mark.parametrize(
    "settings, message",
    [({"scaling": 1.0}, "scaling < 1"), ({"deformation": -1}, ">= 0"), ({"control_points": 1}, "at least 2")],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        RandPairDeformd(**settings)


def test_identity_pairs_copy_the_fixed_side_at_the_drawn_rate():
    transform = RandIdentityPaird(prob=0.3)
    transform.set_random_state(0)
    generator = torch.Generator().manual_seed(1)
    moving, fixed = torch.rand(2, 1, 8, 8, 8, generator=generator)
    pair = {"moving_image": moving, "fixed_image": fixed}
    pair.update(moving_label=(moving * 3).long(), fixed_label=(fixed * 3).long())
    outcomes = [transform(pair) for _ in range(200)]
    identical = [out for out in outcomes if torch.equal(out["moving_image"], fixed)]
    assert 40 <= len(identical) <= 80  # about 30 % of 200
    assert all(torch.equal(out["moving_label"], pair["fixed_label"]) for out in identical)
    assert identical[0]["moving_image"] is not fixed  # a copy
    untouched = [out for out in outcomes if not torch.equal(out["moving_image"], fixed)]
    assert all(out["moving_image"] is moving for out in untouched)
    no_fixed_label = {key: value for key, value in pair.items() if key != "fixed_label"}
    assert RandIdentityPaird(prob=1.0)(no_fixed_label)["moving_image"] is moving  # left alone


def _smooth_image(size: int = 40) -> torch.Tensor:
    axis = torch.linspace(0, 1, size)
    return (torch.sin(6 * axis)[:, None, None] * torch.cos(5 * axis)[None, :, None] * torch.sin(4 * axis + 1))[None]


def test_synthetic_pairs_carry_their_answer_through_repeated_deformations():
    fixed = _smooth_image()
    pair = RandIdentityPaird(prob=1.0, target_key="target_ddf")({"moving_image": fixed * 0, "fixed_image": fixed})
    assert torch.equal(pair["moving_image"], fixed) and torch.equal(pair["target_ddf"], torch.zeros(3, 40, 40, 40))
    deform = RandPairDeformd(deformation=3.0)
    deform.set_random_state(3)
    pair = deform(deform(pair))  # warped twice: the answer composes both
    inside = (slice(None), slice(6, -6), slice(6, -6), slice(6, -6))
    registered = warp(pair["moving_image"][None], pair["target_ddf"][None])[0]
    before = (pair["moving_image"] - fixed)[inside].abs().mean()
    after = (registered - fixed)[inside].abs().mean()
    assert before > 0.1 and after < 0.02 * before
    assert pair["target_ddf"].abs().max() > 2.0  # a real displacement, not a zero answer


def test_known_answer_matches_the_exact_inverse():
    deform = RandPairDeformd()
    deform.set_random_state(5)
    deform.randomize()
    ddf = deform.displacement((48, 48, 48))
    answer = known_answer(ddf, torch.zeros_like(ddf))
    inside = (slice(None), slice(None), *(slice(6, -6),) * 3)
    residual = compose_ddf(ddf, answer)[inside].norm(dim=1)
    naive = compose_ddf(ddf, -ddf)[inside].norm(dim=1)  # the first-order guess
    assert residual.mean() < 0.03 and residual.max() < 1.0 and naive.mean() > 10 * residual.mean()
    assert (answer - invert_ddf(ddf))[inside].norm(dim=1).mean() < 0.03  # the full-size solution


def test_a_known_answer_needs_every_pair_made_identical():
    with pytest.raises(ValueError, match=r"target_key 'target_ddf' needs prob=1 \(got 0.5\)"):
        RandIdentityPaird(prob=0.5, target_key="target_ddf")
    lacks_fixed_label = {"moving_image": torch.rand(1, 4, 4, 4), "fixed_image": torch.rand(1, 4, 4, 4)}
    lacks_fixed_label["moving_label"] = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"lacks \['fixed_label'\]: cannot make it identical"):
        RandIdentityPaird(prob=1.0, target_key="target_ddf")(lacks_fixed_label)
