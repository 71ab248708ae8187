# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias of ``monai_mine.apps.learn2reg`` (the Learn2Reg submissions), kept for one release.

``monai_mine.learn2reg.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = homes(
    "monai_mine.apps.learn2reg",
    (
        "evaluate_displacement",
        "evaluate_learn2reg",
        "export_displacement",
        "export_learn2reg",
        "LEARN2REG_METRICS",
    ),
)
"""The new home of each name of the old ``monai_mine.learn2reg``."""

__getattr__ = moved_names(__name__, MOVED)
