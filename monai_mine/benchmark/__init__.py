# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias, kept for one release: the benchmarks are now ``monai_mine.apps.benchmark`` and the brain
template ``monai_mine.apps.template``.

``monai_mine.benchmark.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = {
    **homes(
        "monai_mine.apps.benchmark",
        (
            "ants_syn",
            "BenchmarkPair",
            "elastix_affine_bspline",
            "make_pair",
            "run_benchmark",
            "TRACKS",
        ),
    ),
    **homes(
        "monai_mine.apps.template",
        (
            "BrainTemplate",
            "build_template",
        ),
    ),
}
"""The new home of each name of the old ``monai_mine.benchmark``."""

__getattr__ = moved_names(__name__, MOVED)
