# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The registration trainer: MONAI's SupervisedTrainer with an iteration that runs the cascade and the objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from ignite.metrics import Metric
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.utils import CommonKeys
from torch.optim import Optimizer

from monai_mine.engines.batch import RegistrationBatch, prepare_registration_batch, split_records
from monai_mine.losses.objective import RegistrationObjective, RegistrationOutputs
from monai_mine.stages import StageRecord

__all__ = ["RegistrationTrainer", "loss_and_terms"]

LOSS_TERMS = "loss_terms"


def loss_and_terms(output: dict[str, Any]) -> dict[str, float]:
    """``output_transform`` for MONAI's StatsHandler / TensorBoardStatsHandler: the total loss and every term."""
    values = {"loss": float(output[CommonKeys.LOSS])}
    values.update({name: float(value) for name, value in output.get(LOSS_TERMS, {}).items()})
    return values


class RegistrationTrainer(SupervisedTrainer):
    """Trains a registration network (optionally with a MINE critic inside the objective) on pairs of images.

    MONAI's :class:`~monai.engines.SupervisedTrainer` runs the training (``run``, events, handlers, ``amp`` with
    ``amp_kwargs``, ``compile``, ``accumulation_steps``, ``optim_set_to_none``); only the iteration differs. It
    takes ``moving_image`` / ``fixed_image`` (and ``moving_label`` / ``fixed_label`` when present) from the batch,
    runs ``network(image, return_stages=True)`` to get every stage's record, evaluates the
    :class:`~monai_mine.losses.RegistrationObjective`, and steps one optimiser over the network and the
    objective's own parameters (the MINE critic), firing MONAI's ``IterationEvents`` in MONAI's order. When the
    objective needs the reverse pass (invertibility), forward and reverse pairs run as one doubled batch. Under
    ``torch.distributed`` the objective's gradients are averaged over processes before each optimiser step (the
    network's are, by DistributedDataParallel).

    With ``max_grad_norm``, each parameter group's gradient (the AffineNet's, the DeformNet's, the critic's: each
    its own group in the bundles) is scaled down to that norm before the optimiser steps when it is longer. A MINE
    critic's bias-corrected gradient can spike by orders of magnitude in one iteration; unclipped, such a spike fills
    Adam's second-moment estimate, so the steps after it are tiny for about a thousand iterations, and it moved
    the AffineNet far off (a 16-channel MIRegNet's validation Dice fell from 0.60 to 0.19 within one epoch;
    ``docs/training.md``).

    With ``critic_warmup_iterations`` > 0, the first iterations of the run train only the objective's own
    parameters (the critic): the network runs without gradients and keeps its weights. A freshly initialised MINE
    critic scores the joint and marginal samples alike, so its gradient would move the network at random; after
    the warm-up the bound already measures the images' mutual information. Iterations count across a resume,
    so a resumed training does not warm up again.

    ``engine.state.output`` holds ``image`` (B, 2, X, Y, Z), ``pred`` (the total DDF (B, 3, X, Y, Z), voxels,
    detached), ``loss`` (unscaled by gradient accumulation, detached) and ``loss_terms`` (each term's unweighted
    value); :func:`loss_and_terms` makes that loggable.
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
        amp_kwargs: dict | None = None,
        optim_set_to_none: bool = False,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        accumulation_steps: int = 1,
        critic_warmup_iterations: int = 0,
        max_grad_norm: float | None = None,
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
            amp: mixed precision: ``torch.autocast`` on the device's type (float16 with gradient scaling on CUDA,
                bfloat16 on CPU, unless ``amp_kwargs`` names another dtype).
            amp_kwargs: MONAI's ``torch.autocast`` arguments, e.g. ``{"dtype": torch.bfloat16}``.
            optim_set_to_none: ``optimizer.zero_grad(set_to_none=...)``.
            compile: run the network through ``torch.compile`` (MONAI's option).
            compile_kwargs: ``torch.compile`` arguments.
            accumulation_steps: MONAI's gradient accumulation: step the optimiser every that many iterations (and
                at the end of each epoch) on the mean of their gradients.
            critic_warmup_iterations: first iterations that train only the objective's parameters (the critic).
            max_grad_norm: the largest gradient norm of each optimiser parameter group (longer ones are scaled down
                to it before each step); ``None`` leaves gradients as they are.

        Raises:
            TypeError: when ``objective`` is not a RegistrationObjective.
            ValueError: on a negative warm-up, a warm-up for an objective without parameters to train,
                ``accumulation_steps`` < 1, or a ``max_grad_norm`` that is not a positive number.
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
        if max_grad_norm is not None and not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number or None, got {max_grad_norm!r}.")
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
            amp=amp,
            decollate=False,
            optim_set_to_none=optim_set_to_none,
            amp_kwargs=amp_kwargs,
            compile=compile,
            compile_kwargs=compile_kwargs,
            accumulation_steps=accumulation_steps,
        )
        self.critic_warmup_iterations = critic_warmup_iterations
        self.max_grad_norm = max_grad_norm
        self.add_event_handler(Events.STARTED, self._scale_gradients_on_cuda_only)
        self.add_event_handler(Events.EPOCH_STARTED, self._reshuffle_pairs)

    def _scale_gradients_on_cuda_only(self, engine: RegistrationTrainer) -> None:
        """MONAI's ``Trainer.run`` makes a CUDA gradient scaler whenever ``amp`` is on; elsewhere drop it (bfloat16
        autocast on CPU needs no loss scaling)."""
        if engine.state.device.type != "cuda":
            engine.scaler = None

    def _reshuffle_pairs(self, engine: RegistrationTrainer) -> None:
        """Draw new random pairs for an unpaired dataset (one with ``set_epoch``) at each epoch."""
        dataset = getattr(engine.data_loader, "dataset", None)
        if callable(getattr(dataset, "set_epoch", None)):
            dataset.set_epoch(engine.state.epoch)

    def _accumulation_window(self) -> tuple[bool, bool]:
        """Whether this iteration zeroes the gradients and whether it steps the optimiser, as MONAI's
        ``SupervisedTrainer._iteration`` decides for ``accumulation_steps``: windows counted within the epoch,
        the last window of an epoch stepped even when incomplete."""
        epoch_length = self.state.epoch_length
        index = self.state.iteration - 1
        if epoch_length is not None:
            index %= epoch_length
        last = epoch_length is not None and index + 1 == epoch_length
        return index % self.accumulation_steps == 0, (index + 1) % self.accumulation_steps == 0 or last

    def _average_objective_gradients(self) -> None:
        """Average the objective's gradients (a MINE critic's) over processes; DDP does the network's."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for parameter in self.loss_function.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= dist.get_world_size()

    def _clip_gradients(self) -> None:
        """Scale each parameter group's gradient down to ``max_grad_norm`` where it is longer (gradients already
        unscaled from AMP's loss scale)."""
        if self.max_grad_norm is None:
            return
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        for group in self.optimizer.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], self.max_grad_norm)

    def _forward(
        self, batch: RegistrationBatch, image: torch.Tensor
    ) -> tuple[list[StageRecord], list[StageRecord] | None]:
        """The cascade's stage records of the pairs ``image`` (B, 2, X, Y, Z) and, when the objective needs them,
        of the reversed pairs (run as one doubled batch (2B, 2, X, Y, Z)); the network runs without gradients
        during the critic warm-up."""
        critic_only = 0 < self.state.iteration <= self.critic_warmup_iterations
        with torch.no_grad() if critic_only else nullcontext():
            if not self.loss_function.needs_reverse:
                return self.inferer(image, self.network, return_stages=True), None
            pairs = torch.cat([image, batch.network_input(reverse=True)])
            return split_records(self.inferer(pairs, self.network, return_stages=True), image.shape[0])

    def _iteration(self, engine: RegistrationTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """MONAI's ``SupervisedTrainer._iteration`` with the cascade and the objective: forward, loss, backward of
        the loss over ``accumulation_steps``, optimiser step, each followed by its ``IterationEvents``.

        Raises:
            ValueError: without batch data, or without labels for an objective with a label term.
            FloatingPointError: on a non-finite loss, before any gradient is computed.
        """
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking).plain()
        objective: RegistrationObjective = engine.loss_function
        if objective.needs_labels and not batch.has_labels:
            raise ValueError(
                "this objective has a label term, so every training pair needs moving_label and fixed_label."
            )
        image = batch.network_input()
        engine.state.output = {CommonKeys.IMAGE: image}
        zero_grad, step = engine._accumulation_window()
        engine.network.train()
        objective.train()
        if zero_grad:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        with torch.autocast(engine.state.device.type, **engine.amp_kwargs) if engine.amp else nullcontext():
            records, reverse_records = engine._forward(batch, image)
            engine.state.output[CommonKeys.PRED] = records[-1].composed_flow.detach()
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            outputs = RegistrationOutputs(
                batch.moving,
                batch.fixed,
                records,
                batch.moving_label,
                batch.fixed_label,
                reverse_records,
                batch.target_ddf,
            )
            loss, terms = objective(outputs)
        if not torch.isfinite(loss):
            bad = sorted(name for name, value in terms.items() if not torch.isfinite(value))
            raise FloatingPointError(
                f"training loss is {loss.item()} at iteration {engine.state.iteration}; non-finite terms: {bad}. "
                "Check the inputs for NaN/Inf or lower the learning rate; the last checkpoint is kept."
            )
        engine.state.output.update({CommonKeys.LOSS: loss.detach(), LOSS_TERMS: terms})
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

        scaled = loss / engine.accumulation_steps
        (scaled if engine.scaler is None else engine.scaler.scale(scaled)).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if step:
            engine._average_objective_gradients()
            engine._clip_gradients()
            if engine.scaler is None:
                engine.optimizer.step()
            else:
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
