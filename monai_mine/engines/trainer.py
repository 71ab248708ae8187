# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The registration trainer: one Ignite iteration runs the cascade, the objective's terms, backward and step."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from ignite.metrics import Metric
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from monai.inferers import Inferer
from monai.utils import CommonKeys
from torch.optim import Optimizer

from monai_mine.engines.batch import prepare_registration_batch, split_records
from monai_mine.losses.objective import RegistrationObjective, RegistrationOutputs

__all__ = ["RegistrationTrainer", "autocast_context", "loss_and_terms"]

LOSS_TERMS = "loss_terms"


def autocast_context(device: torch.device, enabled: bool, dtype: torch.dtype | str | None = None):
    """``torch.autocast`` on the device's type (float16 on CUDA, bfloat16 on CPU by default), or a no-op."""
    if not enabled:
        return nullcontext()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    default = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype or default)


def loss_and_terms(output: dict[str, Any]) -> dict[str, float]:
    """``output_transform`` for MONAI's StatsHandler / TensorBoardStatsHandler: the total loss and every term."""
    values = {"loss": float(output[CommonKeys.LOSS])}
    values.update({name: float(value) for name, value in output.get(LOSS_TERMS, {}).items()})
    return values


class RegistrationTrainer(SupervisedTrainer):
    """Trains a registration network (optionally with a MINE critic inside the objective) on pairs of images.

    Each iteration takes ``moving_image`` / ``fixed_image`` (and ``moving_label`` / ``fixed_label`` when present)
    from the batch, runs ``network(image, return_stages=True)`` to get every stage's record, evaluates the
    :class:`~monai_mine.losses.RegistrationObjective`, and steps one optimiser over the network and the
    objective's own parameters (the critic: DESIGN.md section 4). When the objective needs the reverse pass
    (invertibility), forward and reverse pairs run as one doubled batch. Under ``torch.distributed`` the
    objective's gradients are averaged over processes (the network's are, by DistributedDataParallel).

    With ``critic_warmup_iterations`` > 0, the first iterations of the run train only the objective's own
    parameters (the critic): the network runs without gradients and keeps its weights. A freshly initialised MINE
    critic scores the joint and marginal samples alike, so its gradient would move the network at random; after
    the warm-up the bound already measures the images' mutual information. Iterations count across a resume,
    so a resumed training does not warm up again.

    ``engine.state.output`` holds ``image`` (B, 2, X, Y, Z), ``pred`` (the total DDF, detached), ``loss`` and
    ``loss_terms`` (each term's unweighted value); :func:`loss_and_terms` makes that loggable.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        objective: RegistrationObjective,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        inferer: Inferer | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: str | torch.dtype | None = None,
        optim_set_to_none: bool = False,
        critic_warmup_iterations: int = 0,
    ) -> None:
        """
        Args:
            device: where to train.
            max_epochs: epochs to train.
            train_data_loader: yields dicts with moving_image, fixed_image and optional labels.
            network: a cascade (or DistributedDataParallel of one) whose forward takes ``return_stages``.
            optimizer: one optimiser over the network's and the objective's parameters.
            objective: the weighted loss terms.
            epoch_length: iterations per epoch; default the loader's length.
            non_blocking: asynchronous host-to-device copies.
            inferer: calls the network (default ``SimpleInferer``: ``network(image, **kwargs)``).
            key_train_metric: Ignite metrics computed on training outputs.
            additional_metrics: more Ignite metrics.
            train_handlers: handlers to attach (stats, TensorBoard, checkpoints, validation, ...).
            amp: mixed precision: autocast (float16 + gradient scaling on CUDA, bfloat16 on CPU).
            amp_dtype: the autocast dtype, e.g. ``"bfloat16"``; default as above.
            optim_set_to_none: ``optimizer.zero_grad(set_to_none=...)``.
            critic_warmup_iterations: first iterations that train only the objective's parameters (the critic).

        Raises:
            TypeError: when ``objective`` is not a RegistrationObjective.
            ValueError: on a negative warm-up, or a warm-up for an objective without parameters to train.
        """
        if not isinstance(objective, RegistrationObjective):
            raise TypeError(f"objective must be a RegistrationObjective, got {type(objective).__name__}.")
        if critic_warmup_iterations < 0:
            raise ValueError(f"critic_warmup_iterations must be >= 0, got {critic_warmup_iterations}.")
        if critic_warmup_iterations and not any(p.requires_grad for p in objective.parameters()):
            raise ValueError(
                f"critic_warmup_iterations={critic_warmup_iterations}, but the objective has no parameters to "
                "train (no MINE critic); set it to 0."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=objective,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_registration_batch,
            inferer=inferer,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            train_handlers=train_handlers,
            decollate=False,
            optim_set_to_none=optim_set_to_none,
        )
        self.amp = amp
        self.amp_dtype = amp_dtype
        self.critic_warmup_iterations = critic_warmup_iterations
        self.scaler = torch.amp.GradScaler("cuda") if amp and self.state.device.type == "cuda" else None
        self.add_event_handler(Events.EPOCH_STARTED, self._reshuffle_pairs)

    def run(self) -> None:
        """Run training; unlike MONAI's Trainer.run, keep the gradient scaler chosen for the device (CUDA only)."""
        Workflow.run(self)

    def _reshuffle_pairs(self, engine: RegistrationTrainer) -> None:
        """Draw new random pairs for an unpaired dataset (one with ``set_epoch``) at each epoch."""
        dataset = getattr(self.data_loader, "dataset", None)
        if callable(getattr(dataset, "set_epoch", None)):
            dataset.set_epoch(engine.state.epoch)

    def _average_objective_gradients(self) -> None:
        """Average the objective's gradients (a MINE critic's) over processes; DDP does the network's."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for parameter in self.loss_function.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= dist.get_world_size()

    def _iteration(self, engine: RegistrationTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking).plain()
        objective: RegistrationObjective = engine.loss_function
        if objective.needs_labels and not batch.has_labels:
            raise ValueError(
                "this objective has a label term, so every training pair needs moving_label and fixed_label."
            )
        engine.network.train()
        objective.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        critic_only = 0 < engine.state.iteration <= engine.critic_warmup_iterations
        with autocast_context(engine.state.device, engine.amp, engine.amp_dtype):
            image = batch.network_input()
            with torch.no_grad() if critic_only else nullcontext():
                if objective.needs_reverse:
                    pairs = torch.cat([image, batch.network_input(reverse=True)])
                    doubled = engine.inferer(pairs, engine.network, return_stages=True)
                    records, reverse_records = split_records(doubled, image.shape[0])
                else:
                    records, reverse_records = engine.inferer(image, engine.network, return_stages=True), None
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            outputs = RegistrationOutputs(
                batch.moving, batch.fixed, records, batch.moving_label, batch.fixed_label, reverse_records
            )
            loss, terms = objective(outputs)
        if not torch.isfinite(loss):
            bad = sorted(name for name, value in terms.items() if not torch.isfinite(value))
            raise FloatingPointError(
                f"training loss is {loss.item()} at iteration {engine.state.iteration}; non-finite terms: {bad}. "
                "Check the inputs for NaN/Inf or lower the learning rate; the last checkpoint is kept."
            )
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if engine.scaler is not None:
            engine.scaler.scale(loss).backward()
        else:
            loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        self._average_objective_gradients()
        if engine.scaler is not None:
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        engine.state.output = {
            CommonKeys.IMAGE: image,
            CommonKeys.PRED: records[-1].composed_flow.detach(),
            CommonKeys.LOSS: loss.detach(),
            LOSS_TERMS: terms,
        }
        return engine.state.output
