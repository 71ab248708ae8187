# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Training a cascade in phases: MIRegNet trains its AffineNet first, then its DeformNet on the affine outputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ignite.engine import Engine, Events
from torch import nn

from monai_mine.engines.checkpoint import BestModelSaver, unwrap_network

__all__ = ["StageSchedule"]

logger = logging.getLogger(__name__)


class StageSchedule:
    """Switches which stages of a cascade run and which train, by epoch.

    Each phase is ``{"train": [stage indices], "epochs": n}``. During a phase the cascade runs up to its last
    trained stage (later stages are skipped, in training and validation alike), stages not listed are frozen,
    and at a phase change the best validated weights so far are restored (the MIRegNet paper restores the best
    validation model of the AffineNet before training the DeformNet) and the best value is reset, so
    ``models/model.pt`` is selected within the last phase. Keep ``max_epochs`` equal to :attr:`total_epochs`.

    Example (MIRegNet): ``[{"train": [0], "epochs": 10}, {"train": [1], "epochs": 10}]``.
    """

    def __init__(self, network: nn.Module, phases: Sequence[Mapping], best_model: BestModelSaver | None = None) -> None:
        """
        Args:
            network: the cascade (a DistributedDataParallel wrapper is unwrapped).
            phases: the phases, in order.
            best_model: the saver of ``models/model.pt`` whose weights are restored at a phase change.

        Raises:
            ValueError: on an empty schedule, a phase without stages or epochs, or a stage index out of range.
        """
        cascade = unwrap_network(network)
        count = len(cascade.subnetworks)
        if not phases:
            raise ValueError("StageSchedule needs at least one phase, got none.")
        for index, phase in enumerate(phases):
            unknown = sorted(set(phase) - {"train", "epochs"})
            if unknown:
                raise ValueError(f"phase {index} has unknown keys {unknown}; allowed: ['epochs', 'train'].")
            stages, epochs = list(phase.get("train", [])), int(phase.get("epochs", 0))
            if not stages or epochs < 1 or any(not 0 <= stage < count for stage in stages):
                raise ValueError(
                    f"phase {index} must train stage indices in [0, {count}) for at least one epoch, got {dict(phase)}."
                )
        self.cascade = cascade
        self.phases = [{"train": sorted(phase["train"]), "epochs": int(phase["epochs"])} for phase in phases]
        self.best_model = best_model
        self.current_phase = -1

    @property
    def total_epochs(self) -> int:
        return sum(phase["epochs"] for phase in self.phases)

    def phase_of_epoch(self, epoch: int) -> int:
        """The phase (0-based) that trains 1-based ``epoch``; epochs past the schedule stay in the last phase."""
        end = 0
        for index, phase in enumerate(self.phases):
            end += phase["epochs"]
            if epoch <= end:
                return index
        return len(self.phases) - 1

    def attach(self, engine: Engine) -> None:
        """Attach to the trainer.

        Raises:
            ValueError: when the trainer's max_epochs differs from the schedule's total.
        """
        if engine.state.max_epochs != self.total_epochs:
            raise ValueError(
                f"the stage schedule {self.phases} lasts {self.total_epochs} epochs, but the trainer's max_epochs is "
                f"{engine.state.max_epochs}; set max_epochs to the sum of the phases' epochs."
            )
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def epoch_started(self, engine: Engine) -> None:
        phase = self.phase_of_epoch(engine.state.epoch)
        if phase != self.current_phase and self.current_phase >= 0 and self.best_model is not None:
            if self.best_model.restore():
                logger.info(f"phase {phase}: restored the best weights of phase {self.current_phase}")
            self.best_model.reset()
        self.apply(phase)

    def apply(self, phase: int) -> None:
        """Run stages up to the phase's last trained one; freeze the others."""
        trained = self.phases[phase]["train"]
        self.cascade.set_active_stages(max(trained) + 1)
        for index, subnetwork in enumerate(self.cascade.subnetworks):
            subnetwork.requires_grad_(index in trained)
            if index not in trained:
                for parameter in subnetwork.parameters():
                    parameter.grad = None  # else Adam keeps moving a frozen stage by its momentum
        if phase != self.current_phase:
            logger.info(f"phase {phase}: training stages {trained}, running {max(trained) + 1}")
        self.current_phase = phase

    def completed(self, engine: Engine) -> None:
        """After training, every stage runs again (for export and inference)."""
        self.cascade.set_active_stages(None)
        self.cascade.requires_grad_(True)

    def state_dict(self) -> dict[str, int | list[int]]:
        """The current phase and every phase's epochs (a time budget may have cut them short)."""
        return {"current_phase": self.current_phase, "epochs": [phase["epochs"] for phase in self.phases]}

    def load_state_dict(self, state: Mapping[str, int | list[int]]) -> None:
        """Continue a saved schedule; checkpoints written before the phases' epochs were saved keep the configured
        ones."""
        self.current_phase = int(state["current_phase"])
        for phase, epochs in zip(self.phases, state.get("epochs", [])):
            phase["epochs"] = int(epochs)
