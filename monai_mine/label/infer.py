# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label infer task for monai-mine registration bundles, built on MONAI Label's ``BundleInferTask``.

The request's ``image`` is the moving image and ``fixed_image`` the fixed one (a file path; the sample app turns a
datastore id into one, see :func:`monai_mine.label.datastore.resolve_fixed_image`). The task runs the bundle's own
preprocessing and network (``models/model.pt`` with ``network_def``, or the exported ``models/model.ts``), rebuilt as
the weights' model record says (docs/design.md section 8), warps the
moving image, and writes ``warped.nii.gz`` and ``ddf.nii.gz`` (float32, (X, Y, Z, 3), voxels), plus
``warped_label.nii.gz`` when the request has a ``moving_label``, on the preprocessed fixed image's grid. The file
returned as the result is ``result_image`` (``"warped"`` by default, or ``"ddf"``/``"warped_label"``); the result
JSON lists every file and the DDF's shape and units. Needs ``monailabel`` (see README.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from monai_mine.bundle import apply_weights_record
from monai_mine.label.datastore import resolve_fixed_image
from monai_mine.label.pipeline import (
    OUTPUTS,
    registration_post_transforms,
    registration_pre_transforms,
    registration_result_json,
    write_registration_outputs,
)

try:
    from monailabel.interfaces.tasks.infer_v2 import InferType
    from monailabel.tasks.infer.bundle import BundleInferTask
except ImportError as error:
    raise ImportError(
        "monai_mine.label.infer needs MONAI Label (pip install monailabel; see the MONAI Label section of README.md); "
        f"importing it failed with: {error}"
    ) from error

__all__ = ["RESULT_IMAGE_KEY", "RegistrationInferTask"]

RESULT_IMAGE_KEY = "result_image"
"""Request parameter choosing the file returned as the result: one of ``OUTPUTS`` (default ``"warped"``)."""


class RegistrationInferTask(BundleInferTask):
    """Registers the request's ``image`` (moving) to its ``fixed_image`` with a monai-mine bundle.

    Args:
        path: the bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt`` or
            ``models/model.ts``).
        conf: the app's configuration (``preload`` is read, as by ``BundleInferTask``).
        kwargs: passed to ``BundleInferTask`` (e.g. ``type``, ``pre_filter``).
    """

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any) -> None:
        kwargs.setdefault("type", InferType.OTHERS)
        kwargs.setdefault("load_strict", True)
        super().__init__(path, conf, extend_load_image=False, add_post_restore=False, **kwargs)

    def _load_bundle_config(self, path: str, config: str) -> Any:
        """The bundle's inference config with the trained weights' record applied, before the network is built."""
        parser = super()._load_bundle_config(path, config)
        apply_weights_record(parser, os.path.join(path, "models", "model.pt"), [config])
        return parser

    def __call__(self, request: dict, callbacks: Any = None) -> tuple[str | None, dict]:
        result_image = request.get(RESULT_IMAGE_KEY, "warped")
        if result_image not in OUTPUTS:
            raise ValueError(f"{RESULT_IMAGE_KEY} must be one of {list(OUTPUTS)}, got {result_image!r}.")
        return super().__call__(resolve_fixed_image(request, None), callbacks)

    def pre_transforms(self, data: Any = None) -> Sequence[Callable]:
        return registration_pre_transforms(super().pre_transforms(data), self.input_key)

    def post_transforms(self, data: Any = None) -> Sequence[Callable]:
        return [*super().post_transforms(data), *registration_post_transforms(self.output_label_key)]

    def writer(self, data: dict, extension: str | None = None, dtype: Any = None) -> tuple[str, dict]:
        written = write_registration_outputs(data, tempfile.mkdtemp(prefix="monai_mine_"), self.output_label_key)
        result_image = data.get(RESULT_IMAGE_KEY, "warped")
        if result_image not in written:
            raise ValueError(
                f"{RESULT_IMAGE_KEY} {result_image!r} was not produced (written: {sorted(written)}); "
                "'warped_label' needs a 'moving_label' in the request."
            )
        return str(written[result_image]), registration_result_json(data, written, self.output_label_key)
