# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A MONAI Deploy application that registers a NIfTI pair with an exported monai-mine bundle.

    python -m monai_mine.apps.deploy.app -i <folder with moving.nii.gz and fixed.nii.gz> -o <output folder> -m model.ts

writes ``ddf.nii.gz`` (X, Y, Z, 3), float32, voxels) and ``warped.nii.gz`` into the output folder, on the working
grid of the bundle (the fixed image reoriented to RAS and resized to the bundle's ``image_size``) with its affine.
The same application runs under ``monai-deploy exec`` and can be packaged with ``monai-deploy package``. Needs
``pip install monai-deploy-app-sdk`` (the ``deploy`` extra).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monai_mine.apps.deploy.operators import (
    OUTPUT_NAMES,
    NiftiPairLoaderOperator,
    RegistrationInferenceOperator,
    RegistrationWriterOperator,
)
from monai_mine.keys import IMAGE_KEYS
from monai_mine.optimization.schedule import instance_optimization_schedule

try:
    from monai.deploy.conditions import CountCondition
    from monai.deploy.core import AppContext, Application
except ImportError as error:
    raise ImportError(
        "monai_mine.apps.deploy.app needs the MONAI Deploy App SDK: pip install monai-deploy-app-sdk pydicom highdicom "
        f"(the 'deploy' extra of monai-mine); importing it failed with: {error}"
    ) from error

__all__ = ["INSTANCE_OPTIMIZATION_VARIABLE", "RegistrationApp", "main"]

INSTANCE_OPTIMIZATION_VARIABLE = "MONAI_MINE_INSTANCE_OPTIMIZATION"


class RegistrationApp(Application):
    """Loads ``moving.nii.gz`` and ``fixed.nii.gz`` from the input folder, registers them with the bundle given
    with ``-m`` (an exported ``model.ts`` or a bundle folder) and writes the DDF and the warped image.

    The environment variable ``MONAI_MINE_INSTANCE_OPTIMIZATION`` (default 0) sets the instance optimisation on the
    pair as ``--instance_optimization`` does: Adam steps per level, a preset (``fast``, ``balanced``, ``accurate``)
    or a schedule ``A/B/C``."""

    def compose(self) -> None:
        app_context: AppContext = Application.init_app_context(self.argv)
        loader = NiftiPairLoaderOperator(
            self, CountCondition(self, 1), input_folder=Path(app_context.input_path), name="pair_loader"
        )
        steps = os.environ.get(INSTANCE_OPTIMIZATION_VARIABLE, "0")
        try:
            schedule = instance_optimization_schedule(steps)
        except ValueError as error:
            raise ValueError(f"{INSTANCE_OPTIMIZATION_VARIABLE}: {error}") from None
        registration = RegistrationInferenceOperator(
            self, app_context=app_context, instance_optimization=schedule.value, name="registration"
        )
        writer = RegistrationWriterOperator(self, output_folder=Path(app_context.output_path), name="writer")
        self.add_flow(loader, registration, {(key, key) for key in IMAGE_KEYS})
        self.add_flow(registration, writer, {(name, name) for name in OUTPUT_NAMES})
        logging.getLogger(__name__).info(f"composed {type(self).__name__}: {app_context}")


def main() -> None:
    """Run :class:`RegistrationApp` with the command line (``-i``, ``-o``, ``-m``, ``-l``)."""
    RegistrationApp().run()


if __name__ == "__main__":
    main()
