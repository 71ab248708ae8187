# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The model record of a training run: its configuration and how far it has trained (docs/design.md section 8)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

from monai_mine.bundle.context import running_parser
from monai_mine.bundle.record import ModelRecord, record_config

__all__ = ["ModelRecorder"]


class ModelRecorder:
    """Takes the model record of the bundle config that creates it, and completes it with the training so far.

    Create it in a bundle's ``train.json`` (``"model_record": {"_target_": "monai_mine.engines.ModelRecorder",
    ...}``), attach it to the trainer (in the trainer's handlers as ``{"_target_": "@model_record", "_mode_":
    "callable"}``, which MONAI's property checks accept) and give it to the
    :class:`~monai_mine.engines.BestModelSaver`, which writes :meth:`snapshot` beside ``models/model.pt``; in the
    resumable checkpoint's ``save_dict`` it stores the record in ``models/checkpoint.pt`` as ``model_record``.

    Args:
        training_pairs: number of training pairs (items of the training dataset) per epoch.
        datalist: the training datalist (a path is recorded as it is, anything else by its type).
        seed: the run's random seed.
    """

    def __init__(self, training_pairs: int | None = None, datalist: Any = None, seed: int | None = None) -> None:
        parser = running_parser()
        if parser is None:
            raise RuntimeError("ModelRecorder records the config that creates it: build it from a bundle config.")
        self.config = record_config(parser)
        self.bundle = {"name": parser.get("bundle_name"), "version": parser.get("_meta_#version")}
        self.summary = {
            "datalist": os.fspath(datalist) if isinstance(datalist, (str, os.PathLike)) else type(datalist).__name__,
            "training_pairs": None if training_pairs is None else int(training_pairs),
            "seed": seed,
        }
        self.progress: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Note how far the trainer has got (called after every iteration)."""
        state = engine.state
        self.progress = {
            "iterations": int(state.iteration),
            "epochs": int(state.epoch),
            "max_epochs": state.max_epochs,
            "batch_size": getattr(getattr(state, "dataloader", None), "batch_size", None),
        }

    def snapshot(self) -> ModelRecord:
        """The record as of now: the configuration, and the iterations and epochs trained so far."""
        training = {**self.summary, **self.progress, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return ModelRecord(bundle=dict(self.bundle), config=json.loads(json.dumps(self.config)), training=training)

    def state_dict(self) -> dict[str, Any]:
        return self.snapshot().to_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Check that a resumed checkpoint holds a model record. The resumed run records its own configuration
        (fine-tuning with another loss is allowed; loading the weights already refuses another network).

        Raises:
            ValueError: when ``state`` is not a model record of plain data (its binding is not needed: the record
                is not applied).
        """
        ModelRecord.from_dict(state, "the checkpoint's model_record", require_binding=False)
