# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Exporting a trained bundle network as TorchScript that carries its model record (docs/design.md section 8).

The archive is what ``python -m monai.bundle ckpt_export`` writes (``extra/metadata.json`` and
``extra/inference.json``, read by MONAI Deploy), with the record applied to ``inference.json`` (so its
preprocessing is the one the weights were trained with) and the record itself as ``extra/model_config.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from monai.data import save_net_with_metadata

from monai_mine.bundle.loader import load_trained_model
from monai_mine.io.atomic import atomic_output

__all__ = ["RECORD_EXTRA_FILE", "export_torchscript"]

RECORD_EXTRA_FILE = "model_config.json"
"""The extra file of an exported model that holds its model record."""


def export_torchscript(
    bundle_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> Path:
    """Trace a bundle's trained network at its working size and save it with the bundle's metadata, its inference
    config (record applied) and its model record as extra files.

    The network is traced (``torch.jit.trace`` under ``torch.no_grad()``); traced networks run at any valid size
    (docs/design.md section 4).

    Args:
        bundle_dir: the bundle folder.
        path: the archive to write (default ``<bundle_dir>/models/model.ts``), atomically.
        weights: the weights to export (default ``<bundle_dir>/models/model.pt``).

    Returns:
        the archive's path.
    """
    bundle_dir = Path(bundle_dir)
    inference = bundle_dir / "configs" / "inference.json"
    trained = load_trained_model(bundle_dir, weights, config_files=[inference])
    path = bundle_dir / "models" / "model.ts" if path is None else Path(path)
    size = trained.image_size
    example = torch.rand(1, 2, size, size, size, device=trained.device)
    with torch.no_grad():
        traced = torch.jit.trace(trained.network, example, check_trace=False)
    config = {key: value for key, value in trained.config.get().items() if key not in ("_meta_", "bundle_root")}
    extra_files = {"inference.json": json.dumps(config).encode()}
    if trained.record is not None:
        extra_files[RECORD_EXTRA_FILE] = trained.record.to_json().encode()
    with atomic_output(path) as temporary:
        save_net_with_metadata(
            traced, os.fspath(temporary), meta_values=trained.config.get("_meta_"), more_extra_files=extra_files
        )
    return path
