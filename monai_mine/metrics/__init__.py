# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration metrics: label overlap, surface distances (mm), Jacobian regularity and landmark TRE (mm).

Functions take batched tensors and return per-sample, per-label values (NaN where a label cannot be measured);
:func:`registration_metrics` gathers them per pair as floats for evaluation; :class:`LabelDiceMetric` and
:class:`JacobianFoldingMetric` are MONAI cumulative metrics, which MONAI's ``IgniteMetricHandler`` attaches to
an engine, e.g. to a :class:`~monai_mine.engines.RegistrationEvaluator`::

    IgniteMetricHandler(LabelDiceMetric(), output_transform=from_engine(["warped_label", "fixed_label"]))

Conventions: a DDF is (B, 3, X, Y, Z) in voxels with ``warped(x) = moving(x + ddf(x))``; label maps are integer
(B, 1, X, Y, Z) with 0 as background; spacing is 3 floats in mm (per axis) or per-sample (B, 3).
"""

from __future__ import annotations

from monai_mine.metrics.cumulative import JacobianFoldingMetric, LabelDiceMetric
from monai_mine.metrics.jacobian import JACOBIAN_EPS, jacobian_statistics
from monai_mine.metrics.landmarks import sample_ddf_at_points, target_registration_error
from monai_mine.metrics.overlap import dice_per_label, iou_per_label, present_labels
from monai_mine.metrics.pair import JACOBIAN_KEYS, LABEL_METRICS, registration_metrics
from monai_mine.metrics.surface import average_surface_distance_per_label, hausdorff_distance_per_label

__all__ = [
    "JACOBIAN_EPS",
    "JACOBIAN_KEYS",
    "LABEL_METRICS",
    "JacobianFoldingMetric",
    "LabelDiceMetric",
    "average_surface_distance_per_label",
    "dice_per_label",
    "hausdorff_distance_per_label",
    "iou_per_label",
    "jacobian_statistics",
    "present_labels",
    "registration_metrics",
    "sample_ddf_at_points",
    "target_registration_error",
]
