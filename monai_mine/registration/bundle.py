# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A bundle's network, working size and intensity transform for registering files, and its training loss for
instance optimisation, read from the bundle's own configs with ``monai.bundle.ConfigParser``."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from monai_mine.losses.objective import RegistrationObjective

__all__ = ["BundleNetwork", "load_bundle_network", "load_bundle_objective"]


@dataclass(eq=False)
class BundleNetwork:
    """What registering a pair needs from a bundle.

    Attributes:
        network: the registration network (``forward(image (B, 2, X, Y, Z)) -> ddf (B, 3, X, Y, Z)``), in eval mode.
        image_size: edge of the cubic working grid (the bundle's ``image_size``), divisible by the network's stride.
        intensity: the bundle's dictionary intensity transform on keys ``moving_image`` and ``fixed_image``
            (``None``: images go in unchanged).
        name: the bundle's name, for messages.
        bundle_dir: the bundle's folder (its ``configs/train.json`` holds the loss for instance optimisation).
        checkpoint: the weights file loaded.
        objective_checkpoint: a training checkpoint whose ``objective`` state (e.g. a trained MINE critic) instance
            optimisation starts from, or ``None``.
        device: where the network is.
    """

    network: nn.Module
    image_size: int
    intensity: Callable[[dict], dict] | None = None
    name: str = "network"
    bundle_dir: Path | None = None
    checkpoint: Path | None = None
    objective_checkpoint: Path | None = None
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        stride = int(getattr(self.network, "total_stride", 1))
        if int(self.image_size) < 2 or int(self.image_size) % stride:
            raise ValueError(
                f"image_size {self.image_size} of bundle {self.name!r} must be a multiple of the network's total "
                f"stride {stride}."
            )
        self.image_size = int(self.image_size)
        self.device = torch.device(self.device)


def _parser(bundle_dir: Path, config: str) -> ConfigParser:
    path = bundle_dir / "configs" / config
    if not path.is_file():
        raise FileNotFoundError(f"bundle {bundle_dir} has no configs/{config} (is it a monai-mine bundle folder?).")
    parser = ConfigParser()
    try:
        parser.read_config(os.fspath(path))
    except ValueError as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    parser["bundle_root"] = os.fspath(bundle_dir)
    return parser


def _read_checkpoint(path: Path, bundle: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} for bundle {bundle!r} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(
            f"cannot read checkpoint {path} for bundle {bundle!r}: not a PyTorch file of weights ({reason})."
        ) from error


def _network_state(checkpoint: Any, path: Path, bundle: str) -> tuple[Mapping[str, torch.Tensor], bool]:
    """The network's state dict in a checkpoint, and whether the file is a training checkpoint."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("network"), Mapping):
        return checkpoint["network"], True
    if isinstance(checkpoint, Mapping) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint, False
    found = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise ValueError(
        f"checkpoint {path} for bundle {bundle!r} holds neither network weights (a state dict, as models/model.pt) "
        f"nor a training checkpoint with 'network' (as models/checkpoint.pt); found {found}."
    )


def _load_weights(network: nn.Module, state: Mapping[str, torch.Tensor], path: Path, bundle: str) -> None:
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{what} {len(keys)} (e.g. {keys[0]})"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched))
            if keys
        )
        raise ValueError(
            f"checkpoint {path} does not fit the network of bundle {bundle!r} ({details} weights): is it a checkpoint "
            "of another variant or configuration?"
        )
    network.load_state_dict(state)


def load_bundle_network(
    bundle_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
) -> BundleNetwork:
    """Build a bundle's network from its ``configs/inference.json`` and load trained weights.

    ``network_def``, ``image_size`` and ``intensity`` are read with ``monai.bundle.ConfigParser`` (``bundle_root``
    set to ``bundle_dir``, so a copied bundle works anywhere).

    Args:
        bundle_dir: the bundle's folder, e.g. ``bundles/vtn_addd``.
        checkpoint: weights to load: a state dict (``models/model.pt``, the default) or a training checkpoint
            holding ``{"network": ...}`` (``models/checkpoint.pt``).
        device: where to put the network.
        image_size: working grid edge instead of the bundle's ``image_size`` (a multiple of the network's stride).

    Raises:
        FileNotFoundError: when the bundle, its config or the checkpoint does not exist.
        ValueError: naming the file when the checkpoint cannot be read or does not fit the bundle's network.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise FileNotFoundError(f"bundle {bundle_dir} does not exist (expected a folder such as bundles/vtn_addd).")
    parser = _parser(bundle_dir, "inference.json")
    name = str(parser.get("bundle_name", bundle_dir.name))
    network = parser.get_parsed_content("network_def")
    if not isinstance(network, nn.Module):
        raise ValueError(f"network_def of bundle {bundle_dir} must build a torch.nn.Module, got {type(network)}.")
    default = checkpoint is None
    path = bundle_dir / "models" / "model.pt" if default else Path(checkpoint)
    if default and not path.is_file():
        raise FileNotFoundError(
            f"bundle {name!r} has no trained weights at {path}: train it first (python -m monai.bundle run training "
            f"--config_file {bundle_dir}/configs/train.json) or pass --checkpoint."
        )
    state, is_training_checkpoint = _network_state(_read_checkpoint(path, name), path, name)
    _load_weights(network, state, path, name)
    sibling = bundle_dir / "models" / "checkpoint.pt"
    objective_checkpoint = path if is_training_checkpoint else (sibling if default and sibling.is_file() else None)
    return BundleNetwork(
        network=network.to(device).eval(),
        image_size=int(parser.get_parsed_content("image_size")) if image_size is None else int(image_size),
        intensity=parser.get_parsed_content("intensity") if "intensity" in parser else None,
        name=name,
        bundle_dir=bundle_dir,
        checkpoint=path,
        objective_checkpoint=objective_checkpoint,
        device=torch.device(device),
    )


def load_bundle_objective(bundle: BundleNetwork) -> tuple[RegistrationObjective, torch.optim.Optimizer]:
    """The bundle's training loss and optimiser (``loss`` and ``optimizer`` of its ``configs/train.json``), bound to
    ``bundle.network``, for instance optimisation.

    Label terms (e.g. MIDiceRegNet's Dice) are dropped: a pair to register has no fixed label. The objective's own
    state (a trained MINE critic and its moving average) is loaded from ``bundle.objective_checkpoint`` when set;
    otherwise it starts as in training.

    Raises:
        ValueError: when the bundle has no folder, or the objective state does not fit the loss.
    """
    if bundle.bundle_dir is None:
        raise ValueError(f"bundle {bundle.name!r} has no folder: its configs/train.json holds the loss to optimise.")
    parser = _parser(bundle.bundle_dir, "train.json")
    parser["network"] = bundle.network  # the optimiser's parameter groups refer to @network
    objective = parser.get_parsed_content("loss")
    if not isinstance(objective, RegistrationObjective):
        raise ValueError(f"loss of {bundle.bundle_dir}/configs/train.json must be a RegistrationObjective.")
    if bundle.objective_checkpoint is not None:
        saved = _read_checkpoint(bundle.objective_checkpoint, bundle.name)
        if isinstance(saved, Mapping) and isinstance(saved.get("objective"), Mapping):
            try:
                objective.load_state_dict(saved["objective"])
            except RuntimeError as error:
                raise ValueError(
                    f"the loss state in {bundle.objective_checkpoint} does not fit bundle {bundle.name!r}: {error}"
                ) from error
    optimizer = parser.get_parsed_content("optimizer")
    kept = [term for term in objective.terms if not term.needs_labels]
    return RegistrationObjective(kept).to(bundle.device), optimizer
