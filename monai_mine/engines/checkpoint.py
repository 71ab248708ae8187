# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Checkpoints that survive a killed training: a resumable full checkpoint and the best model's weights."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader

from monai_mine.bundle.weights import describe_state_mismatch, read_weights, save_weights
from monai_mine.engines.recorder import ModelRecorder
from monai_mine.io.atomic import atomic_output

__all__ = [
    "BestModelSaver",
    "ResumableCheckpoint",
    "WeightsLoader",
    "atomic_torch_save",
    "is_main_process",
    "unwrap_network",
]

logger = logging.getLogger(__name__)


def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper, else the network itself."""
    return getattr(network, "module", network)


def is_main_process() -> bool:
    """Whether this process writes files: rank 0 of a distributed run, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees a partial file."""
    with atomic_output(path) as temporary:
        torch.save(obj, temporary)
    return Path(path)


def _state_dict(obj: Any) -> Any:
    return unwrap_network(obj).state_dict() if isinstance(obj, torch.nn.Module) else obj.state_dict()


def _resume_to(engine: Engine, max_epochs: int, path: Path) -> None:
    """Train a resumed engine to this run's ``max_epochs`` rather than the saved run's.

    Raises:
        ValueError: naming the checkpoint when ``max_epochs`` is fewer than the epochs it has trained.
    """
    done = engine.state.epoch
    if max_epochs < done:
        raise ValueError(
            f"cannot resume from {path} with max_epochs {max_epochs}: it has trained {done} epoch(s) already; expected "
            f"max_epochs >= {done} (or train afresh without resume)."
        )
    engine.state.max_epochs = max_epochs


class ResumableCheckpoint:
    """Saves everything a training needs to continue (network, critic, optimiser, scheduler, trainer, ...) to one
    fixed file, and with ``resume=True`` loads it when attached, so the trainer continues from the saved iteration.

    The file is rewritten atomically every ``save_interval`` iterations, at every epoch's end and at completion;
    a killed run therefore loses at most ``save_interval`` iterations and never corrupts the checkpoint. A resumed
    run trains to its own ``max_epochs`` (longer or shorter than the saved run's); fewer than the epochs already
    trained is refused. Resumed within an epoch, it
    continues the iteration count, but Ignite restarts the data loader at the epoch's first batch, so the rest
    of that epoch sees a new draw of pairs (the same pairs again without shuffling).
    """

    def __init__(
        self, save_path: str | os.PathLike, save_dict: Mapping[str, Any], save_interval: int = 0, resume: bool = False
    ) -> None:
        """
        Args:
            save_path: the checkpoint file, e.g. ``models/checkpoint.pt``.
            save_dict: name -> object with ``state_dict``/``load_state_dict``; the trainer it is attached to is added
                as ``"trainer"``.
            save_interval: also save every this many iterations (0: only at epoch ends and completion).
            resume: load ``save_path`` when attaching; it must exist.
        """
        if save_interval < 0:
            raise ValueError(f"save_interval must be >= 0 iterations, got {save_interval}.")
        self.save_path = Path(save_path)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.resume = resume

    def attach(self, engine: Engine) -> None:
        """Add the trainer itself to the saved objects (as ``"trainer"``), resume if asked, and schedule saving."""
        self.save_dict.setdefault("trainer", engine)
        if self.resume:
            self.load()
        if self.save_interval:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def load(self) -> None:
        """Load every object's state from the checkpoint file.

        Raises:
            FileNotFoundError: when there is no checkpoint to resume from.
            ValueError: naming the file when it cannot be read (only tensors and plain data are read from it), or
                when this run's ``max_epochs`` is fewer than the epochs it has trained already.
            RuntimeError: naming the file when an object does not fit its entry.
            KeyError: when the checkpoint lacks an object (e.g. it was written by another bundle).
        """
        if not self.save_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {self.save_path} (train once without resume).")
        checkpoint = read_weights(self.save_path)
        missing = sorted(set(self.save_dict) - set(checkpoint))
        if missing:
            raise KeyError(f"checkpoint {self.save_path} lacks {missing}; it has {sorted(checkpoint)}.")
        for name, obj in self.save_dict.items():
            max_epochs = getattr(getattr(obj, "state", None), "max_epochs", None)  # an Ignite engine's
            try:
                unwrap_network(obj).load_state_dict(checkpoint[name])
            except (RuntimeError, ValueError, KeyError) as error:
                detail = str(error)
                if isinstance(obj, torch.nn.Module) and isinstance(checkpoint[name], Mapping):
                    difference = describe_state_mismatch(unwrap_network(obj).state_dict(), checkpoint[name])
                    detail = f"it does not fit this bundle's network ({difference}); another bundle or other settings?"
                raise RuntimeError(f"checkpoint {self.save_path}: cannot load {name!r}: {detail}") from error
            if max_epochs is not None:
                _resume_to(obj, max_epochs, self.save_path)
        trainer_state = checkpoint.get("trainer")
        if trainer_state is not None:
            logger.info(f"resumed from {self.save_path} at iteration {trainer_state.get('iteration')}")

    def save(self, engine: Engine | None = None) -> None:
        if is_main_process():
            atomic_torch_save({name: _state_dict(obj) for name, obj in self.save_dict.items()}, self.save_path)


class BestModelSaver:
    """Writes the network's weights (only them, as the model zoo's ``models/model.pt``) whenever the validation
    metric improves, atomically. Attach it to the validation evaluator; put it in the resumable checkpoint's
    ``save_dict`` so a resumed training remembers the best value.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        save_path: str | os.PathLike,
        metric_name: str,
        record: ModelRecorder | None = None,
    ) -> None:
        """
        Args:
            network: the network whose weights to save (a DistributedDataParallel wrapper is unwrapped).
            save_path: e.g. ``models/model.pt``.
            metric_name: the evaluator metric to maximise.
            record: the training's model record, written beside the weights (``models/model_config.json``) so that
                every consumer rebuilds the network and preprocessing they were trained with; its ``training``
                part also gets the validation score of the saved weights (``{"validation": {metric_name: value}}``).
        """
        self.network = network
        self.save_path = Path(save_path)
        self.metric_name = metric_name
        self.record = record
        self.best_value = float("-inf")

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.COMPLETED, self)

    def __call__(self, evaluator: Engine) -> None:
        if self.metric_name not in evaluator.state.metrics:
            raise KeyError(f"BestModelSaver: no metric {self.metric_name!r}; have {sorted(evaluator.state.metrics)}.")
        value = float(evaluator.state.metrics[self.metric_name])
        if value > self.best_value:
            self.best_value = value
            if is_main_process():
                record = self.record.snapshot() if self.record is not None else None
                if record is not None:
                    record.training["validation"] = {self.metric_name: value}
                save_weights(unwrap_network(self.network).state_dict(), self.save_path, record)
            logger.info(f"new best {self.metric_name} = {value:.4f}: saved {self.save_path}")

    def restore(self) -> bool:
        """Load the best weights saved so far into the network; ``False`` when none were saved yet."""
        if self.best_value == float("-inf") or not self.save_path.is_file():
            return False
        unwrap_network(self.network).load_state_dict(read_weights(self.save_path, "best weights"))
        return True

    def reset(self) -> None:
        """Forget the best value (a new training phase selects its own best model)."""
        self.best_value = float("-inf")

    def state_dict(self) -> dict[str, float]:
        return {"best_value": self.best_value}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best_value = float(state["best_value"])


class WeightsLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (same arguments) for a bundle's ``models/model.pt``, with errors that name the
    file and say what does not fit: no file, not a complete PyTorch file, a training checkpoint instead of network
    weights, or the weights of another network (another bundle, other ``network_channels``, ...).
    """

    def __call__(self, engine: Engine) -> None:
        path = Path(self.load_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no network weights at {path}: train the bundle first (training writes models/model.pt), or set "
                "ckpt_dir to the folder of a model.pt trained with this bundle."
            )
        try:
            super().__call__(engine)
        except Exception as error:
            raise RuntimeError(self._diagnose(path, error)) from error

    def _diagnose(self, path: Path, error: Exception) -> str:
        """What is wrong with ``path`` (read again: this is the failure path only)."""
        try:
            checkpoint = read_weights(path)
        except ValueError as unreadable:
            return str(unreadable)
        head = f"cannot load {path} into {sorted(self.load_dict)}"
        if len(self.load_dict) != 1 or not isinstance(checkpoint, Mapping):
            return f"{head}: {error}"
        name, target = next(iter(self.load_dict.items()))
        if name not in checkpoint and any(isinstance(value, Mapping) for value in checkpoint.values()):
            return (
                f"{head}: it holds the entries {sorted(checkpoint)} of a training checkpoint, not network weights; "
                "load the weights-only models/model.pt, or the checkpoint's 'network' entry."
            )
        state = checkpoint.get(name, checkpoint)
        if isinstance(target, torch.nn.Module) and isinstance(state, Mapping):
            return (
                f"{head}: its weights do not fit this bundle's network "
                f"({describe_state_mismatch(unwrap_network(target).state_dict(), state)}); were they trained with "
                "another bundle or other network settings (e.g. network_channels)?"
            )
        return f"{head}: {error}"
