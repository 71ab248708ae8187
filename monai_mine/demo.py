# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias of ``monai_mine.apps.demo`` (the demo), kept for one release.

``monai_mine.demo.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = homes(
    "monai_mine.apps.demo",
    (
        "DemoResult",
        "mean_dice",
        "register_synthetic_pair",
        "vtn_table1_loss",
    ),
)
"""The new home of each name of the old ``monai_mine.demo``."""

__getattr__ = moved_names(__name__, MOVED)
