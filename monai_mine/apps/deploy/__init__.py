# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Deploy adapters: run an exported registration bundle (``model.ts``) as MONAI Deploy reads it.

Without the MONAI Deploy App SDK: :func:`load_registration_bundle` reads the archive's ``extra/metadata.json`` and
``extra/inference.json`` as the SDK's bundle operator does and registers pairs (float DDF and warped image).
With it (``pip install monai-deploy-app-sdk``, the ``deploy`` extra): the operators in
:mod:`monai_mine.apps.deploy.operators` and the application
``python -m monai_mine.apps.deploy.app -i in -o out -m model.ts``.
"""

from __future__ import annotations

from monai_mine.apps.deploy.bundle import (
    RegistrationBundle,
    WorkingGridRegistration,
    load_registration_bundle,
    read_bundle_configs,
)
from monai_mine.apps.deploy.images import image_to_metatensor, metatensor_to_image_parts

__all__ = [
    "RegistrationBundle",
    "WorkingGridRegistration",
    "image_to_metatensor",
    "load_registration_bundle",
    "metatensor_to_image_parts",
    "read_bundle_configs",
]
