# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Instance optimisation: a DDF refined on its own pair by Adam on the displacement, coarse to fine
(``docs/design.md`` section 10).

:class:`InstanceOptimizer` refines a DDF (the bundles' configs build it as ``monai_mine.optimization.
InstanceOptimizer``), :class:`InstanceOptimizationInferer` runs a network and then the optimiser inside an
evaluator or a MONAI Label infer task, and :func:`instance_optimization_schedule` is the one parser of what
``--instance_optimization`` accepts (a preset, a per-level schedule ``A/B/C`` or a number of steps), in
:mod:`monai_mine.optimization.schedule`.
"""

from __future__ import annotations

from monai_mine.optimization.instance import (
    FULL_RESOLUTION,
    SIMILARITIES,
    FeatureSimilarity,
    InstanceOptimization,
    InstanceOptimizationInferer,
    InstanceOptimizer,
    similarity_loss,
)
from monai_mine.optimization.schedule import (
    MAX_INSTANCE_STEPS,
    PRESETS,
    InstanceSchedule,
    instance_optimization_schedule,
    instance_optimization_steps,
)

__all__ = [
    "FULL_RESOLUTION",
    "MAX_INSTANCE_STEPS",
    "PRESETS",
    "SIMILARITIES",
    "FeatureSimilarity",
    "InstanceOptimization",
    "InstanceOptimizationInferer",
    "InstanceOptimizer",
    "InstanceSchedule",
    "instance_optimization_schedule",
    "instance_optimization_steps",
    "similarity_loss",
]
