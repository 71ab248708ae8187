# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias of ``monai_mine.apps.deploy`` (the MONAI Deploy adapters), kept for one release.

``monai_mine.deploy.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = homes(
    "monai_mine.apps.deploy",
    (
        "image_to_metatensor",
        "load_registration_bundle",
        "metatensor_to_image_parts",
        "read_bundle_configs",
        "RegistrationBundle",
        "WorkingGridRegistration",
    ),
)
"""The new home of each name of the old ``monai_mine.deploy``."""

__getattr__ = moved_names(__name__, MOVED)
