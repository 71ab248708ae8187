# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Running an exported registration bundle the way MONAI Deploy reads it, without the MONAI Deploy App SDK.

``python -m monai.bundle ckpt_export`` writes ``model.ts``: a TorchScript zip archive whose folder ``<stem>/extra/``
holds the bundle's ``metadata.json`` and its config (``inference.json``). MONAI Deploy's bundle inference operator
(``monai.deploy.operators.monai_bundle_inference_operator.get_bundle_config``) reads those two files from the
archive (at ``<stem>/extra/<name>.json``, else any member whose name contains ``<name>.json``), builds the
config's ``preprocessing`` without its ``LoadImage``/``SaveImage`` transforms, and loads the network with
``torch.jit.load``; a bundle folder is read from ``configs/`` and ``models/model.ts`` (or ``models/model.pt`` and
``network_def``) instead. :func:`read_bundle_configs` and :class:`RegistrationBundle` do the same (the network
through monai-mine's one model loader, :func:`monai_mine.bundle.load_trained_model`), so that what runs in a MONAI
Deploy application can be run and tested here, and then register a pair:

    moving, fixed (3D MetaTensors) -> the bundle's preprocessing on ``moving_image``/``fixed_image``
    -> network input (1, 2, X, Y, Z) (0 moving, 1 fixed) -> DDF (1, 3, X, Y, Z), float32, voxels
    -> warped = moving(x + ddf(x)) (the preprocessed moving image, bilinear, border padding)

Unlike the SDK's stock operator, which casts image outputs to uint8 and keeps only the first output, both results
stay float32 and keep the affine of the working grid: the fixed image after the bundle's preprocessing
(reoriented to RAS and resized to the bundle's ``image_size``), as the bundle's own inference writes them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose
from torch import nn

from monai_mine.bundle import load_trained_model
from monai_mine.bundle.exported import CONFIG_SUFFIXES, read_export_configs
from monai_mine.bundle.loader import configured_instance_optimizer
from monai_mine.flows import warp
from monai_mine.inference import FastRegistration
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import FIXED_IMAGE, MOVING_IMAGE

__all__ = [
    "CONFIG_SUFFIXES",
    "RegistrationBundle",
    "WorkingGridRegistration",
    "load_registration_bundle",
    "read_bundle_configs",
]

_DISALLOWED_TRANSFORMS = ("LoadImage", "SaveImage")


def _folder_config(folder: Path, name: str) -> Path:
    for suffix in CONFIG_SUFFIXES:
        candidate = folder / "configs" / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"bundle folder {folder} has no configs/{name}.json (nor .yaml/.yml).")


def read_bundle_configs(path: str | os.PathLike, config_names: str | Sequence[str] = ("inference",)) -> ConfigParser:
    """A ``ConfigParser`` holding a bundle's metadata (as ``_meta_``) and configs, read as MONAI Deploy reads them.

    Args:
        path: an exported TorchScript archive (``model.ts``), another export of ``monai-mine export`` (``.onnx``,
            ``.pt2``: the same files, read from its ``metadata_props`` or extra files) or a bundle folder (with
            ``configs/metadata.json``).
        config_names: the configs to read, without suffix; later ones override earlier top-level keys.

    Raises:
        FileNotFoundError: when ``path`` does not exist or lacks the metadata or a config.
        ValueError: when a file is not a zip archive (an ONNX model) or a config is not valid JSON/YAML.
    """
    path = Path(path)
    names = [config_names] if isinstance(config_names, str) else list(config_names)
    names = [name.split(".")[0] for name in names]
    if path.is_dir():
        parser = ConfigParser()
        metadata = _folder_config(path, "metadata")
        parser.read_meta(f=str(metadata))
        parser.read_config(f=[str(_folder_config(path, name)) for name in names])
        parser["bundle_root"] = str(path)
        return parser
    if not path.is_file():
        raise FileNotFoundError(f"bundle {path} does not exist (expected an exported model.ts or a bundle folder).")
    return read_export_configs(path, names)


def _check_data_format(metadata: Mapping[str, Any], path: Path) -> None:
    """Raise unless the metadata describes a registration network: ``image`` (2 channels) -> ``pred`` (3)."""
    data_format = metadata.get("network_data_format", {})
    inputs, outputs = data_format.get("inputs", {}), data_format.get("outputs", {})
    problems = []
    if int(inputs.get("image", {}).get("num_channels", 0)) != 2:
        problems.append(f"input 'image' must have 2 channels (0 moving, 1 fixed), got {inputs}")
    if int(outputs.get("pred", {}).get("num_channels", 0)) != 3:
        problems.append(f"output 'pred' must have 3 channels (the DDF), got {outputs}")
    if problems:
        raise ValueError(
            f"{path} is not a monai-mine registration bundle: its network_data_format {'; '.join(problems)}."
        )


def _filtered_preprocessing(parser: ConfigParser, path: Path) -> Compose:
    """The config's ``preprocessing`` without ``LoadImage``/``SaveImage`` (the data arrive in memory)."""
    if "preprocessing" not in parser:
        raise ValueError(f"the inference config of {path} has no 'preprocessing' to apply to the pair.")
    compose = parser.get_parsed_content("preprocessing")
    transforms = compose.transforms if isinstance(compose, Compose) else list(compose)
    kept = [t for t in transforms if not any(name in type(t).__name__ for name in _DISALLOWED_TRANSFORMS)]
    return Compose(kept)


@dataclass(eq=False)
class WorkingGridRegistration:
    """The outputs of registering one pair, on the working grid (the preprocessed fixed image's grid).

    Attributes:
        ddf: MetaTensor in shape (3, X, Y, Z), float32, displacement in voxels of the working grid:
            ``warped(x) = moving(x + ddf(x))``; its ``affine`` is the working grid's voxel-to-world matrix.
        warped: MetaTensor in shape (1, X, Y, Z), float32: the preprocessed moving image warped onto the fixed one,
            with the same affine.
    """

    ddf: MetaTensor
    warped: MetaTensor

    def save(self, output_dir: str | os.PathLike, prefix: str = "") -> dict[str, Path]:
        """Write ``<prefix>ddf.nii.gz`` ((X, Y, Z, 3), float32) and ``<prefix>warped.nii.gz``, each atomically.

        Returns:
            ``{"ddf": path, "warped": path}``.
        """
        folder = Path(output_dir)
        return {
            name: save_nifti(tensor.as_tensor(), folder / f"{prefix}{name}.nii.gz", tensor.affine.numpy())
            for name, tensor in (("ddf", self.ddf), ("warped", self.warped))
        }


class RegistrationBundle:
    """An exported registration bundle, loaded as MONAI Deploy loads it, that registers moving/fixed pairs.

    Example::

        bundle = load_registration_bundle("bundles/vtn_addd/models/model.ts")
        loader = monai.transforms.LoadImage(image_only=True)
        result = bundle.register(loader("moving.nii.gz"), loader("fixed.nii.gz"))
        result.save("out")  # out/ddf.nii.gz (float32, voxels), out/warped.nii.gz

    Args:
        path: the exported ``model.ts`` or a bundle folder.
        network: the loaded network (TorchScript or eager), ``forward(image (B, 2, X, Y, Z)) -> (B, 3, X, Y, Z)``.
        parser: the bundle's metadata and inference config (see :func:`read_bundle_configs`).
        device: where the network runs.
        model_file: the file the network was loaded from (default ``path``).
        instance_optimization: Adam steps per level of the config's ``instance_optimizer`` refining each DDF on its
            pair (0: the network alone), a preset (``"fast"``, ``"balanced"``, ``"accurate"``) or a schedule
            ``"A/B/C"`` (:func:`~monai_mine.optimization.schedule.instance_optimization_schedule`).

    Raises:
        ValueError: when ``instance_optimization`` is not a value ``--instance_optimization`` accepts, or is asked of
            configs without an ``instance_optimizer``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        network: nn.Module,
        parser: ConfigParser,
        device: torch.device,
        model_file: str | os.PathLike | None = None,
        instance_optimization: int | str = 0,
    ) -> None:
        self.path = Path(path)
        self.model_file = self.path if model_file is None else Path(model_file)
        self.network = network
        self.parser = parser
        self.device = torch.device(device)
        self.metadata: dict = parser.get("_meta_", {})
        _check_data_format(self.metadata, self.path)
        self.preprocessing = _filtered_preprocessing(parser, self.path)
        self.run_network = FastRegistration(network, self.device, channels_last=False, cudnn_benchmark=False)
        self.instance_optimizer = _instance_optimizer(parser, instance_optimization, self.path)

    @property
    def name(self) -> str:
        """The bundle's name from its metadata (else the file name)."""
        return str(self.metadata.get("name", self.path.name))

    def preprocess(self, moving: torch.Tensor, fixed: torch.Tensor) -> tuple[MetaTensor, MetaTensor]:
        """The pair after the bundle's preprocessing: two MetaTensors in shape (1, X, Y, Z) on the working grid.

        Args:
            moving: 3D image as ``LoadImage`` returns it: a MetaTensor in shape (X, Y, Z) whose meta has
                ``original_channel_dim`` (``"no_channel"``) and ``affine``, or (1, X, Y, Z).
            fixed: the fixed image, likewise.
        """
        data = self.preprocessing({MOVING_IMAGE: moving, FIXED_IMAGE: fixed})
        return data[MOVING_IMAGE], data[FIXED_IMAGE]

    def register(self, moving: torch.Tensor, fixed: torch.Tensor) -> WorkingGridRegistration:
        """Register ``moving`` to ``fixed`` (see :meth:`preprocess` for the inputs).

        Returns:
            the DDF and the warped moving image, float32, on the working grid with its affine.
        """
        moving, fixed = self.preprocess(moving, fixed)
        pair = torch.cat([moving.as_tensor(), fixed.as_tensor()], dim=0)[None].to(self.device, torch.float32)
        ddf = self.run_network(pair).float()
        if ddf.shape != (1, 3, *pair.shape[2:]):
            raise ValueError(
                f"the network of {self.path} returned shape {tuple(ddf.shape)} for input {tuple(pair.shape)}; "
                f"expected a DDF (1, 3, {', '.join(map(str, pair.shape[2:]))})."
            )
        if self.instance_optimizer is not None:
            ddf, _ = self.instance_optimizer(pair[:, :1], pair[:, 1:2], ddf)
        warped = warp(pair[:, :1], ddf)
        affine = fixed.affine.clone()
        return WorkingGridRegistration(
            ddf=MetaTensor(ddf[0].cpu(), affine=affine), warped=MetaTensor(warped[0].cpu(), affine=affine.clone())
        )


def _instance_optimizer(parser: ConfigParser, steps: int | str, path: Path) -> Any:
    from monai_mine.optimization.schedule import instance_optimization_schedule

    schedule = instance_optimization_schedule(steps)
    if not schedule.refines:
        return None
    remedy = "export the bundle again with this monai-mine version, or register without instance optimisation"
    return configured_instance_optimizer(parser, schedule, f"the bundle {path}", remedy)


def load_registration_bundle(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    config_names: Sequence[str] = ("inference",),
    instance_optimization: int | str = 0,
) -> RegistrationBundle:
    """Load an exported registration bundle (``model.ts``) or a bundle folder as MONAI Deploy does.

    Args:
        path: the exported TorchScript archive, or a bundle folder (``configs/``, ``models/model.ts`` or
            ``models/model.pt``).
        device: where to run; default CUDA when available, else CPU.
        config_names: the configs holding ``preprocessing`` (MONAI Deploy's default: ``inference``).
        instance_optimization: Adam steps per level of instance optimisation on each pair (0: the network alone),
            a preset (``"fast"``, ``"balanced"``, ``"accurate"``) or a schedule ``"A/B/C"``.

    Raises:
        FileNotFoundError: naming a missing archive, folder, config or model file.
        ValueError: naming the file when it is no TorchScript archive, its configs cannot be read, or its metadata
            does not describe a registration network.
    """
    path = Path(path)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    names = [name.split(".")[0] for name in ([config_names] if isinstance(config_names, str) else config_names)]
    if path.is_dir():  # configs/ (with the metadata MONAI Deploy reads), models/model.ts else models/model.pt
        _folder_config(path, "metadata")
        scripted = path / "models" / "model.ts"
        model = scripted if scripted.is_file() else None
        files = [_folder_config(path, name) for name in names]
        trained = load_trained_model(path, config_files=files, device=device, model=model, require_record=False)
    else:  # an export, with the configs it carries
        trained = load_trained_model(path, config_files=names, device=device)
    return RegistrationBundle(path, trained.network, trained.config, device, trained.weights, instance_optimization)
