"""ValidationScore: mean Dice when every pair has labels, minus a similarity loss otherwise."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from torch import nn

from monai_mine.engines import RegistrationEvaluator, ValidationScore


def labelled(warped_label: torch.Tensor, fixed_label: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "warped": torch.rand(1, 16, 16, 16, generator=g),
        "fixed": torch.rand(1, 16, 16, 16, generator=g),
        "warped_label": warped_label.float(),  # the evaluator's nearest-neighbour warp of a float label map
        "fixed_label": fixed_label,
    }


def unlabelled(seed: int = 0) -> dict[str, torch.Tensor]:
    item = labelled(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), seed)
    return {"warped": item["warped"], "fixed": item["fixed"]}


def score(items: list[dict], similarity: nn.Module | None = None, batches: int = 1) -> float:
    metric = ValidationScore(similarity)
    metric.reset()
    size = max(1, -(-len(items) // batches))
    for start in range(0, len(items), size):
        metric.update(items[start : start + size])
    return metric.compute()


def test_mean_dice_over_pairs_when_every_pair_has_labels(cube):
    perfect = labelled(cube(4, 10), cube(4, 10))
    shifted = labelled(cube(4, 10), cube(6, 12))  # 4 of 6 slices overlap: Dice 2/3
    two_labels = labelled(cube(4, 10), cube(4, 10))
    two_labels["warped_label"][:, 12:14, 12:14, 12:14] = 2  # label 2 only in the warped map: Dice 0 for it
    expected = (1.0 + 2 / 3 + (1.0 + 0.0) / 2) / 3
    assert score([perfect, shifted, two_labels]) == pytest.approx(expected)
    assert score([perfect, shifted, two_labels], batches=3) == pytest.approx(expected)
    assert score([perfect, shifted, two_labels], similarity=nn.MSELoss()) == pytest.approx(expected)


def test_minus_the_similarity_loss_when_no_pair_has_labels():
    items = [unlabelled(seed) for seed in range(3)]
    expected = -sum(float(nn.functional.mse_loss(item["warped"], item["fixed"])) for item in items) / 3
    assert score(items, similarity=nn.MSELoss()) == pytest.approx(expected)


def test_mixed_pairs_are_scored_by_similarity_alone(cube):
    items = [labelled(cube(4, 10), cube(4, 10), seed=1), unlabelled(seed=2)]
    expected = -sum(float(nn.functional.mse_loss(item["warped"], item["fixed"])) for item in items) / 2
    assert score(items, similarity=nn.MSELoss()) == pytest.approx(expected)


def test_unlabelled_pairs_without_a_similarity_raise(cube):
    items = [labelled(cube(4, 10), cube(4, 10)), unlabelled(), unlabelled(seed=3)]
    with pytest.raises(ValueError, match="2 validation pairs have no labels: give ValidationScore a similarity loss"):
        score(items)


def test_no_pairs_raise():
    with pytest.raises(ValueError, match="ValidationScore received no validation pairs"):
        score([], similarity=nn.MSELoss())


def test_reset_forgets_earlier_pairs(cube):
    metric = ValidationScore()
    metric.reset()
    metric.update([labelled(cube(4, 10), cube(6, 12))])
    metric.reset()
    metric.update([labelled(cube(4, 10), cube(4, 10))])
    assert metric.compute() == pytest.approx(1.0)


def test_as_the_key_metric_of_a_registration_evaluator(zero_flow, meta_pairs):
    """The identity transform leaves the moving cube 2 voxels from the fixed one: Dice 2/3 for every pair."""
    evaluator = RegistrationEvaluator(
        "cpu", DataLoader(meta_pairs(3), batch_size=2), zero_flow, key_val_metric={"val_score": ValidationScore()}
    )
    evaluator.run()
    assert evaluator.state.metrics["val_score"] == pytest.approx(2 / 3)
    assert evaluator.state.best_metric == pytest.approx(2 / 3)


def test_no_pairs_without_a_similarity_say_so():
    with pytest.raises(ValueError, match="ValidationScore received no validation pairs"):
        score([])
