# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The one way from a bundle and trained weights, or an exported model, to a network, its preprocessing and its loss.

:func:`load_trained_model` is the one model loader every surface calls: ``monai-mine register`` and
``monai-mine export``, the MONAI Deploy adapter (:func:`monai_mine.apps.deploy.load_registration_bundle`), MONAI Label
(:func:`monai_mine.apps.label.load_bundle_network`) and the benchmark (the speed benchmark reads configs with
:func:`read_bundle_config`). It takes a bundle folder with its trained weights (a state dict with its model record
beside it, or a training checkpoint holding it), a bundle folder with an exported network, or an exported model alone
(the configs it carries); weights are read as data (``torch.load(weights_only=True)``), and no export format unpickles
code. :func:`apply_weights_record` does the same for configs another tool parses: the bundles' own evaluate and
inference workflows (through :func:`apply_model_record`) and MONAI Label's infer task. Both read a bundle's configs
as ``monai.bundle`` does (files merged in order, then overrides), apply the weights' model record (docs/design.md
section 8) and refuse an override that contradicts it.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from monai_mine.bundle.context import running_parser
from monai_mine.bundle.exported import CONFIG_SUFFIXES, load_exported, model_file_format, read_export_configs
from monai_mine.bundle.paths import bundle_weights
from monai_mine.bundle.record import ModelRecord, apply_record
from monai_mine.bundle.weights import describe_state_mismatch, read_weights, weights_record
from monai_mine.networks.contracts import RegistrationStage

__all__ = [
    "TrainedModel",
    "apply_model_record",
    "apply_weights_record",
    "configured_inferer",
    "configured_instance_optimizer",
    "load_trained_model",
    "read_bundle_config",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIGS = ("train.json", "inference.json")
"""The bundle configs read by default, merged in this order: ``inference.json`` defines the network and its
preprocessing as inference runs them, ``train.json`` adds the training settings the model record refers to."""


def _config_paths(bundle_dir: Path, config_files: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if config_files is None:
        config_files = [bundle_dir / "configs" / name for name in DEFAULT_CONFIGS]
    elif isinstance(config_files, (str, os.PathLike)):
        config_files = [config_files]
    paths = [os.fspath(path) for path in config_files]
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} of bundle {bundle_dir} does not exist.")
    return paths


def _parser(paths: list[str], bundle_dir: Path) -> ConfigParser:
    parser = ConfigParser()
    try:
        parser.read_config(paths)
        candidates = [bundle_dir / "configs" / f"metadata{suffix}" for suffix in CONFIG_SUFFIXES]
        metadata = next((file for file in candidates if file.is_file()), None)
        if metadata is not None:
            parser.read_meta(os.fspath(metadata))
    except ValueError as error:
        raise ValueError(f"cannot read the configs {paths}: {error}") from error
    parser["bundle_root"] = os.fspath(bundle_dir)
    return parser


def read_bundle_config(
    bundle_dir: str | os.PathLike,
    config_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    overrides: Mapping[str, Any] | None = None,
    record: ModelRecord | None = None,
) -> ConfigParser:
    """A bundle's configs as ``monai.bundle`` reads them, with a model record applied.

    Args:
        bundle_dir: the bundle folder (``bundle_root`` is set to it).
        config_files: config files merged in order (default :data:`DEFAULT_CONFIGS` of ``configs/``), e.g. with an
            overlay.
        overrides: ``{config id: value}`` set after the files, as ``--id value`` on MONAI's command line.
        record: the trained weights' record: its values replace the configs' defaults.

    Raises:
        FileNotFoundError: naming a missing bundle folder or config file.
        ValueError: when a config cannot be read or an override contradicts the record (naming both values).
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise FileNotFoundError(f"bundle {bundle_dir} does not exist (expected a folder such as bundles/vtn_addd).")
    paths = _config_paths(bundle_dir, config_files)
    parser = _parser(paths, bundle_dir)
    if overrides:
        parser.update(dict(overrides))
    if record is not None:
        apply_record(parser, record, _parser(paths, bundle_dir), overrides=list(overrides or ()))
    return parser


@dataclass(eq=False)
class TrainedModel:
    """A trained registration network with what registering a pair needs from its bundle.

    Attributes:
        network: ``forward(image (B, 2, X, Y, Z)) -> ddf (B, 3, X, Y, Z)`` in voxels, in eval mode on ``device``.
        image_size: edge of the cubic working grid, a multiple of the network's ``total_stride``.
        intensity: the dictionary intensity transform on keys ``moving_image``/``fixed_image`` (``None``: images go in
            unchanged).
        config: the bundle's configs with the record applied (its ``loss``, ``optimizer``, ...), or ``None`` for a
            network given directly.
        record: the weights' model record (``None`` for weights saved without one).
        name: the bundle's name, for messages.
        weights: the file the weights came from (an exported model's file for an exported network).
        device: where the network is.
    """

    network: nn.Module
    image_size: int
    intensity: Callable[[dict], dict] | None = None
    config: ConfigParser | None = None
    record: ModelRecord | None = None
    name: str = "network"
    weights: Path | None = None
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        stride = self.network.total_stride if isinstance(self.network, RegistrationStage) else 1
        if int(self.image_size) < 2 or int(self.image_size) % stride:
            raise ValueError(
                f"image_size {self.image_size} of bundle {self.name!r} must be a multiple of the network's total "
                f"stride {stride}."
            )
        self.image_size = int(self.image_size)
        self.device = torch.device(self.device)

    def instance_optimizer(self, steps: int | str) -> Any:
        """The configs' ``instance_optimizer`` with ``steps``: Adam steps per level, a preset name or a schedule
        ``A/B/C`` (:func:`configured_instance_optimizer`).

        Raises:
            ValueError: when the model has no bundle config, or its configs define no ``instance_optimizer``.
        """
        return configured_instance_optimizer(
            self.config, steps, f"{self.name!r}", "load it with monai_mine.bundle.load_trained_model"
        )


def configured_instance_optimizer(parser: ConfigParser | None, steps: int | str, source: str, remedy: str) -> Any:
    """A bundle config's ``instance_optimizer`` (a :class:`~monai_mine.optimization.InstanceOptimizer`) with its
    ``instance_optimization_steps`` set to ``steps``, built anew; the configs are left as they were.

    Args:
        parser: the bundle's configs (``None``: none known).
        steps: what ``--instance_optimization`` accepts
            (:func:`~monai_mine.optimization.schedule.instance_optimization_schedule`): Adam steps per level, a preset
            name or a schedule ``A/B/C``; a preset is set in its explicit form, so both build the same optimiser.
        source: what the configs belong to, for the message.
        remedy: what to do when they define no optimiser, for the message.

    Raises:
        ValueError: naming ``source`` when there are no configs or they define no ``instance_optimizer``, or naming
            a value ``--instance_optimization`` does not accept.
    """
    from monai_mine.optimization.schedule import instance_optimization_schedule

    schedule = instance_optimization_schedule(steps)
    if parser is None or "instance_optimizer" not in parser:
        raise ValueError(
            f"{source} has no instance_optimizer in its bundle configs: {remedy}, or build a "
            "monai_mine.optimization.InstanceOptimizer."
        )
    key = "instance_optimization_steps"
    previous = parser.get(key, 0)
    parser[key] = schedule.value
    try:
        return parser.get_parsed_content("instance_optimizer", lazy=False)
    finally:
        parser[key] = previous


def configured_inferer(parser: ConfigParser | None, steps: int | str, source: str, remedy: str) -> Any:
    """The bundle's inferer with the instance optimisation ``steps`` asks for: an
    :class:`~monai_mine.optimization.InstanceOptimizationInferer` around :func:`configured_instance_optimizer`
    (the network alone for 0 steps). For a caller that parses the configs itself (MONAI Label's infer request).

    Raises:
        ValueError: as :func:`configured_instance_optimizer`.
    """
    from monai_mine.optimization.instance import InstanceOptimizationInferer
    from monai_mine.optimization.schedule import instance_optimization_schedule

    schedule = instance_optimization_schedule(steps)
    if not schedule.refines:
        return InstanceOptimizationInferer(None)
    return InstanceOptimizationInferer(configured_instance_optimizer(parser, schedule, source, remedy))


def _network_state(checkpoint: Any, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("network"), Mapping):
        return checkpoint["network"]
    if isinstance(checkpoint, Mapping) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    found = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise ValueError(
        f"checkpoint {path} holds neither network weights (a state dict, as models/model.pt) nor a training "
        f"checkpoint with 'network' (as models/checkpoint.pt); found {found}."
    )


def load_trained_model(
    source: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    model: str | os.PathLike | None = None,
    timer: Any = None,
    require_record: bool = True,
) -> TrainedModel:
    """Load a trained registration model: its network and preprocessing built as its model record says.

    Args:
        source: a bundle folder, e.g. ``bundles/vtn_addd`` (or a copy anywhere), or an exported model (``.onnx``,
            ``.pt2``, or a TorchScript archive such as ``models/model.ts``, also of ``python -m monai.bundle
            ckpt_export``): its network, with the configs it carries (as MONAI Deploy reads them,
            :func:`~monai_mine.bundle.exported.read_export_configs`) and the record they hold, if any.
        weights: (bundle folder) a state dict (default ``<source>/models/model.pt``) or a training checkpoint holding
            ``{"network": ..., "model_record": ...}`` (``models/checkpoint.pt``).
        config_files: the bundle configs to read (default :data:`DEFAULT_CONFIGS` of ``configs/``); an overlay may
            follow. For an exported model: the names of the configs it carries (default ``inference``).
        overrides: ``{config id: value}``, as on MONAI's command line (e.g. ``{"image_size": 128}``); one that
            contradicts the record is an error.
        device: where to put the network.
        model: (bundle folder) an exported network (``.ts``, ``.onnx``, ``.pt2``, see :mod:`monai_mine.bundle.exported`)
            instead of ``network_def`` and weights: the record it carries is applied to the bundle's configs (working
            size, intensity, instance optimiser), and the network is the exported one
            (:class:`~monai_mine.bundle.exported.ExportedNetwork`).
        timer: a :class:`~monai_mine.timing.StageTimer` to add the seconds of ``"config parsing"`` and
            ``"model build + weight load"`` to (an exported model's loading all counts as the latter).
        require_record: (with ``model``) refuse an export without a model record; ``False`` takes the bundle's
            configs as they are (as MONAI Deploy runs a folder's ``ckpt_export`` archive ``models/model.ts``).

    Raises:
        FileNotFoundError: naming a missing bundle, config, weights or exported file.
        ValueError: naming the file when weights or record cannot be read or do not fit, when ``weights`` or
            ``model`` is given with an exported model or both are given, when an exported file has an unknown suffix
            or (``require_record``) no record, or naming both values when an override contradicts the record.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(
            f"bundle {source} does not exist (expected a folder such as bundles/vtn_addd, or an exported model)."
        )
    start = time.perf_counter()
    if model is not None or source.is_file():
        trained = _exported_model(source, model, weights, config_files, overrides, device, require_record)
        if timer is not None:
            timer.add("model build + weight load", time.perf_counter() - start)
        return trained
    bundle_dir = source
    path = bundle_weights(bundle_dir, weights)
    if weights is None and not path.is_file():
        raise FileNotFoundError(
            f"bundle {bundle_dir.name!r} has no trained weights at {path}: train it first (python -m monai.bundle run "
            f"training --config_file {bundle_dir}/configs/train.json --bundle_root {bundle_dir}) or pass the weights "
            "file."
        )
    checkpoint = read_weights(path)
    record = weights_record(path, checkpoint)
    parsing = time.perf_counter()
    parser = read_bundle_config(bundle_dir, config_files, overrides, record)
    parsed = time.perf_counter()
    name = str(parser.get("bundle_name", bundle_dir.name))
    network = parser.get_parsed_content("network_def")
    if not isinstance(network, nn.Module):
        raise ValueError(f"network_def of bundle {bundle_dir} must build a torch.nn.Module, got {type(network)}.")
    state = _network_state(checkpoint, path)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        difference = describe_state_mismatch(network.state_dict(), state)
        raise ValueError(
            f"checkpoint {path} does not fit the network of bundle {name!r} ({difference}): is it from another "
            "bundle, or trained with other settings and saved without a model record?"
        ) from error
    trained = _trained_model(network.to(device).eval(), parser, record, name, path, device)
    if timer is not None:  # a monai_mine.timing.StageTimer
        timer.add("config parsing", parsed - parsing)
        timer.add("model build + weight load", time.perf_counter() - start - (parsed - parsing))
    return trained


def _trained_model(
    network: nn.Module, parser: ConfigParser, record: ModelRecord | None, name: str, path: Path, device
) -> TrainedModel:
    return TrainedModel(
        network=network,
        image_size=parser.get_parsed_content("image_size"),
        intensity=parser.get_parsed_content("intensity") if "intensity" in parser else None,
        config=parser,
        record=record,
        name=name,
        weights=path,
        device=device,
    )


def _exported_model(
    source: Path,
    model: str | os.PathLike | None,
    weights: str | os.PathLike | None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike] | None,
    overrides: Mapping[str, Any] | None,
    device: str | torch.device,
    require_record: bool,
) -> TrainedModel:
    """:func:`load_trained_model` for an exported network: the configs of the bundle folder ``source`` (``model``:
    the export) or those the export ``source`` carries, with the export's record applied; the network the exported
    one."""
    if weights is not None:
        raise ValueError(f"pass either weights ({weights}) or an exported model ({model or source}), not both.")
    if model is None:  # an exported model alone: the configs and record it carries
        names = ["inference"] if config_files is None else config_files
        names = [names] if isinstance(names, (str, os.PathLike)) else names
        parser = read_export_configs(source, [os.fspath(name) for name in names])
        exported = load_exported(source, device, require_record=False, format=model_file_format(source))
        defaults = ConfigParser(copy.deepcopy(parser.get()))
        parser.update(dict(overrides or {}))
        if exported.record is not None:
            apply_record(parser, exported.record, defaults, overrides=list(overrides or ()))
    elif source.is_file():
        raise ValueError(f"{source} is an exported model already: pass model ({model}) with a bundle folder instead.")
    else:
        exported = load_exported(model, device, require_record=require_record)
        parser = read_bundle_config(source, config_files, overrides, exported.record)
    name = str(parser.get("bundle_name", source.name))
    return _trained_model(exported.network, parser, exported.record, name, exported.path, device)


def apply_weights_record(
    parser: ConfigParser, weights: str | os.PathLike, defaults: Sequence[str | os.PathLike]
) -> ModelRecord | None:
    """Apply the record of ``weights`` to a bundle config that some tool has read (a running workflow, MONAI
    Label's bundle tasks), so that it rebuilds the network and preprocessing the weights were trained with.

    Args:
        parser: the configs as the tool will run them (``bundle_root`` set).
        weights: the weights the tool loads (``models/model.pt``).
        defaults: the bundle's own config files for this tool (what the user's values are compared with).

    Returns:
        the record applied, or ``None`` when the weights have none (a warning) or do not exist yet (the tool's
        weights loader then says so).

    Raises:
        ValueError: when a config value the user set contradicts the record (naming both values).
    """
    path = Path(weights)
    if not path.is_file():
        return None
    record = weights_record(path, read_weights(path))
    if record is not None:
        paths = [os.fspath(file) for file in defaults]
        apply_record(parser, record, _parser(paths, Path(parser.get("bundle_root", "."))))
    return record


def apply_model_record(weights: str | os.PathLike, defaults: Sequence[str | os.PathLike]) -> ModelRecord | None:
    """:func:`apply_weights_record` on the configs being run: the bundles' evaluate and inference workflows call it
    first in ``initialize``.

    Raises:
        RuntimeError: when not called from a config being parsed.
        ValueError: when a config value the user set contradicts the record (naming both values).
    """
    parser = running_parser()
    if parser is None:
        raise RuntimeError("apply_model_record must run inside a bundle config (e.g. in its 'initialize' list).")
    return apply_weights_record(parser, weights, defaults)
