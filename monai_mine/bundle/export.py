# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Exporting a trained bundle network with its model record (docs/design.md section 8), in three formats:

- TorchScript (``.ts``, :func:`export_torchscript`): what ``python -m monai.bundle ckpt_export`` writes
  (``<stem>/extra/metadata.json`` and ``<stem>/extra/inference.json``, read by MONAI Deploy), traced;
- ONNX (``.onnx``, :func:`export_onnx`): ``torch.onnx.export`` (the ``torch.export``-based exporter, opset 20, whose
  ``GridSample`` takes the 5-D tensors of 3D warps), run by ONNX Runtime;
- an exported program (``.pt2``, :func:`export_program`): ``torch.export.export``, saved with ``torch.export.save``.

Every export carries the same named files (:mod:`monai_mine.bundle.exported`): the record (``model_config.json``),
the bundle metadata, the inference config with the record applied (so its preprocessing is the one the weights
were trained with) and ``export.json`` (what the network accepts). ONNX and ``.pt2`` take any spatial size that is
a multiple of the network's total stride and at least twice it (dynamic axes), with a batch of one;
:func:`~monai_mine.bundle.exported.load_exported` loads all three.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from monai.data import save_net_with_metadata

from monai_mine.bundle.exported import (
    EXPORT_EXTRA_FILE,
    EXPORT_FORMATS,
    INFERENCE_EXTRA_FILE,
    METADATA_EXTRA_FILE,
    RECORD_EXTRA_FILE,
    require_export_extra,
)
from monai_mine.bundle.loader import TrainedModel, load_trained_model
from monai_mine.io.atomic import atomic_output

__all__ = [
    "ONNX_OPSET",
    "RECORD_EXTRA_FILE",
    "export_bundle",
    "export_onnx",
    "export_program",
    "export_torchscript",
]

ONNX_OPSET = 20
"""The ONNX opset of :func:`export_onnx`: the first whose ``GridSample`` is defined for 5-D (3D) inputs."""


def _trained(bundle_dir: Path, weights: str | os.PathLike | None) -> TrainedModel:
    """The bundle's trained network as its inference config builds it (record applied)."""
    return load_trained_model(bundle_dir, weights, config_files=[bundle_dir / "configs" / "inference.json"])


def _min_multiple(trained: TrainedModel) -> int:
    """The least multiple of the total stride an export accepts along each axis: 2 (instance-normalised networks
    need more than one voxel at their deepest level), or 1 when the working size itself is one stride."""
    return min(2, trained.image_size // trained.network.total_stride)


def _extra_files(trained: TrainedModel, format: str, batch: int | None) -> dict[str, str]:
    """The named files every export carries (see :mod:`monai_mine.bundle.exported`)."""
    config = {key: value for key, value in trained.config.get().items() if key not in ("_meta_", "bundle_root")}
    stride = trained.network.total_stride
    info = {"format": format, "total_stride": stride, "min_size": _min_multiple(trained) * stride, "batch": batch}
    info.update(image_size=trained.image_size, torch=torch.__version__)
    files = {
        METADATA_EXTRA_FILE: json.dumps(trained.config.get("_meta_", {})),
        INFERENCE_EXTRA_FILE: json.dumps(config),
        EXPORT_EXTRA_FILE: json.dumps(info),
    }
    if trained.record is not None:
        files[RECORD_EXTRA_FILE] = trained.record.to_json()
    return files


def _example(trained: TrainedModel) -> torch.Tensor:
    """A (1, 2, N, N, N) input at the working size ``N``."""
    size = trained.image_size
    return torch.rand(1, 2, size, size, size, device=trained.device)


def _spatial_dims(trained: TrainedModel) -> dict[int, Any]:
    """``torch.export`` dimensions of the input's spatial axes: multiples of the total stride, from
    :func:`_min_multiple` of it up."""
    stride, low = trained.network.total_stride, _min_multiple(trained)
    return {axis: stride * torch.export.Dim(f"{name}_strides", min=low) for axis, name in zip((2, 3, 4), "xyz")}


@contextmanager
def _named_output(path: Path) -> Iterator[Path]:
    """:func:`~monai_mine.io.atomic.atomic_output` for a file first written under its own name (in a hidden folder
    beside ``path``): a zip archive written by torch is rooted at its file's stem, so TorchScript and ``.pt2``
    archives hold ``<stem>/extra/...`` as MONAI Deploy looks for them, not a temporary name."""
    with atomic_output(path) as temporary:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
            named = Path(folder) / path.name
            yield named
            os.replace(named, temporary)


def _output(bundle_dir: Path, path: str | os.PathLike | None, format: str) -> Path:
    return bundle_dir / "models" / f"model{EXPORT_FORMATS[format]}" if path is None else Path(path)


def export_torchscript(
    bundle_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> Path:
    """Trace a bundle's trained network at its working size and save it with the bundle's metadata, its inference
    config (record applied) and its model record as extra files.

    The network is traced (``torch.jit.trace`` under ``torch.no_grad()``); traced networks run at any valid size
    and batch (docs/design.md section 3).

    Args:
        bundle_dir: the bundle folder.
        path: the archive to write (default ``<bundle_dir>/models/model.ts``), atomically.
        weights: the weights to export (default ``<bundle_dir>/models/model.pt``).

    Returns:
        the archive's path.
    """
    bundle_dir = Path(bundle_dir)
    trained = _trained(bundle_dir, weights)
    path = _output(bundle_dir, path, "torchscript")
    with torch.no_grad():
        traced = torch.jit.trace(trained.network, _example(trained), check_trace=False)
    files = _extra_files(trained, "torchscript", None)
    metadata = json.loads(files.pop(METADATA_EXTRA_FILE))  # save_net_with_metadata writes it
    with _named_output(path) as named:
        save_net_with_metadata(
            traced,
            os.fspath(named),
            meta_values=metadata,
            more_extra_files={name: text.encode() for name, text in files.items()},
        )
    return path


def _onnx_amax(self, dim=(), keepdim: bool = False):
    """``aten::amax`` in ONNX, also over all axes (``tensor.amax()``, which onnxscript's own translation refuses
    for lack of ``dim``; the moments pooling of MIRegNet's affine network uses it)."""
    from onnxscript import opset20 as op

    if dim:
        return op.ReduceMax(self, op.Constant(value_ints=list(dim)), keepdims=int(keepdim))
    return op.ReduceMax(self, keepdims=int(keepdim))


def export_onnx(
    bundle_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    opset: int = ONNX_OPSET,
) -> Path:
    """Export a bundle's trained network as ONNX, the named files in its ``metadata_props``.

    ``torch.onnx.export(..., dynamo=True)`` (through ``torch.export``; needs onnxscript) with dynamic spatial axes:
    input ``image`` (1, 2, X, Y, Z), output ``ddf`` (1, 3, X, Y, Z), each size a multiple of the total stride and at
    least twice it. ``GridSample`` on 5-D tensors needs opset 20 or later.

    Args:
        bundle_dir: the bundle folder.
        path: the model to write (default ``<bundle_dir>/models/model.onnx``), atomically.
        weights: the weights to export (default ``<bundle_dir>/models/model.pt``).
        opset: the ONNX opset (at least 20).

    Returns:
        the model's path.

    Raises:
        ValueError: for an opset below 20.
    """
    if int(opset) < ONNX_OPSET:
        raise ValueError(f"opset {opset} has no 3D GridSample (the networks' warps): use opset {ONNX_OPSET} or later.")
    for module in ("onnx", "onnxscript"):
        require_export_extra(module, "ONNX export")
    bundle_dir = Path(bundle_dir)
    trained = _trained(bundle_dir, weights)
    path = _output(bundle_dir, path, "onnx")
    with torch.no_grad():
        program = torch.onnx.export(
            trained.network,
            (_example(trained),),
            input_names=["image"],
            output_names=["ddf"],
            opset_version=int(opset),
            dynamo=True,
            dynamic_shapes=(_spatial_dims(trained),),
            custom_translation_table={torch.ops.aten.amax.default: _onnx_amax},
            verbose=False,
        )
    program.model.metadata_props.update(_extra_files(trained, "onnx", 1))
    with atomic_output(path) as temporary:
        program.save(os.fspath(temporary), external_data=False)  # one file, renamed into place whole
    return path


def export_program(
    bundle_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> Path:
    """Export a bundle's trained network with ``torch.export.export`` and save it with ``torch.export.save``, the
    named files as its extra files.

    The program takes (1, 2, X, Y, Z) with each spatial size a multiple of the total stride and at least twice it
    (dynamic dimensions), and returns the DDF (1, 3, X, Y, Z); load it with ``torch.export.load`` (no pickled code).

    Args:
        bundle_dir: the bundle folder.
        path: the archive to write (default ``<bundle_dir>/models/model.pt2``), atomically.
        weights: the weights to export (default ``<bundle_dir>/models/model.pt``).

    Returns:
        the archive's path.
    """
    bundle_dir = Path(bundle_dir)
    trained = _trained(bundle_dir, weights)
    path = _output(bundle_dir, path, "program")
    with torch.no_grad():
        program = torch.export.export(
            trained.network, (_example(trained),), dynamic_shapes=(_spatial_dims(trained),), strict=False
        )
    with _named_output(path) as named:
        torch.export.save(program, os.fspath(named), extra_files=_extra_files(trained, "program", 1))
    return path


_EXPORTERS = {"torchscript": export_torchscript, "onnx": export_onnx, "program": export_program}


def export_bundle(
    bundle_dir: str | os.PathLike,
    format: str = "torchscript",
    path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> Path:
    """Export a bundle's trained network in ``format`` (``"torchscript"``, ``"onnx"`` or ``"program"``), by default
    to ``<bundle_dir>/models/model.{ts,onnx,pt2}``.

    Raises:
        ValueError: for an unknown format.
    """
    if format not in _EXPORTERS:
        raise ValueError(f"unknown export format {format!r}: choose torchscript (.ts), onnx (.onnx) or program (.pt2).")
    return _EXPORTERS[format](bundle_dir, path, weights)
