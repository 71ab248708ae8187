"""RegistrationObjective and its terms: which stage record each term reads, the weighted total, and the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.networks.blocks import Warp
from torch import nn

from monai_mine.losses import (
    AffineTerm,
    CorrelationCoefficientLoss,
    DisplacementTerm,
    EndPointErrorLoss,
    FlowTerm,
    InvertibilityLoss,
    InvertibilityTerm,
    LabelTerm,
    MINELoss,
    OrthogonalityLoss,
    RegistrationObjective,
    RegistrationOutputs,
    SimilarityTerm,
    TotalVariationLoss,
)
from monai_mine.networks.mine_critic import MINECritic
from monai_mine.stages import StageRecord

BATCH, SIZE = 2, 8


def _rand(*shape: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=generator)


def make_records(seed: int = 0) -> list[StageRecord]:
    """An affine record then a dense one, every tensor distinct, so that reading the wrong one changes values."""
    g = torch.Generator().manual_seed(seed)
    grid = (BATCH, 3, SIZE, SIZE, SIZE)
    image = (BATCH, 1, SIZE, SIZE, SIZE)
    affine = StageRecord(
        kind="affine",
        flow=_rand(*grid, generator=g),
        composed_flow=_rand(*grid, generator=g, scale=1.5),
        warped=torch.rand(*image, generator=g),
        matrix=_rand(BATCH, 3, 3, generator=g, scale=0.1),
        translation=_rand(BATCH, 3, generator=g),
    )
    dense = StageRecord(
        kind="dense",
        flow=_rand(*grid, generator=g),
        composed_flow=_rand(*grid, generator=g, scale=1.5),
        warped=torch.rand(*image, generator=g),
    )
    return [affine, dense]


def make_outputs(labels: bool = False, reverse: bool = False, seed: int = 0) -> RegistrationOutputs:
    g = torch.Generator().manual_seed(seed + 100)
    image = (BATCH, 1, SIZE, SIZE, SIZE)
    outputs = RegistrationOutputs(
        moving=torch.rand(*image, generator=g), fixed=torch.rand(*image, generator=g), records=make_records(seed)
    )
    if labels:
        outputs.moving_label = torch.randint(0, 3, image, generator=g)
        outputs.fixed_label = torch.randint(0, 3, image, generator=g)
    if reverse:
        outputs.reverse_records = make_records(seed + 1)
    return outputs


# ------------------------------------------------------------------------------------------- the stage each term reads


@pytest.mark.parametrize("stage, index", [(0, 0), (1, 1), (-1, 1), (-2, 0)])
def test_similarity_term_reads_the_warped_image_of_its_stage(stage, index):
    outputs = make_outputs()
    term = SimilarityTerm(nn.MSELoss(), stage=stage, name="mse")
    expected = F.mse_loss(outputs.records[index].warped, outputs.fixed)
    other = F.mse_loss(outputs.records[1 - index].warped, outputs.fixed)
    assert not torch.isclose(expected, other)
    torch.testing.assert_close(term.value(outputs), expected)


def test_similarity_term_with_correlation_coefficient_matches_the_loss_on_the_record():
    outputs = make_outputs()
    value = SimilarityTerm(CorrelationCoefficientLoss(), stage=0).value(outputs)
    torch.testing.assert_close(value, CorrelationCoefficientLoss()(outputs.records[0].warped, outputs.fixed))


def test_flow_term_reads_the_stage_own_flow_not_the_composed_one():
    outputs = make_outputs()
    value = FlowTerm(TotalVariationLoss(), stage=-1).value(outputs)
    torch.testing.assert_close(value, TotalVariationLoss()(outputs.records[1].flow))
    assert not torch.isclose(value, TotalVariationLoss()(outputs.records[1].composed_flow))


def test_affine_term_reads_the_affine_matrix():
    outputs = make_outputs()
    value = AffineTerm(OrthogonalityLoss(), stage=0).value(outputs)
    torch.testing.assert_close(value, OrthogonalityLoss()(outputs.records[0].matrix))


def test_affine_term_on_a_dense_stage_names_the_term():
    with pytest.raises(ValueError, match=r"loss term 'orthogonality' needs an affine stage, but stage -1 is dense"):
        AffineTerm(OrthogonalityLoss(), stage=-1, name="orthogonality").value(make_outputs())


@pytest.mark.parametrize("stage", [2, -3])
def test_stage_beyond_the_cascade_names_the_term_and_the_stage(stage):
    term = SimilarityTerm(nn.MSELoss(), stage=stage, name="cc_late")
    with pytest.raises(ValueError, match=rf"loss term 'cc_late' reads stage {stage}, but only 2 stages ran"):
        term.value(make_outputs())


# ------------------------------------------------------------------------------------------------------- label term


def _hand_label_dice(outputs: RegistrationOutputs, stage: int, num_classes: int) -> torch.Tensor:
    """One-hot both label maps, warp the moving one trilinearly with MONAI's Warp, Dice without background."""
    moving = F.one_hot(outputs.moving_label[:, 0], num_classes).permute(0, 4, 1, 2, 3).float()
    fixed = F.one_hot(outputs.fixed_label[:, 0], num_classes).permute(0, 4, 1, 2, 3).float()
    warped = Warp(mode="bilinear", padding_mode="border")(moving, outputs.records[stage].composed_flow)
    return DiceLoss(include_background=False)(warped, fixed)


@pytest.mark.parametrize("stage", [0, -1])
def test_label_term_matches_one_hot_warp_and_dice_by_hand(stage):
    outputs = make_outputs(labels=True)
    term = LabelTerm(DiceLoss(include_background=False), stage=stage, name="dice")
    expected = _hand_label_dice(outputs, stage, num_classes=3)
    torch.testing.assert_close(term.value(outputs), expected)
    assert not torch.isclose(expected, _hand_label_dice(outputs, 1 if stage == 0 else 0, num_classes=3))


class _ShapeRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(pred.shape))
        assert pred.shape == target.shape
        return (pred - target).abs().mean()


@pytest.mark.parametrize("num_classes, expected", [(None, 3), (5, 5)])
def test_label_term_one_hot_classes_default_to_the_largest_label_plus_one(num_classes, expected):
    outputs = make_outputs(labels=True)
    assert int(max(outputs.moving_label.max(), outputs.fixed_label.max())) == 2
    recorder = _ShapeRecorder()
    LabelTerm(recorder, num_classes=num_classes).value(outputs)
    assert recorder.shapes == [(BATCH, expected, SIZE, SIZE, SIZE)]


def test_label_term_is_differentiable_in_the_flow():
    outputs = make_outputs(labels=True)
    flow = outputs.records[-1].composed_flow.requires_grad_(True)
    LabelTerm(DiceLoss(include_background=False)).value(outputs).backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0


@pytest.mark.parametrize("missing", ["moving_label", "fixed_label"])
def test_label_term_without_labels_raises_naming_the_term(missing):
    outputs = make_outputs(labels=True)
    setattr(outputs, missing, None)
    with pytest.raises(ValueError, match=r"loss term 'dice' needs moving_label and fixed_label"):
        LabelTerm(DiceLoss(), name="dice").value(outputs)


# ----------------------------------------------------------------------------------------------- invertibility term


@pytest.mark.parametrize("stage", [0, -1])
def test_invertibility_term_compares_forward_and_reverse_composed_flows(stage):
    outputs = make_outputs(reverse=True)
    value = InvertibilityTerm(InvertibilityLoss(), stage=stage).value(outputs)
    expected = InvertibilityLoss()(outputs.records[stage].composed_flow, outputs.reverse_records[stage].composed_flow)
    torch.testing.assert_close(value, expected)
    assert value > 0


def test_invertibility_term_without_reverse_records_raises():
    with pytest.raises(ValueError, match=r"loss term 'inv' needs the reverse pass \(fixed -> moving\)"):
        InvertibilityTerm(InvertibilityLoss(), name="inv").value(make_outputs())


# -------------------------------------------------------------------------------------------------- displacement term


def test_end_point_error_is_the_mean_vector_distance():
    pred = torch.zeros(2, 3, 4, 4, 4)
    target = pred.clone()
    target[0, 0], target[0, 1] = 3.0, 4.0  # distance 5 everywhere in sample 0, 0 in sample 1
    torch.testing.assert_close(
        EndPointErrorLoss(reduction="none")(pred, target), torch.tensor([5.0, 0.0]), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(EndPointErrorLoss()(pred, target), torch.tensor(2.5), atol=2e-3, rtol=0)  # eps: 1e-3
    pred.requires_grad_(True)
    EndPointErrorLoss()(pred, pred.detach()).backward()
    assert torch.isfinite(pred.grad).all()  # finite where the fields agree
    with pytest.raises(
        ValueError, match=r"pred \(2, 3, 4, 4, 4\) and target \(2, 3, 2, 2, 2\) must have the same shape"
    ):
        EndPointErrorLoss()(pred, torch.zeros(2, 3, 2, 2, 2))


@pytest.mark.parametrize("stage", [0, -1])
def test_displacement_term_compares_the_composed_flow_with_the_known_answer(stage):
    outputs = make_outputs()
    outputs.target_ddf = torch.zeros_like(outputs.records[-1].composed_flow)
    value = DisplacementTerm(EndPointErrorLoss(), stage=stage).value(outputs)
    torch.testing.assert_close(value, outputs.records[stage].composed_flow.norm(dim=1).mean(), atol=2e-3, rtol=0)


def test_displacement_term_without_a_known_answer_says_how_to_make_one():
    with pytest.raises(ValueError, match=r"loss term 'epe' needs the known answer 'target_ddf' .* RandIdentityPaird"):
        DisplacementTerm(EndPointErrorLoss(), name="epe").value(make_outputs())


# --------------------------------------------------------------------------------------------------------- objective


def test_total_is_the_weighted_sum_and_a_zero_weight_term_is_still_reported():
    outputs = make_outputs()
    objective = RegistrationObjective(
        [
            SimilarityTerm(nn.MSELoss(), weight=1.0, stage=0, name="mse_affine"),
            SimilarityTerm(CorrelationCoefficientLoss(), weight=2.0, stage=-1, name="cc"),
            FlowTerm(TotalVariationLoss(), weight=0.5, stage=-1, name="tv"),
            AffineTerm(OrthogonalityLoss(), weight=0.0, stage=0, name="orthogonality"),
        ]
    )
    total, values = objective(outputs)
    assert list(values) == ["mse_affine", "cc", "tv", "orthogonality"]
    expected = {
        "mse_affine": F.mse_loss(outputs.records[0].warped, outputs.fixed),
        "cc": CorrelationCoefficientLoss()(outputs.records[1].warped, outputs.fixed),
        "tv": TotalVariationLoss()(outputs.records[1].flow),
        "orthogonality": OrthogonalityLoss()(outputs.records[0].matrix),
    }
    for name, value in expected.items():
        torch.testing.assert_close(values[name], value)
    assert values["orthogonality"] > 0  # reported although it does not count
    torch.testing.assert_close(total, expected["mse_affine"] + 2.0 * expected["cc"] + 0.5 * expected["tv"])
    assert total.ndim == 0 and total.dtype == torch.float32


def test_total_carries_gradients_while_reported_values_are_detached():
    outputs = make_outputs()
    warped = outputs.records[-1].warped.requires_grad_(True)
    objective = RegistrationObjective([SimilarityTerm(nn.MSELoss(), name="mse")])
    total, values = objective(outputs)
    assert total.requires_grad and not values["mse"].requires_grad
    total.backward()
    assert warped.grad is not None and warped.grad.abs().sum() > 0


def test_a_zero_weight_term_gives_no_gradient():
    outputs = make_outputs()
    first = outputs.records[0].warped.requires_grad_(True)
    last = outputs.records[1].warped.requires_grad_(True)
    objective = RegistrationObjective(
        [
            SimilarityTerm(nn.MSELoss(), weight=0.0, stage=0, name="monitor"),
            SimilarityTerm(nn.MSELoss(), weight=1.0, stage=1, name="train"),
        ]
    )
    objective(outputs)[0].backward()
    assert first.grad is None or torch.count_nonzero(first.grad) == 0
    assert torch.count_nonzero(last.grad) > 0


def test_default_term_name_is_loss_class_and_stage():
    assert SimilarityTerm(nn.MSELoss(), stage=0).name == "MSELoss_stage0"
    assert FlowTerm(TotalVariationLoss()).name == "TotalVariationLoss_stage-1"


def test_repeated_names_raise_listing_them():
    terms = [
        SimilarityTerm(nn.MSELoss(), stage=0, name="sim"),
        SimilarityTerm(nn.MSELoss(), stage=1, name="sim"),
        FlowTerm(TotalVariationLoss(), name="tv"),
    ]
    with pytest.raises(ValueError, match=r"loss term names must be unique, repeated: \['sim'\]"):
        RegistrationObjective(terms)


def test_default_names_of_the_same_loss_on_the_same_stage_collide():
    with pytest.raises(ValueError, match=r"repeated: \['MSELoss_stage-1'\]"):
        RegistrationObjective([SimilarityTerm(nn.MSELoss()), SimilarityTerm(nn.MSELoss())])


def test_an_objective_without_terms_raises():
    with pytest.raises(ValueError, match="needs at least one loss term, got none"):
        RegistrationObjective([])


def test_a_negative_weight_raises_naming_the_loss():
    with pytest.raises(ValueError, match=r"weight of a loss term must be >= 0, got -0.5 for MSELoss"):
        SimilarityTerm(nn.MSELoss(), weight=-0.5)


def test_needs_labels_and_needs_reverse_follow_the_terms():
    plain = RegistrationObjective([SimilarityTerm(nn.MSELoss()), FlowTerm(TotalVariationLoss())])
    assert not plain.needs_labels and not plain.needs_reverse
    labelled = RegistrationObjective([SimilarityTerm(nn.MSELoss()), LabelTerm(DiceLoss())])
    assert labelled.needs_labels and not labelled.needs_reverse
    inverse = RegistrationObjective([SimilarityTerm(nn.MSELoss()), InvertibilityTerm(InvertibilityLoss())])
    assert inverse.needs_reverse and not inverse.needs_labels


def test_objective_parameters_are_the_mine_critic_parameters():
    critic = MINECritic(branch_channels=(4,), head_channels=(8,))
    objective = RegistrationObjective([SimilarityTerm(MINELoss(critic=critic)), FlowTerm(TotalVariationLoss())])
    assert {id(p) for p in objective.parameters()} == {id(p) for p in critic.parameters()}
    assert len(list(objective.parameters())) > 0
