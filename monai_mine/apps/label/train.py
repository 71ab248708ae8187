# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label train task for monai-mine registration bundles, built on MONAI Label's ``BundleTrainTask``.

MONAI Label's bundle trainer takes the labelled images of the datastore and overrides the bundle's
``train#dataset#data``; a monai-mine bundle trains on image pairs, with or without labels, from ``datalist``. This
task takes every image of the datastore (:func:`monai_mine.apps.label.datastore.datastore_records`: unpaired images, or
the pairs named in the images' info), splits them (:func:`monai_mine.apps.label.datastore.split_records`) and passes
``{"training": [...], "validation": [...]}`` as the bundle's ``datalist``, validating at least once so that
``models/model.pt`` is written even when ``max_epochs`` is below the bundle's ``val_interval``
(:func:`monai_mine.apps.label.datastore.bundle_training_overrides`). The rest (epochs, device, pretrained weights from
``models/model.pt``, multi-GPU with ``multi_gpu_train.json``) is MONAI Label's. Pretrained weights (``"pretrained":
true``, MONAI Label's default) are loaded into the network their model record describes (``models/model_config.json``:
width, working size, intensity, loss), so a training goes on with the settings the weights were trained with; weights
that do not fit raise :class:`monai_mine.apps.label.bundles.BundleWeightsError` (shown in the training's log, ``GET
/train/``) instead of a ``state_dict`` size mismatch. The trained weights land in the bundle's ``models/model.pt``,
where the infer task reads them; a training that writes over the weights shipped with the bundle says so first, in
its log (:func:`monai_mine.apps.label.bundles.shipped_weights_warning`). Needs ``monailabel`` (see docs/label.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from monai_mine.apps.label.bundles import load_bundle_network, shipped_weights_warning
from monai_mine.apps.label.datastore import FINAL_LABEL_TAG, bundle_training_overrides, datastore_records, split_records

try:
    from monailabel.tasks.train.bundle import BundleTrainTask
except ImportError as error:
    raise ImportError(
        "monai_mine.apps.label.train needs MONAI Label (pip install monailabel; see docs/label.md); "
        f"importing it failed with: {error}"
    ) from error

__all__ = ["RegistrationTrainTask"]

logger = logging.getLogger(__name__)


class RegistrationTrainTask(BundleTrainTask):
    """Trains a monai-mine bundle on the images of a MONAI Label datastore.

    Args:
        path: the bundle folder (``configs/train.json``, ``configs/metadata.json``).
        conf: the app's configuration.
        label_tag: the tag of the labels used (approved labels: ``"final"``); a request's ``label_tag`` wins.
        overrides: bundle config overrides applied to every training (e.g. ``{"image_size": 96}``).
        kwargs: passed to ``BundleTrainTask`` (e.g. ``enable_tracking``).
    """

    def __init__(
        self,
        path: str,
        conf: dict[str, str],
        label_tag: str = FINAL_LABEL_TAG,
        overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, conf, **kwargs)
        self.label_tag = label_tag
        self.overrides = dict(overrides or {})

    def __call__(self, request: dict, datastore: Any) -> Any:
        warning = shipped_weights_warning(self.bundle_path)
        if warning is not None:
            logger.warning(warning)
        return super().__call__(request, datastore)

    def _fetch_datalist(self, request: dict, datastore: Any) -> list[dict[str, str]]:
        return datastore_records(datastore, request.get("label_tag", self.label_tag))

    def _partition_datalist(self, datalist: list, request: dict, shuffle: bool = False) -> tuple[list, list]:
        return split_records(datalist, float(request.get("val_split", 0.2)))

    def _update_overrides(self, overrides: dict) -> dict:
        training = overrides.pop(self.const.key_train_dataset_data())
        validation = overrides.pop(self.const.key_validate_dataset_data(), None)
        val_interval = self.overrides.get("val_interval", self.bundle_config.get_parsed_content("val_interval"))
        max_epochs = overrides[self.const.key_train_trainer_max_epochs()]
        overrides.update(self.overrides)
        overrides.update(bundle_training_overrides(training, validation, max_epochs, val_interval))
        overrides.update(self._pretrained_record(overrides.get(self.const.key_train_handlers()) or []))
        return overrides

    def _pretrained_record(self, handlers: list) -> dict[str, Any]:
        """The record's config values of the pretrained weights MONAI Label loads (its ``CheckpointLoader``), after
        checking that they fit the network they describe; ``{}`` without pretrained weights or record.

        Raises:
            BundleWeightsError: when the weights do not fit (naming the file, the bundle and what to do).
        """
        paths = [
            h.get("load_path") for h in handlers if isinstance(h, Mapping) and h.get("_target_") == "CheckpointLoader"
        ]
        if not paths or not paths[0] or not os.path.isfile(paths[0]):
            return {}
        model = load_bundle_network(self.bundle_path, paths[0], [self.bundle_config_path], self.overrides)
        return dict(model.record.config) if model.record is not None else {}
