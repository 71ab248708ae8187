# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Weights files and their model records: ``model.pt`` (a plain state dict, as MONAI's ``CheckpointLoader`` and
the model zoo's tools load it) with ``model_config.json`` beside it, and training checkpoints that hold their
record as the entry ``model_record``. Files are only ever read with ``weights_only=True``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_mine.bundle.record import ModelRecord
from monai_mine.io.atomic import atomic_output, atomic_write_text

__all__ = ["describe_state_mismatch", "file_sha256", "read_weights", "record_path", "save_weights", "weights_record"]

logger = logging.getLogger(__name__)

RECORD_ENTRY = "model_record"
"""The entry of a training checkpoint that holds its record."""


def record_path(weights: str | os.PathLike) -> Path:
    """The record file beside a weights file: ``models/model.pt`` -> ``models/model_config.json``."""
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}_config.json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(state: Mapping[str, torch.Tensor], path: str | os.PathLike, record: ModelRecord | None) -> Path:
    """Write a state dict to ``path`` and, with a record, ``model_config.json`` beside it; both atomically.

    The record names the weights' SHA-256, so when a kill falls between the two renames the record left on disk
    does not match the weights, and loading says so instead of rebuilding the wrong network.
    """
    path = Path(path)
    with atomic_output(path) as temporary:
        torch.save(dict(state), temporary)
        if record is not None:
            record.weights_sha256 = file_sha256(temporary)
            atomic_write_text(record_path(path), record.to_json())
    return path


def read_weights(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, with errors naming the file.

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when it is not a complete PyTorch file of tensors and plain data (truncated, corrupt, or a
            pickle that would run code).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file; all mean the same to the user
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(
            f"cannot read {what} {path}: not a complete PyTorch file (truncated or corrupt?) holding only tensors and "
            f"plain data ({reason})."
        ) from error


def weights_record(path: str | os.PathLike, checkpoint: Any) -> ModelRecord | None:
    """The record of weights read from ``path``: a training checkpoint's ``model_record`` entry, else the
    ``model_config.json`` beside the file (checked against its SHA-256); ``None`` with a warning when there is none.

    Raises:
        ValueError: when the record is unreadable or describes other weights than ``path``.
    """
    path = Path(path)
    if isinstance(checkpoint, Mapping) and RECORD_ENTRY in checkpoint:
        return ModelRecord.from_dict(checkpoint[RECORD_ENTRY], f"{path} ({RECORD_ENTRY!r})")
    sidecar = record_path(path)
    if not sidecar.is_file():
        logger.warning(
            f"{path} has no model record ({sidecar.name}): building the network and preprocessing from the bundle's "
            "configs as they are now; if it was trained with other settings, pass the same overrides."
        )
        return None
    try:
        record = ModelRecord.from_dict(json.loads(sidecar.read_text()), os.fspath(sidecar))
    except json.JSONDecodeError as error:
        raise ValueError(f"{sidecar} is not valid JSON: {error.msg} at line {error.lineno}.") from error
    if record.weights_sha256 and record.weights_sha256 != file_sha256(path):
        raise ValueError(
            f"{sidecar} describes other weights than {path} (SHA-256 differs): the weights were replaced after "
            f"training. Restore them, or delete {sidecar.name} to load {path.name} without a record."
        )
    return record


def describe_state_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """How a ``state_dict`` read from a file differs from a module's: counts and one example of each difference."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    reshaped = [
        f"{key!r}: file {tuple(found[key].shape)}, network {tuple(value.shape)}"
        for key, value in expected.items()
        if key in found and hasattr(found[key], "shape") and tuple(found[key].shape) != tuple(value.shape)
    ]
    parts = [f"{len(missing)} missing (e.g. {missing[0]!r})"] if missing else []
    parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})"] if unexpected else []
    parts += [f"{len(reshaped)} of another shape (e.g. {reshaped[0]})"] if reshaped else []
    return ", ".join(parts) or "same keys and shapes"
