# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Bundles and trained models: where a bundle lives (``bundle_root``), the model record written with trained
weights, exports (TorchScript, ONNX, ``torch.export``), and the one model loader every surface calls,
:func:`load_trained_model`: a bundle folder with its weights or an export, rebuilt with its preprocessing
(docs/design.md section 8; :func:`load_exported` and :func:`read_weights` are the file readers beneath it)."""

from __future__ import annotations

from monai_mine.bundle.datasets import split_data, split_dataset
from monai_mine.bundle.export import export_bundle, export_onnx, export_program, export_torchscript
from monai_mine.bundle.exported import ExportedModel, ExportedNetwork, load_exported
from monai_mine.bundle.loader import (
    TrainedModel,
    apply_model_record,
    apply_weights_record,
    load_trained_model,
    read_bundle_config,
)
from monai_mine.bundle.paths import BundleRootError, bundle_weights, check_bundle_root, shipped_bundle_dir
from monai_mine.bundle.record import RECORDED_IDS, ModelRecord, ModelRecordError, record_config
from monai_mine.bundle.weights import read_weights, rebind_record, record_path, save_weights, weights_record

__all__ = [
    "RECORDED_IDS",
    "BundleRootError",
    "ExportedModel",
    "ExportedNetwork",
    "ModelRecord",
    "ModelRecordError",
    "TrainedModel",
    "apply_model_record",
    "apply_weights_record",
    "bundle_weights",
    "check_bundle_root",
    "export_bundle",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "load_exported",
    "load_trained_model",
    "read_bundle_config",
    "read_weights",
    "rebind_record",
    "record_config",
    "record_path",
    "save_weights",
    "shipped_bundle_dir",
    "split_data",
    "split_dataset",
    "weights_record",
]
