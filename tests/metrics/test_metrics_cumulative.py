"""LabelDiceMetric and JacobianFoldingMetric: MONAI cumulative metrics, alone and through IgniteMetricHandler."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler, from_engine

from monai_mine.metrics import JacobianFoldingMetric, LabelDiceMetric

SIZE = 16


def box(side: int, shift: int = 0, label: int = 1, start: int = 2) -> torch.Tensor:
    """Label map (1, 1, 16, 16, 16): a cube of ``side`` voxels from ``start``, shifted by ``shift`` along X."""
    if start + shift + side > SIZE:
        raise ValueError(f"the box must fit in the {SIZE}^3 volume, got start + shift + side = {start + shift + side}.")
    label_map = torch.zeros(1, 1, SIZE, SIZE, SIZE, dtype=torch.long)
    label_map[..., start + shift : start + shift + side, start : start + side, start : start + side] = label
    return label_map


def folding_ddf() -> torch.Tensor:
    """A reflection along X: det -1 everywhere, 100 % folding. Shape (1, 3, 16, 16, 16)."""
    ddf = torch.zeros(1, 3, SIZE, SIZE, SIZE)
    ddf[0, 0] = -2 * (torch.arange(SIZE, dtype=torch.float32) - (SIZE - 1) / 2)[:, None, None]
    return ddf


def run_engine(outputs: list, handler, name: str) -> Engine:
    engine = Engine(lambda engine, batch: outputs[batch])
    handler.attach(engine, name)
    engine.run(list(range(len(outputs))), max_epochs=1)
    return engine


def test_label_dice_metric_aggregates_mean_over_pairs():
    metric = LabelDiceMetric()
    # pair 1: label 1 shifted by 2 of 10 voxels (Dice 0.8)
    per_pair = metric(box(10, shift=2), box(10))
    assert per_pair.shape == (1, 1) and float(per_pair) == pytest.approx(0.8)
    # pair 2: label 1 exact (Dice 1), label 2 shifted by 2 of 6 voxels (Dice 2/3): mean 5/6
    metric(box(4) + box(6, shift=2, label=2, start=8), box(4) + box(6, label=2, start=8))
    assert float(metric.aggregate()) == pytest.approx((0.8 + 5 / 6) / 2)
    metric.reset()
    with pytest.raises(ValueError, match=r"LabelDiceMetric has no buffered values to aggregate"):
        metric.aggregate()


def test_label_dice_metric_skips_pairs_without_labels():
    metric = LabelDiceMetric(get_not_nans=True)
    empty = torch.zeros(1, 1, SIZE, SIZE, SIZE, dtype=torch.long)
    metric(torch.cat([box(8, shift=4), empty]), torch.cat([box(8), empty]))
    value, not_nans = metric.aggregate()
    assert float(value) == pytest.approx(0.5) and float(not_nans) == 1.0
    assert math.isnan(metric.get_buffer()[1, 0])


def test_label_dice_metric_accepts_lists_of_channel_first_maps():
    metric = LabelDiceMetric()
    metric([box(10, shift=2)[0], box(10)[0]], [box(10)[0], box(10)[0]])
    assert float(metric.aggregate()) == pytest.approx(0.9)


def test_label_dice_metric_requires_label():
    with pytest.raises(ValueError, match=r"y \(the fixed label map, shape \(B, 1, X, Y, Z\)\) is required"):
        LabelDiceMetric()(box(4))


def test_jacobian_folding_metric():
    metric = JacobianFoldingMetric()
    metric(torch.cat([folding_ddf(), torch.zeros(1, 3, SIZE, SIZE, SIZE)]))
    assert float(metric.aggregate()) == pytest.approx(50.0)
    with pytest.raises(ValueError, match=r"ddf must have shape \(B, 3, X, Y, Z\)"):
        metric(torch.zeros(1, 1, SIZE, SIZE, SIZE))


def test_label_dice_through_ignite_metric_handler_on_evaluator_output():
    # a list of per-pair dicts, as RegistrationEvaluator produces after decollation
    outputs = [
        [{"warped_label": box(10, shift=2)[0], "fixed_label": box(10)[0]}],  # Dice 0.8
        [{"warped_label": box(8, shift=4)[0], "fixed_label": box(8)[0]}],  # Dice 0.5
    ]
    handler = IgniteMetricHandler(LabelDiceMetric(), output_transform=from_engine(["warped_label", "fixed_label"]))
    engine = run_engine(outputs, handler, "dice")
    assert engine.state.metrics["dice"] == pytest.approx(0.65)
    torch.testing.assert_close(engine.state.metric_details["dice"], torch.tensor([[0.8], [0.5]], dtype=torch.float64))


def test_jacobian_folding_through_ignite_metric_handler():
    outputs = [{"pred": folding_ddf()}, {"pred": torch.zeros(1, 3, SIZE, SIZE, SIZE)}]
    handler = IgniteMetricHandler(JacobianFoldingMetric(), output_transform=lambda output: (output["pred"], None))
    engine = run_engine(outputs, handler, "folding_percent")
    assert engine.state.metrics["folding_percent"] == pytest.approx(50.0)
    assert engine.state.metric_details["folding_percent"].shape == (2, 1)
