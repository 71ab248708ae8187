# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Loading an exported bundle network, whatever its format, as one ``torch.nn.Module`` with its model record
(docs/design.md section 8).

``monai-mine export --format torchscript|onnx|program`` (:mod:`monai_mine.bundle.export`) writes

- ``.ts``: traced TorchScript, loaded with ``torch.jit.load``; its extra files are zip members ``<stem>/extra/<name>``;
- ``.onnx``: ONNX (opset 20, ``GridSample`` on 5-D tensors), run by ONNX Runtime; its extra files are the model's
  ``metadata_props`` (key: the file name, value: its text);
- ``.pt2``: a ``torch.export`` program, loaded with ``torch.export.load``; its extra files are zip members
  ``<stem>/extra/<name>``.

Each carries the same named files: the model record (``model_config.json``), the bundle metadata (``metadata.json``),
its inference config with the record applied (``inference.json``, what MONAI Deploy reads) and what the export
accepts (``export.json``: total stride, least size). :func:`load_exported` turns any of them into an
:class:`ExportedModel`: an :class:`ExportedNetwork` (``(B, 2, X, Y, Z) -> DDF (B, 3, X, Y, Z)``) and its record;
:func:`read_export_configs` reads the metadata and configs it carries as MONAI Deploy reads them (also from the
``model.ts`` of ``python -m monai.bundle ckpt_export``). No format unpickles code. Both serve the one loader of trained
models, :func:`monai_mine.bundle.load_trained_model`.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from torch import nn

from monai_mine.bundle.record import ModelRecord

__all__ = [
    "CONFIG_SUFFIXES",
    "EXPORT_EXTRA_FILE",
    "EXPORT_FORMATS",
    "INFERENCE_EXTRA_FILE",
    "METADATA_EXTRA_FILE",
    "RECORD_EXTRA_FILE",
    "ExportedModel",
    "ExportedNetwork",
    "export_format",
    "load_exported",
    "model_file_format",
    "read_export_configs",
    "read_export_files",
    "require_export_extra",
]

RECORD_EXTRA_FILE = "model_config.json"
"""The extra file of an exported model that holds its model record."""
METADATA_EXTRA_FILE = "metadata.json"
"""The extra file holding the bundle's metadata (``configs/metadata.json`` as MONAI Deploy reads it)."""
INFERENCE_EXTRA_FILE = "inference.json"
"""The extra file holding the bundle's inference config with the record applied."""
EXPORT_EXTRA_FILE = "export.json"
"""The extra file saying what the exported network accepts: ``{"format", "total_stride", "min_size", "batch"}``."""

EXPORT_FORMATS = {"torchscript": ".ts", "onnx": ".onnx", "program": ".pt2"}
"""Export format -> file suffix."""

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
"""Config file suffixes MONAI Deploy looks for, in order."""


def require_export_extra(module: str, purpose: str) -> Any:
    """Import ``module`` (onnx, onnxruntime, onnxscript: the ``export`` extra), or say how to install it.

    Raises:
        ModuleNotFoundError: naming the module, what needs it and the install command.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f'{purpose} needs {module}: pip install -c constraints.txt -e ".[export]" (or pip install '
            f'"monai-mine[export]").'
        ) from error


def export_format(path: str | os.PathLike) -> str:
    """The export format of a file, from its suffix (see :data:`EXPORT_FORMATS`).

    Raises:
        ValueError: naming the file and the suffixes expected.
    """
    path = Path(path)
    for name, suffix in EXPORT_FORMATS.items():
        if path.suffix.lower() == suffix:
            return name
    raise ValueError(
        f"{path} is not an exported model: expected a file ending in .ts (TorchScript), .onnx (ONNX) or .pt2 "
        f"(torch.export), as `monai-mine export --format torchscript|onnx|program` writes them."
    )


def _zip_extra_files(path: Path, kind: str) -> dict[str, str]:
    """The members ``<root>/extra/<name>`` of a TorchScript or ``.pt2`` archive, by name."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a {kind} archive (a zip file written by `monai-mine export`).")
    with zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name.count("/") == 2 and name.split("/")[1] == "extra"]
        return {name.split("/")[2]: archive.read(name).decode() for name in members}


def _onnx_extra_files(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX model, by key."""
    onnx = require_export_extra("onnx", f"reading the ONNX model {path}")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError, onnx others; all mean "not an ONNX model"
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(f"{path} is not an ONNX model ({reason}).") from error
    return {entry.key: entry.value for entry in model.metadata_props}


def read_export_files(path: str | os.PathLike, format: str | None = None) -> dict[str, str]:
    """The named extra files an exported model carries (e.g. ``{"model_config.json": "{...}", ...}``), read without
    loading its network.

    Args:
        path: the exported file.
        format: its format (default: :func:`export_format` of its suffix).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: naming the file for an unknown suffix or a file that is not of its format.
    """
    path = Path(path)
    kind = export_format(path) if format is None else format
    if not path.is_file():
        raise FileNotFoundError(f"exported model {path} does not exist.")
    if kind == "onnx":
        return _onnx_extra_files(path)
    return _zip_extra_files(path, "TorchScript" if kind == "torchscript" else "torch.export (.pt2)")


def model_file_format(path: str | os.PathLike) -> str:
    """The export format of a model file as MONAI Deploy takes it: ``"onnx"`` or ``"program"`` by suffix (see
    :data:`EXPORT_FORMATS`), any other file a TorchScript archive (``"torchscript"``)."""
    suffix = Path(path).suffix.lower()
    return next((name for name in ("onnx", "program") if suffix == EXPORT_FORMATS[name]), "torchscript")


def _archive_member(archive: zipfile.ZipFile, stem: str, name: str, path: Path) -> tuple[str, str]:
    """The member holding config ``name`` (without suffix) and its suffix, found as MONAI Deploy finds it."""
    members = archive.namelist()
    for suffix in CONFIG_SUFFIXES:
        expected = f"{stem}/extra/{name}{suffix}"
        if expected in members:
            return expected, suffix
    for suffix in CONFIG_SUFFIXES:
        for member in members:
            if f"{name}{suffix}".casefold() in member.casefold():
                return member, suffix
    raise FileNotFoundError(
        f"{path} holds no {name}{CONFIG_SUFFIXES[0]} (expected {stem}/extra/{name}.json, as `python -m monai.bundle "
        f"ckpt_export --meta_file ... --config_file ...` writes it); its extra files are "
        f"{[member for member in members if '/extra/' in member]}."
    )


def _archive_configs(path: Path, names: Sequence[str]) -> list[tuple[str, bytes, str]]:
    """``(member, content, suffix)`` of the metadata and the configs ``names`` in a TorchScript archive."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a TorchScript archive (a zip file written by ckpt_export).")
    with zipfile.ZipFile(path) as archive:
        found = [_archive_member(archive, path.stem, name, path) for name in ["metadata", *names]]
        return [(member, archive.read(member), suffix) for member, suffix in found]


def _named_configs(path: Path, names: Sequence[str]) -> list[tuple[str, bytes, str]]:
    """``(file name, content, suffix)`` of the metadata and the configs ``names`` an ONNX or ``.pt2`` export carries
    as named files (``metadata.json``, ...)."""
    files = read_export_files(path)
    found = {
        name: next((f"{name}{suffix}" for suffix in CONFIG_SUFFIXES if f"{name}{suffix}" in files), None)
        for name in ["metadata", *names]
    }
    missing = [f"{name}.json" for name, file in found.items() if file is None]
    if missing:
        raise FileNotFoundError(
            f"{path} holds no {', '.join(missing)} (expected the files `monai-mine export` stores with the model); "
            f"it holds {sorted(files)}."
        )
    return [(file, files[file].encode(), Path(file).suffix) for file in found.values()]


def read_export_configs(path: str | os.PathLike, config_names: str | Sequence[str] = ("inference",)) -> ConfigParser:
    """A ``ConfigParser`` holding the bundle metadata (as ``_meta_``) and the configs an exported model carries,
    read as MONAI Deploy reads them (``monai.deploy.operators.monai_bundle_inference_operator.get_bundle_config``):
    from a TorchScript archive the member ``<stem>/extra/<name>.json`` (``.yaml``, ``.yml``), else any member whose
    name contains ``<name>.json``; from an ONNX or ``.pt2`` export the named files it carries
    (:func:`read_export_files`).

    Args:
        path: the exported file (:func:`model_file_format`: other than ``.onnx`` and ``.pt2``, a TorchScript archive).
        config_names: the configs to read, with or without suffix; later ones override earlier top-level keys.

    Raises:
        FileNotFoundError: when the file does not exist or lacks the metadata or a config.
        ValueError: naming the file when it is not of its format, or a config is not valid JSON/YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model {path} does not exist.")
    names = [config_names] if isinstance(config_names, str) else list(config_names)
    names = [name.split(".")[0] for name in names]
    read = _archive_configs if model_file_format(path) == "torchscript" else _named_configs
    (member, metadata, _), *texts = read(path, names)
    parser = ConfigParser()
    try:
        parser.read_meta(f=json.loads(metadata))
    except json.JSONDecodeError as error:
        raise ValueError(f"{member} in {path} is not valid JSON: {error.msg} at line {error.lineno}.") from error
    with tempfile.TemporaryDirectory() as folder:  # through files: ConfigParser reads YAML by suffix
        files = []
        for name, (_, data, suffix) in zip(names, texts):
            files.append(Path(folder) / f"{len(files)}_{name}{suffix}")
            files[-1].write_bytes(data)
        try:
            parser.read_config(f=[os.fspath(file) for file in files])
        except ValueError as error:
            raise ValueError(f"cannot read the configs {names} stored in {path}: {error}") from error
    return parser


def _read_record(files: dict[str, str], path: Path) -> ModelRecord | None:
    if RECORD_EXTRA_FILE not in files:
        return None
    try:
        data = json.loads(files[RECORD_EXTRA_FILE])
    except json.JSONDecodeError as error:
        raise ValueError(f"{RECORD_EXTRA_FILE} in {path} is not valid JSON: {error.msg}.") from error
    return ModelRecord.from_dict(data, f"{path} ({RECORD_EXTRA_FILE})")


class ExportedNetwork(nn.Module):
    """An exported registration network as a module: ``forward(image (B, 2, X, Y, Z)) -> ddf (B, 3, X, Y, Z)``.

    Checks the input first (with a message naming the file), then runs the exported program once per batch item
    when the export takes a batch of one (ONNX and ``.pt2``), in one call otherwise (TorchScript).

    The exported program is kept outside the module tree: its device is chosen when it is loaded
    (:func:`load_exported`), and ``.to()``, ``.eval()`` or ``channels_last`` conversions of this module leave it as it
    is (a ``torch.export`` module refuses ``.eval()``; it was exported in evaluation mode).

    Args:
        run: the exported program: ``(1 or B, 2, X, Y, Z) -> (1 or B, 3, X, Y, Z)``.
        path: the file it came from, for messages.
        format: ``"torchscript"``, ``"onnx"`` or ``"program"``.
        total_stride: every spatial size must be a multiple of it.
        min_size: the least spatial size the export accepts.
        batch: the batch size the export takes (``None``: any).
    """

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        path: Path,
        format: str,
        total_stride: int = 1,
        min_size: int = 1,
        batch: int | None = None,
    ) -> None:
        super().__init__()
        self._run = run
        self.path = Path(path)
        self.format = format
        self.total_stride = int(total_stride)
        self.min_size = int(min_size)
        self.batch = batch

    def extra_repr(self) -> str:
        return f"{self.format}, {self.path}, total_stride={self.total_stride}, min_size={self.min_size}"

    def check_input(self, image: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``image`` is (B, 2, X, Y, Z) with sizes the export accepts."""
        shape = tuple(image.shape)
        spatial = shape[2:]
        if (
            len(shape) != 5
            or shape[1] != 2
            or any(size % self.total_stride or size < self.min_size for size in spatial)
        ):
            raise ValueError(
                f"the exported network {self.path} takes image of shape (B, 2, X, Y, Z) with each spatial size a "
                f"multiple of {self.total_stride} and at least {self.min_size}, got {shape}; resample the images."
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed, float32.

        Returns:
            the DDF, Tensor in shape (B, 3, X, Y, Z), float32, voxels, on ``image``'s device (no gradient: an
            export is for inference).
        """
        self.check_input(image)
        image = image.detach().float()
        with torch.no_grad():
            if self.batch is None or image.shape[0] == self.batch:
                return self._run(image)
            return torch.cat([self._run(item[None]) for item in image], dim=0)


@dataclass(eq=False)
class ExportedModel:
    """An exported registration network loaded with what it carries.

    Attributes:
        network: the :class:`ExportedNetwork`.
        record: its model record (``None`` only for a TorchScript archive without one, loaded with
            ``require_record=False``).
        files: the extra files by name (:func:`read_export_files`).
        path: the file.
        format: ``"torchscript"``, ``"onnx"`` or ``"program"``.
    """

    network: ExportedNetwork
    record: ModelRecord | None
    files: dict[str, str] = field(default_factory=dict)
    path: Path = Path()
    format: str = "torchscript"

    @property
    def metadata(self) -> dict[str, Any]:
        """The bundle metadata the export carries (``{}`` when none)."""
        return json.loads(self.files[METADATA_EXTRA_FILE]) if METADATA_EXTRA_FILE in self.files else {}


def _failure(path: Path, kind: str, error: Exception) -> ValueError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return ValueError(f"cannot load {path} as a {kind} model ({reason}).")


def _torchscript_runner(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        module = torch.jit.load(os.fspath(path), map_location=device).eval()
    except RuntimeError as error:
        raise _failure(path, "TorchScript", error) from error
    return lambda image: module(image)


def _program_runner(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        program = torch.export.load(os.fspath(path))
    except Exception as error:  # a corrupt archive raises many kinds
        raise _failure(path, "torch.export (.pt2)", error) from error
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module = program.module()
    return lambda image: module(image)


def _onnx_providers(device: torch.device, onnxruntime: Any) -> list[str]:
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    return [name for name in wanted if name in onnxruntime.get_available_providers()] + ["CPUExecutionProvider"]


def _onnx_runner(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ONNX Runtime session (``torch.get_num_threads()`` threads) as ``(1, 2, X, Y, Z) -> (1, 3, X, Y, Z)``."""
    onnxruntime = require_export_extra("onnxruntime", f"running the ONNX model {path}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        session = onnxruntime.InferenceSession(os.fspath(path), options, providers=_onnx_providers(device, onnxruntime))
    except Exception as error:  # onnxruntime raises its own kinds for an unreadable model
        raise _failure(path, "ONNX", error) from error
    input_name = session.get_inputs()[0].name

    def run(image: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {input_name: array})[0]).to(image.device)

    return run


_RUNNERS = {"torchscript": _torchscript_runner, "onnx": _onnx_runner, "program": _program_runner}


def load_exported(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    require_record: bool = True,
    format: str | None = None,
) -> ExportedModel:
    """Load an exported network (``.ts``, ``.onnx`` or ``.pt2``) as a module with its model record.

    Args:
        path: the exported file.
        device: where the network runs (ONNX Runtime: CUDA when its provider is installed, else the CPU; results
            come back on the input's device).
        require_record: refuse a file without a model record (only TorchScript archives written by
            ``python -m monai.bundle ckpt_export`` lack one; MONAI Deploy reads their ``inference.json`` instead).
        format: ``"torchscript"``, ``"onnx"`` or ``"program"`` (default: :func:`export_format` of the suffix).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: naming the file for an unknown suffix, a file that is not of its format, or a file without the
            model record ``monai-mine export`` stores in it.
    """
    path = Path(path)
    kind = export_format(path) if format is None else format
    if kind not in _RUNNERS:
        raise ValueError(f"unknown export format {format!r} of {path}: expected one of {sorted(_RUNNERS)}.")
    files = read_export_files(path, kind)
    record = _read_record(files, path)
    if record is None and require_record:
        raise ValueError(
            f"{path} carries no model record ({RECORD_EXTRA_FILE}, giving the working size and preprocessing): "
            f"expected a file written by `monai-mine export --format {kind}`; export the bundle's weights again."
        )
    info = json.loads(files.get(EXPORT_EXTRA_FILE, "{}"))
    run = _RUNNERS[kind](path, torch.device(device))
    network = ExportedNetwork(
        run,
        path,
        kind,
        total_stride=info.get("total_stride", 1),
        min_size=info.get("min_size", 1),
        batch=info.get("batch"),
    )
    return ExportedModel(network=network.eval(), record=record, files=files, path=path, format=kind)
