# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label adapters: serve and train monai-mine registration bundles from a MONAI Label app.

Without MONAI Label: datastore records to datalists (:mod:`monai_mine.apps.label.datastore`), the infer steps around
a bundle's preprocessing (:mod:`monai_mine.apps.label.pipeline`), the app's bundle folders and the loading of their
weights (:mod:`monai_mine.apps.label.bundles`), and a studies folder from the demo data
(:mod:`monai_mine.apps.label.studies`, ``python -m monai_mine.apps.label.studies <folder>``). With it
(``pip install monailabel``, see docs/label.md): :class:`monai_mine.apps.label.infer.RegistrationInferTask`,
:class:`monai_mine.apps.label.train.RegistrationTrainTask` and the sample app ``sample-apps/monai_mine_registration``.
"""

from __future__ import annotations

from monai_mine.apps.label.bundles import (
    BundleWeightsError,
    load_bundle_network,
    prepare_app_bundles,
    shipped_weights_warning,
)
from monai_mine.apps.label.datastore import (
    FINAL_LABEL_TAG,
    FIXED_IMAGE_KEY,
    bundle_training_overrides,
    check_moving_image,
    datastore_records,
    registration_datalist,
    resolve_fixed_image,
    split_records,
)
from monai_mine.apps.label.pipeline import (
    OUTPUTS,
    PairFromRequestd,
    WarpMovingd,
    registration_post_transforms,
    registration_pre_transforms,
    registration_result_json,
    write_registration_outputs,
)

__all__ = [
    "BundleWeightsError",
    "FINAL_LABEL_TAG",
    "FIXED_IMAGE_KEY",
    "OUTPUTS",
    "PairFromRequestd",
    "WarpMovingd",
    "bundle_training_overrides",
    "check_moving_image",
    "datastore_records",
    "load_bundle_network",
    "prepare_app_bundles",
    "registration_datalist",
    "registration_post_transforms",
    "registration_pre_transforms",
    "registration_result_json",
    "resolve_fixed_image",
    "shipped_weights_warning",
    "split_records",
    "write_registration_outputs",
]
