# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What a training reached, said at its end: the held-out pairs' mean label Dice before and after registration."""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.transforms import Transform

from monai_mine.bundle import read_weights
from monai_mine.engines.checkpoint import BestModelSaver, is_main_process, unwrap_network
from monai_mine.engines.evaluator import RegistrationEvaluator
from monai_mine.keys import FIXED_LABEL, MOVING_LABEL
from monai_mine.metrics import dice_per_label

__all__ = ["HeldOutReport"]

logger = logging.getLogger(__name__)


def _mean_dice(moving: torch.Tensor, fixed: torch.Tensor) -> float:
    """Mean over labels of the Dice of two label maps (C, X, Y, Z)."""
    return float(torch.nanmean(dice_per_label(moving[None].round().long(), fixed[None].round().long())))


class HeldOutReport:
    """At the end of training, registers the datalist's held-out split with the best validation weights and
    reports its mean label Dice after registration and before (the identity), e.g.::

        test pairs (4): mean label Dice 0.906 after registration, 0.688 before (best validation weights)

    The numbers go to the log and to the trainer's ``state.metrics`` (``"<split>_dice"``,
    ``"<split>_identity_dice"``). A datalist without that split, or whose pairs have no labels, gets a log line
    saying so and nothing else. Attach it to the trainer (in a bundle's ``train.json``: its handlers list holds
    ``{"_target_": "@held_out_report", "_mode_": "callable"}``).

    Args:
        network: the trained network.
        datalist: the training datalist (path of a JSON file, or its content).
        transform: the preprocessing of each pair (the validation's: no random augmentation).
        best_model: its best validation weights are evaluated (in a copy of the network: the trained network keeps
            its last weights); without it, the last weights.
        split: the held-out split's name in the datalist.
        device: where to register.
        amp: autocast inference, as in validation.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        datalist: str | os.PathLike | Mapping,
        transform: Transform,
        best_model: BestModelSaver | None = None,
        split: str = "test",
        device: str | torch.device = "cpu",
        amp: bool = False,
    ) -> None:
        self.network, self.datalist, self.transform = network, datalist, transform
        self.best_model, self.split, self.device, self.amp = best_model, split, device, amp

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def _best_network(self) -> tuple[torch.nn.Module, bool]:
        """A copy of the network with the best validation weights (the trained network itself is left as it is),
        or the network as it is when no best weights were saved; and whether they were."""
        best = self.best_model
        if best is None or best.best_value == float("-inf") or not best.save_path.is_file():
            return self.network, False
        network = copy.deepcopy(unwrap_network(self.network))
        network.load_state_dict(read_weights(best.save_path, "best weights"))
        return network, True

    def _has_split(self) -> bool:
        content = self.datalist
        if not isinstance(content, Mapping):
            content = json.loads(Path(content).read_text())
        return bool(content.get(self.split))

    def __call__(self, engine: Engine) -> None:
        from monai_mine.data import registration_dataset

        if not is_main_process():
            return
        if not self._has_split():
            logger.info(f"no {self.split!r} split in the datalist: no held-out score to report.")
            return
        network, restored = self._best_network()
        dataset = registration_dataset(self.datalist, self.split, self.transform, cache_rate=0.0)
        evaluator = RegistrationEvaluator(self.device, DataLoader(dataset, batch_size=1), network, amp=self.amp)
        after, before = [], []

        def collect(evaluator: Engine) -> None:
            for item in evaluator.state.output:
                if "warped_label" in item:
                    after.append(_mean_dice(item["warped_label"], item[FIXED_LABEL]))
                    before.append(_mean_dice(item[MOVING_LABEL], item[FIXED_LABEL]))

        evaluator.add_event_handler(Events.ITERATION_COMPLETED, collect)
        evaluator.run()
        if not after:
            logger.info(f"the {self.split!r} pairs have no labels: no held-out Dice to report.")
            return
        engine.state.metrics[f"{self.split}_dice"] = sum(after) / len(after)
        engine.state.metrics[f"{self.split}_identity_dice"] = sum(before) / len(before)
        weights = "best validation weights" if restored else "last weights"
        logger.info(
            f"{self.split} pairs ({len(after)}): mean label Dice {sum(after) / len(after):.3f} after registration, "
            f"{sum(before) / len(before):.3f} before ({weights})"
        )
