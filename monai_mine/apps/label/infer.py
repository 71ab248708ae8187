# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label infer task for monai-mine registration bundles, built on MONAI Label's ``BundleInferTask``.

The request's ``image`` is the moving image and ``fixed_image`` the fixed one (a file path; the sample app turns a
datastore id into one, see :func:`monai_mine.apps.label.datastore.resolve_fixed_image`). The task runs the bundle's own
preprocessing and network (``models/model.pt`` with ``network_def``, or the exported ``models/model.ts``), rebuilt as
the weights' model record says (docs/design.md section 8; read again whenever ``models/model.pt`` changes, e.g.
after a training in the app), warps the moving image, and writes ``warped``, ``ddf`` (float32, (X, Y, Z, 3), voxels)
and, when the request has a ``moving_label``, ``warped_label`` on the preprocessed fixed image's grid. The file
returned is ``result_image`` (``"warped"`` by default, or ``"ddf"``/``"warped_label"``), moved to a file of its own
in the temporary folder (MONAI Label's infer endpoint deletes it once sent; a caller in Python owns it); the other
files are deleted. The result JSON names the returned file, the outputs a request can choose from, and the DDF's
shape (as saved), units and affine. A request's ``instance_optimization`` (what ``monai-mine register
--instance_optimization`` accepts: Adam steps per level, a preset ``fast``/``balanced``/``accurate`` or a schedule
``A/B/C``) refines the DDF on the pair with the bundle's ``instance_optimizer``. Weights that do not fit the bundle's
network raise :class:`monai_mine.apps.label.bundles.BundleWeightsError`, naming the file, the bundle and what to do.
Needs ``monailabel`` (see docs/label.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from monai_mine.apps.label.bundles import load_bundle_network
from monai_mine.apps.label.datastore import resolve_fixed_image
from monai_mine.apps.label.pipeline import (
    OUTPUTS,
    registration_post_transforms,
    registration_pre_transforms,
    registration_result_json,
    write_registration_outputs,
)
from monai_mine.bundle import apply_weights_record
from monai_mine.bundle.loader import configured_inferer
from monai_mine.optimization.schedule import instance_optimization_schedule

try:
    from monailabel.interfaces.tasks.infer_v2 import InferType
    from monailabel.tasks.infer.bundle import BundleInferTask
except ImportError as error:
    raise ImportError(
        "monai_mine.apps.label.infer needs MONAI Label (pip install monailabel; see docs/label.md); "
        f"importing it failed with: {error}"
    ) from error

__all__ = ["INSTANCE_OPTIMIZATION_KEY", "RESULT_IMAGE_KEY", "RegistrationInferTask"]

logger = logging.getLogger(__name__)

RESULT_IMAGE_KEY = "result_image"
"""Request parameter choosing the file returned as the result: one of ``OUTPUTS`` (default ``"warped"``)."""

INSTANCE_OPTIMIZATION_KEY = "instance_optimization"
"""Request parameter: instance optimisation of the DDF on the pair, as ``--instance_optimization`` takes it (default:
the bundle's ``inferer``, the network alone)."""


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
        """The bundle's inference config with the trained weights' record applied, before the network is built.

        A record that cannot be applied is logged, not raised, so that the app starts; every request then fails with
        the error of :func:`monai_mine.apps.label.bundles.load_bundle_network`, which says what to do.
        """
        parser = super()._load_bundle_config(path, config)
        weights = os.path.join(path, "models", "model.pt")
        self._weights_stamp = _stamp(weights)
        try:
            apply_weights_record(parser, weights, [config])
        except ValueError as error:
            logger.warning(f"bundle {os.path.basename(path)!r}: cannot apply the model record of {weights}: {error}")
        return parser

    def _refresh_bundle_config(self) -> None:
        """Read the config again when ``models/model.pt`` changed since (a training in the app may have written
        weights with another record: another ``image_size`` or intensity normalisation)."""
        if _stamp(os.path.join(self.bundle_path, "models", "model.pt")) != self._weights_stamp:
            self.bundle_config = self._load_bundle_config(self.bundle_path, self.bundle_config_path)
            self.bundle_config.config["use_click"] = False

    def _weights_path(self, data: Any) -> str | None:
        """The weights of a request: ``models/model.pt`` (or ``model.ts``), or the request's ``model_filename`` in
        ``models/`` when it exists (as ``BasicInferTask._get_network`` picks it)."""
        path = self.get_path()
        chosen = data.get("model_filename") if data else None
        if chosen and self._config.get("model_filename") and self.path:
            chosen = chosen if isinstance(chosen, str) else chosen[0]
            candidate = os.path.join(os.path.dirname(self.path[0]), chosen)
            if os.path.isfile(candidate):
                path = candidate
        return path

    def _get_network(self, device: Any, data: Any) -> Any:
        """The network of ``models/model.pt`` rebuilt from its model record and loaded by
        :func:`monai_mine.apps.label.bundles.load_bundle_network` (again when the file changes); an exported
        ``model.ts`` is loaded by MONAI Label.

        Raises:
            BundleWeightsError: when the weights do not fit the bundle's network (naming file, bundle and remedy).
        """
        path = self._weights_path(data)
        if not path or not path.endswith(".pt"):
            return super()._get_network(device, data)
        stamp = _stamp(path)
        cached = self._networks.get(device)
        if cached and tuple(cached[1:]) == (stamp, path):
            return cached[0]
        model = load_bundle_network(self.bundle_path, path, [self.bundle_config_path], device=device)
        network = model.network.train() if self.train_mode else model.network.eval()
        self._networks[device] = (network, stamp, path)
        return network

    def __call__(self, request: dict, callbacks: Any = None) -> tuple[str | None, dict]:
        result_image = request.get(RESULT_IMAGE_KEY, "warped")
        if result_image not in OUTPUTS:
            raise ValueError(f"{RESULT_IMAGE_KEY} must be one of {list(OUTPUTS)}, got {result_image!r}.")
        if request.get(INSTANCE_OPTIMIZATION_KEY) is not None:
            instance_optimization_schedule(request[INSTANCE_OPTIMIZATION_KEY])  # refused before any work
        request = resolve_fixed_image(request, None)
        self._refresh_bundle_config()
        return super().__call__(request, callbacks)

    def inferer(self, data: Any = None) -> Any:
        """The bundle's inferer, or with the request's ``instance_optimization`` the bundle's
        ``instance_optimizer`` around the network (:func:`monai_mine.bundle.loader.configured_inferer`)."""
        value = data.get(INSTANCE_OPTIMIZATION_KEY) if data else None
        if value is None:
            return super().inferer(data)
        remedy = "use a monai-mine bundle whose inference.json defines one"
        return configured_inferer(self.bundle_config, value, f"bundle {self.bundle_path}", remedy)

    def pre_transforms(self, data: Any = None) -> Sequence[Callable]:
        return registration_pre_transforms(super().pre_transforms(data), self.input_key)

    def post_transforms(self, data: Any = None) -> Sequence[Callable]:
        return [*super().post_transforms(data), *registration_post_transforms(self.output_label_key)]

    def writer(self, data: dict, extension: str | None = None, dtype: Any = None) -> tuple[str, dict]:
        """Write the outputs into a temporary folder, move the one asked for (``result_image``) to a temporary file
        of its own (``monai_mine_<name>_*.nii.gz``, deleted by MONAI Label's infer endpoint once sent) and delete
        the folder. Returns that file and the result JSON."""
        result_image = data.get(RESULT_IMAGE_KEY, "warped")
        folder = tempfile.mkdtemp(prefix="monai_mine_")
        kept = None
        try:
            written = write_registration_outputs(data, folder, self.output_label_key)
            if result_image not in written:
                raise ValueError(
                    f"{RESULT_IMAGE_KEY} {result_image!r} was not produced (written: {sorted(written)}); "
                    "'warped_label' needs a 'moving_label' in the request."
                )
            result = registration_result_json(data, written, self.output_label_key)
            handle, kept = tempfile.mkstemp(prefix=f"monai_mine_{result_image}_", suffix=".nii.gz")
            os.close(handle)
            os.replace(written[result_image], kept)
        except BaseException:
            if kept is not None and os.path.exists(kept):
                os.remove(kept)
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for name in written:
            result.pop(name, None)
        result.update({RESULT_IMAGE_KEY: result_image, result_image: kept, "outputs": sorted(written)})
        return kept, result


def _stamp(path: str) -> tuple[int, int] | None:
    """``(mtime in ns, size)`` of a file, ``None`` when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
