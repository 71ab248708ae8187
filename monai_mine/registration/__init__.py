# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias, kept for one release: the registration of image files is now ``monai_mine.apps.registration``
and instance optimisation ``monai_mine.optimization``.

``monai_mine.registration.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = {
    **homes(
        "monai_mine.apps.registration",
        (
            "closest_ras_grid",
            "ddf_to_grid",
            "Grid",
            "jacobian_file",
            "load_ddf",
            "load_volume",
            "physical_displacement",
            "register_files",
            "register_volumes",
            "RegistrationReport",
            "RegistrationResult",
            "resample_to_grid",
            "save_ddf",
            "save_volume",
            "Volume",
            "warp_file",
            "warp_to_grid",
            "working_grid",
        ),
    ),
    **homes(
        "monai_mine.optimization",
        (
            "InstanceOptimization",
            "InstanceOptimizationInferer",
            "InstanceOptimizer",
        ),
    ),
}
"""The new home of each name of the old ``monai_mine.registration``."""

__getattr__ = moved_names(__name__, MOVED)
