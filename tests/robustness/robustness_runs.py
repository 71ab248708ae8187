# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Helpers of the robustness suite: tiny settings of every bundle workflow, input snapshots (the shared ones are in
:mod:`tests.helpers`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["CONFIGS", "SIZE", "WORKFLOW_TYPES", "iterations", "recorder", "snapshot", "tiny_settings"]

CONFIGS = {"train": ("train.json",), "evaluate": ("train.json", "evaluate.json"), "infer": ("inference.json",)}
WORKFLOW_TYPES = {"train": "train", "evaluate": "eval", "infer": "infer"}
SIZE = 16
MIREGNET_AT_16 = {"network_def#affine_strides": [2, 2, 2, 1, 1, 1, 1, 1], "network_def#deform_strides": [2, 2, 2, 1]}
"""MIRegNet's strides cut to a total of 8, so that 16^3 keeps 2 voxels at the deepest level (instance norm)."""


def tiny_settings(name: str, workflow: str) -> dict:
    """Overrides for a run at 16^3 with one iteration per epoch (VTN: 1 epoch; MIRegNet: its 2 phases of 1) and no
    validation during training (the evaluate workflow runs the same validation code on its own)."""
    settings = {"image_size": SIZE, **(MIREGNET_AT_16 if name in ("miregnet", "midiceregnet") else {})}
    if workflow == "train":
        settings["epoch_length"] = 1
        settings["val_interval"] = 1000
        settings["max_epochs"] = 1 if name.startswith("vtn") else 2
    return settings


def iterations(name: str) -> int:
    """Iterations of a tiny training run."""
    return 1 if name.startswith("vtn") else 2


def recorder(store: list, value=lambda engine: engine.state.iteration):
    """An ``attach`` function for ``run_bundle``: append ``value(engine)`` to ``store`` after every iteration."""
    from ignite.engine import Events

    return lambda engine: engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: store.append(value(e)))


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and modification time of every file under ``folder``."""
    return {
        str(path): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
