# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Ignite handlers of the registration metrics, in the pattern of ``monai.handlers.MeanDice``.

Attach them to an evaluator (``handler.attach(engine, "label_dice")``, or list them in a bundle's
``val_key_metric`` / ``additional_metrics``): at the end of each run ``engine.state.metrics[name]`` holds the mean
over pairs, and with ``save_details`` ``engine.state.metric_details[name]`` the (N, 1) per-pair values.
"""

from __future__ import annotations

from typing import Callable

from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import MetricReduction

from monai_mine.metrics._checks import LabelsLike
from monai_mine.metrics.cumulative import JacobianFoldingMetric, LabelDiceMetric

__all__ = ["LabelDice", "JacobianFolding"]


class LabelDice(IgniteMetricHandler):
    """Mean Dice per pair of integer label maps, averaged over the pairs of a run (:class:`LabelDiceMetric`).

    ``output_transform`` must return ``(pred, label)`` where ``pred`` is the **warped moving label map** and
    ``label`` the **fixed label map**, integer Tensors in shape (B, 1, X, Y, Z) (or lists of (1, X, Y, Z)).
    """

    def __init__(
        self,
        labels: LabelsLike = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = from_engine(["pred", "label"]),
        save_details: bool = True,
    ) -> None:
        """
        Args:
            labels: labels to average over; defaults to the non-zero labels present in either map of each pair.
            reduction: MONAI ``MetricReduction`` over the buffered (N, 1) per-pair values; ``"mean"`` by default.
            output_transform: extracts ``(pred, label)`` from ``engine.state.output``; the default
                ``monai.handlers.from_engine(["pred", "label"])`` reads the keys ``"pred"`` (warped moving label
                map) and ``"label"`` (fixed label map) of a dict output or of a list of dicts.
            save_details: whether to store the per-pair values in ``engine.state.metric_details[name]``.
        """
        metric_fn = LabelDiceMetric(labels=labels, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class JacobianFolding(IgniteMetricHandler):
    """Folding percentage per DDF, averaged over the pairs of a run (:class:`JacobianFoldingMetric`).

    ``output_transform`` must return ``(pred, label)`` where ``pred`` is the **DDF**, a Tensor in shape
    (B, 3, X, Y, Z) in voxels (or a list of (3, X, Y, Z)); ``label`` is ignored and may be ``None``.
    """

    def __init__(
        self,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = from_engine(["pred", "label"]),
        save_details: bool = True,
    ) -> None:
        """
        Args:
            reduction: MONAI ``MetricReduction`` over the buffered (N, 1) per-pair values; ``"mean"`` by default.
            output_transform: extracts ``(pred, label)`` from ``engine.state.output``; the default
                ``monai.handlers.from_engine(["pred", "label"])`` reads the keys ``"pred"`` (the DDF) and
                ``"label"`` (ignored) of a dict output. When the output holds the DDF under another key and has no
                label, pass e.g. ``lambda output: (output["ddf"], None)``.
            save_details: whether to store the per-pair values in ``engine.state.metric_details[name]``.
        """
        metric_fn = JacobianFoldingMetric(reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
