# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Ignite engines and handlers for registration: the trainer, the evaluator, checkpoints, phases and writers."""

from __future__ import annotations

from monai_mine.engines.batch import RegistrationBatch, prepare_registration_batch
from monai_mine.engines.checkpoint import (
    BestModelSaver,
    ResumableCheckpoint,
    WeightsLoader,
    atomic_torch_save,
    unwrap_network,
)
from monai_mine.engines.evaluator import RegistrationEvaluator
from monai_mine.engines.held_out import HeldOutReport
from monai_mine.engines.recorder import ModelRecorder
from monai_mine.engines.stage_schedule import StageSchedule
from monai_mine.engines.trainer import RegistrationTrainer, loss_and_terms
from monai_mine.engines.validation import ValidationScore
from monai_mine.engines.writers import RegistrationMetricsWriter, RegistrationWriter, pair_name, voxel_spacing

__all__ = [
    "BestModelSaver",
    "HeldOutReport",
    "ModelRecorder",
    "RegistrationBatch",
    "RegistrationEvaluator",
    "RegistrationMetricsWriter",
    "RegistrationTrainer",
    "RegistrationWriter",
    "ResumableCheckpoint",
    "StageSchedule",
    "ValidationScore",
    "WeightsLoader",
    "atomic_torch_save",
    "loss_and_terms",
    "pair_name",
    "prepare_registration_batch",
    "unwrap_network",
    "voxel_spacing",
]
