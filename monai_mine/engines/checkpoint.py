# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Checkpoints that survive a killed training, on MONAI's handlers: the best model's weights (MONAI's
``CheckpointSaver`` with a key metric, as the model zoo saves ``models/model.pt``), the resumable full checkpoint
(resumed by MONAI's ``CheckpointLoader``) and the weights loaded at an evaluation's start (``CheckpointLoader``).

Each adds to MONAI's handler only what it cannot do: writing atomically (MONAI's savers delete the previous file,
then write in place), the model record beside the best weights, one resumable file rewritten at iteration intervals
and epoch ends but not on an exception, resuming as soon as the handler is attached, and errors that name the file
and what does not fit. Files are only ever read with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointLoader, CheckpointSaver

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


class ResumableCheckpoint(CheckpointLoader):
    """Everything a training needs to continue (network, critic, optimiser, scheduler, trainer, ...) in one fixed
    file, and MONAI's ``CheckpointLoader`` resuming from it: with ``resume=True`` the file is loaded when the handler
    is attached, so the trainer continues from the saved iteration.

    The file is rewritten atomically every ``save_interval`` iterations, at every epoch's end and at completion, and
    not on an exception (MONAI's ``CheckpointSaver`` numbers its interval files, deletes the previous file before
    writing the next in place, and on an exception would write the state of a failed iteration over the last
    complete checkpoint); a killed run therefore loses at most ``save_interval`` iterations and never corrupts the
    checkpoint. Resuming is MONAI's: the file read with ``weights_only=True``, each object loaded with Ignite's
    ``Checkpoint.load_objects``, and the trainer trained to this run's ``max_epochs`` (longer or shorter than the
    saved run's); fewer than the epochs already trained is refused. Resumed within an epoch, it continues the
    iteration count, but Ignite restarts the data loader at the epoch's first batch, so the rest of that epoch sees a
    new draw of pairs (the same pairs again without shuffling).

    Args:
        save_path: the checkpoint file, e.g. ``models/checkpoint.pt``.
        save_dict: name -> object with ``state_dict``/``load_state_dict``; the trainer it is attached to is added as
            ``"trainer"`` (MONAI's ``load_dict``).
        save_interval: also save every this many iterations (0: only at epoch ends and completion).
        resume: load ``save_path`` when attaching; it must exist.

    Raises:
        ValueError: when ``save_interval`` is negative.
        AssertionError: (MONAI's) when ``save_dict`` is empty.
    """

    def __init__(
        self, save_path: str | os.PathLike, save_dict: Mapping[str, Any], save_interval: int = 0, resume: bool = False
    ) -> None:
        if save_interval < 0:
            raise ValueError(f"save_interval must be >= 0 iterations, got {save_interval}.")
        super().__init__(os.fspath(save_path), dict(save_dict), map_location="cpu")
        self.save_path = Path(save_path)
        self.save_interval = save_interval
        self.resume = resume

    def attach(self, engine: Engine) -> None:
        """Add the trainer itself to the saved objects (as ``"trainer"``), resume now if asked, and schedule saving."""
        self.load_dict.setdefault("trainer", engine)
        if self.resume:
            self(engine)
        if self.save_interval:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def __call__(self, engine: Engine) -> None:
        """Load every object's state from the checkpoint file (MONAI's ``CheckpointLoader``); ``engine`` keeps this
        run's ``max_epochs``.

        Raises:
            FileNotFoundError: when there is no checkpoint to resume from.
            ValueError: naming the file when it cannot be read (only tensors and plain data are read from it), or
                when this run's ``max_epochs`` is fewer than the epochs it has trained already.
            KeyError: when the checkpoint lacks an object (e.g. it was written by another bundle).
            RuntimeError: naming the file and the object when an object does not fit its entry.
        """
        if not self.save_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {self.save_path} (train once without resume).")
        max_epochs = engine.state.max_epochs
        try:
            super().__call__(engine)
        except Exception as error:
            raise self._diagnose(engine, max_epochs, error) from error
        logger.info(f"resumed from {self.save_path} at iteration {engine.state.iteration}")

    def load(self) -> None:
        """Load the checkpoint into the objects now, outside a run: as :meth:`__call__` (with its errors) on the
        trainer of ``save_dict``, or with no epochs to check when it holds none."""
        trainer = self.load_dict.get("trainer")
        self(trainer if isinstance(trainer, Engine) else Engine(lambda engine, batch: None))

    def _diagnose(self, engine: Engine, max_epochs: int | None, error: Exception) -> Exception:
        """The error naming what does not fit (the file is read again: this is the failure path only)."""
        try:
            checkpoint = read_weights(self.save_path)
        except ValueError as unreadable:
            return unreadable
        missing = sorted(set(self.load_dict) - set(checkpoint))
        if missing:
            return KeyError(f"checkpoint {self.save_path} lacks {missing}; it has {sorted(checkpoint)}.")
        done = engine.state.epoch  # the checkpoint's, once the trainer was loaded
        if max_epochs is not None and done > max_epochs:
            return ValueError(
                f"cannot resume from {self.save_path} with max_epochs {max_epochs}: it has trained {done} epoch(s) "
                f"already; expected max_epochs >= {done} (or train afresh without resume)."
            )
        for name, obj in self.load_dict.items():
            if isinstance(obj, torch.nn.Module) and isinstance(checkpoint[name], Mapping):
                difference = describe_state_mismatch(unwrap_network(obj).state_dict(), checkpoint[name])
                if difference != "same keys and shapes":
                    return RuntimeError(
                        f"checkpoint {self.save_path}: cannot load {name!r}: it does not fit this bundle's network "
                        f"({difference}); another bundle or other settings?"
                    )
        return RuntimeError(f"checkpoint {self.save_path}: cannot load {sorted(self.load_dict)}: {error}")

    def save(self, engine: Engine | None = None) -> None:
        """Write every object's state to the checkpoint file, atomically, on the main process."""
        if is_main_process():
            atomic_torch_save({name: _state_dict(obj) for name, obj in self.load_dict.items()}, self.save_path)


class _AtomicWeights(BaseSaveHandler):
    """The save handler of :class:`BestModelSaver`'s key-metric ``Checkpoint``: :meth:`BestModelSaver.write` of the
    weights and their score on the main process, and no removal (MONAI's removes the previous file before writing the
    next in place; here the next replaces it atomically)."""

    def __init__(self, saver: BestModelSaver) -> None:
        self.saver = saver

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if is_main_process():
            self.saver.write(checkpoint, float((metadata or {})["priority"]))

    def remove(self, filename: str) -> None:
        """Nothing: the next save replaces the file."""


class BestModelSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` as the model zoo saves ``models/model.pt`` (``save_key_metric=True``,
    ``key_metric_filename="model.pt"``): the network's weights only, whenever the validation metric improves.

    Written atomically, with the training's model record beside them; attach it to the validation evaluator (it
    saves at the evaluation's end), and put it in the resumable checkpoint's ``save_dict`` so that a resumed training
    remembers the best value. A training in phases restores the best weights (:meth:`restore`) and selects its own
    best model in each phase (:meth:`reset`).

    Args:
        network: the network whose weights to save (a DistributedDataParallel wrapper is unwrapped).
        save_path: e.g. ``models/model.pt``.
        metric_name: the evaluator metric to maximise.
        record: the training's model record, written beside the weights (``models/model_config.json``) so that every
            consumer rebuilds the network and preprocessing they were trained with; its ``training`` part also gets
            the validation score of the saved weights (``{"validation": {metric_name: value}}``).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        save_path: str | os.PathLike,
        metric_name: str,
        record: ModelRecorder | None = None,
    ) -> None:
        self.save_path = Path(save_path)
        try:  # MONAI's saver creates the folder now: its error names the file, as a failed write's does
            super().__init__(
                os.fspath(self.save_path.parent),
                {"model": network},
                save_key_metric=True,
                key_metric_name=metric_name,
                key_metric_filename=self.save_path.name,
            )
        except OSError as error:
            where = f"cannot write {self.save_path} (in folder {self.save_path.parent})"
            raise OSError(error.errno, f"{where}: {error.strerror or error}") from error
        self._key_metric_checkpoint.save_handler = _AtomicWeights(self)
        self.network = network
        self.metric_name = metric_name
        self.record = record

    def metrics_completed(self, engine: Engine) -> None:
        """Save the weights when the evaluator's metric beats the best so far (MONAI's key-metric saving).

        Raises:
            KeyError: naming the evaluator's metrics when ``metric_name`` is not among them.
        """
        if self.metric_name not in engine.state.metrics:
            raise KeyError(f"BestModelSaver: no metric {self.metric_name!r}; have {sorted(engine.state.metrics)}.")
        super().metrics_completed(engine)

    def __call__(self, evaluator: Engine) -> None:
        """:meth:`metrics_completed`: what :meth:`attach` runs at every evaluation's end."""
        self.metrics_completed(evaluator)

    def write(self, weights: Mapping[str, torch.Tensor], value: float) -> None:
        """Write the weights (a state dict) that scored ``value``, with the record beside them, both atomically."""
        record = self.record.snapshot() if self.record is not None else None
        if record is not None:
            record.training["validation"] = {self.metric_name: value}
        save_weights(weights, self.save_path, record)
        logger.info(f"new best {self.metric_name} = {value:.4f}: saved {self.save_path}")

    @property
    def best_value(self) -> float:
        """The best metric value saved so far (``-inf`` before the first save and after :meth:`reset`)."""
        saved = self._key_metric_checkpoint._saved
        return float(saved[0].priority) if saved else float("-inf")

    @best_value.setter
    def best_value(self, value: float) -> None:
        self.load_state_dict({"best_value": value})

    def restore(self) -> bool:
        """Load the best weights saved so far into the network; ``False`` when none were saved yet."""
        if self.best_value == float("-inf") or not self.save_path.is_file():
            return False
        unwrap_network(self.network).load_state_dict(read_weights(self.save_path, "best weights"))
        return True

    def reset(self) -> None:
        """Forget the best value (a new training phase selects its own best model)."""
        self._key_metric_checkpoint.reset()

    def state_dict(self) -> dict[str, float]:
        """``{"best_value": float}``: what a resumable checkpoint keeps of this saver."""
        return {"best_value": self.best_value}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Resume the best value from :meth:`state_dict` (MONAI's key-metric tracking list of one file)."""
        value = float(state["best_value"])
        saved = [] if value == float("-inf") else [(value, self.save_path.name)]
        self._key_metric_checkpoint.load_state_dict({"_saved": saved})


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
