# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Weights files and their model records: ``model.pt`` (a plain state dict, as MONAI's ``CheckpointLoader`` and
the model zoo's tools load it) with ``model_config.json`` beside it, and training checkpoints that hold their
record as the entry ``model_record``. Files are only ever read with ``weights_only=True``, and records are data
(:mod:`monai_mine.bundle.record_schema`), bound to their weights by ``record_sha256`` over the record and the weights'
SHA-256."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_mine.bundle.record import ModelRecord, ModelRecordError
from monai_mine.io.atomic import atomic_output, atomic_write_text

__all__ = [
    "describe_state_mismatch",
    "file_sha256",
    "read_weights",
    "rebind_record",
    "record_path",
    "save_weights",
    "weights_record",
]

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

    The record names the weights' SHA-256 and is bound to it (``record_sha256``), so when a kill falls between the
    two renames the record left on disk does not match the weights, and loading says so instead of rebuilding the
    wrong network; so does an edit of either file.
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
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; expected a weights file (e.g. models/model.pt or checkpoint.pt).")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file; all mean the same to the user
        text = str(error)
        reason = (text.strip().splitlines() or [type(error).__name__])[0][:200]
        if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in text:
            # torch's message suggests weights_only=False: never quote that for a file of unknown origin
            refused = re.search(r"GLOBAL \S+", text)
            if refused:
                raise ValueError(
                    f"cannot read {what} {path}: it holds Python objects that would run code when loaded "
                    f"({refused.group(0)}); refused: expected a file of only tensors and plain data (a state dict or a "
                    "monai-mine checkpoint)."
                ) from error
            detail = re.search(r"Unsupported [^\n.]*", text)
            reason = detail.group(0).strip() if detail else "not tensors and plain data"
        raise ValueError(
            f"cannot read {what} {path}: not a complete PyTorch file (truncated or corrupt?) holding only tensors and "
            f"plain data ({reason})."
        ) from error


def weights_record(path: str | os.PathLike, checkpoint: Any) -> ModelRecord | None:
    """The record of weights read from ``path``: a training checkpoint's ``model_record`` entry, else the
    ``model_config.json`` beside the file (checked against its SHA-256); ``None`` with a warning when there is none.

    Raises:
        ModelRecordError: (a ``ValueError``) naming the file and key when the record is not plain data of the known
            shape or was edited (:meth:`ModelRecord.from_dict`).
        ValueError: when the record is unreadable, names no weights or describes other weights than ``path``.
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
    record = ModelRecord.from_dict(_read_json(sidecar), os.fspath(sidecar))
    if record.weights_sha256 is None:
        raise ModelRecordError(
            f"{sidecar}: weights_sha256 is null, so the record is not bound to {path.name}; a record beside weights "
            "names their SHA-256 (re-bind it with monai_mine.bundle.rebind_record once you have checked it)."
        )
    if record.weights_sha256 != file_sha256(path):
        raise ValueError(
            f"{sidecar} describes other weights than {path} (SHA-256 differs): the weights were replaced after "
            f"training. Restore them, or delete {sidecar.name} to load {path.name} without a record."
        )
    return record


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}.") from error


def rebind_record(path: str | os.PathLike) -> Path:
    """Bind the record of weights saved before records were bound (or after a deliberate edit) to those weights:
    ``model_config.json`` beside ``model.pt`` gets the weights' SHA-256 and its ``record_sha256``; a training
    checkpoint's ``model_record`` gets its ``record_sha256``. Each file is rewritten atomically; everything else in
    the record stays as it is.

    The record must still be plain data of the known shape (checked first): binding says that you have read it and
    that these are its weights, and nothing else.

    Args:
        path: the weights (``model.pt``) or the training checkpoint (``checkpoint.pt``).

    Returns:
        the file rewritten (the record beside the weights, or the checkpoint).

    Raises:
        FileNotFoundError: when there is no such file, or no record beside the weights.
        ModelRecordError: naming the file and key when the record is not plain data of the known shape.
        ValueError: when the file or its record cannot be read.
    """
    path = Path(path)
    checkpoint = read_weights(path)
    if isinstance(checkpoint, Mapping) and RECORD_ENTRY in checkpoint:
        record = ModelRecord.from_dict(checkpoint[RECORD_ENTRY], f"{path} ({RECORD_ENTRY!r})", require_binding=False)
        state = {**checkpoint, RECORD_ENTRY: record.to_dict()}
        with atomic_output(path) as temporary:
            torch.save(state, temporary)
        return path
    sidecar = record_path(path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"{path} has no model record to bind ({sidecar} does not exist).")
    record = ModelRecord.from_dict(_read_json(sidecar), os.fspath(sidecar), require_binding=False)
    record.weights_sha256 = file_sha256(path)
    atomic_write_text(sidecar, record.to_json())
    return sidecar


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
