# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Deprecated alias of ``monai_mine.apps.label`` (the MONAI Label adapters), kept for one release.

``monai_mine.label.<name>`` gives the object of its new home with a ``DeprecationWarning``
(:mod:`monai_mine._deprecated`); this module holds nothing else.
"""

from __future__ import annotations

from monai_mine._deprecated import homes, moved_names

MOVED = homes(
    "monai_mine.apps.label",
    (
        "bundle_training_overrides",
        "BundleWeightsError",
        "check_moving_image",
        "datastore_records",
        "FINAL_LABEL_TAG",
        "FIXED_IMAGE_KEY",
        "load_bundle_network",
        "OUTPUTS",
        "PairFromRequestd",
        "prepare_app_bundles",
        "registration_datalist",
        "registration_post_transforms",
        "registration_pre_transforms",
        "registration_result_json",
        "resolve_fixed_image",
        "shipped_weights_warning",
        "split_records",
        "WarpMovingd",
        "write_registration_outputs",
    ),
)
"""The new home of each name of the old ``monai_mine.label``."""

__getattr__ = moved_names(__name__, MOVED)
