# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Instance optimisation: refine a trained network's DDF on one pair with a few steps of its own training loss."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from monai_mine.engines.batch import split_records
from monai_mine.losses.objective import RegistrationObjective, RegistrationOutputs
from monai_mine.networks.cascade import StageRecord

__all__ = ["InstanceOptimization", "instance_optimize", "objective_value"]


@dataclass
class InstanceOptimization:
    """What instance optimisation did.

    Attributes:
        steps: gradient steps taken.
        loss_before: the objective on the pair with the trained weights.
        loss_after: the objective on the pair after the last step (the DDF returned).
        seconds: wall time.
    """

    steps: int
    loss_before: float
    loss_after: float
    seconds: float


def objective_value(
    network: nn.Module, objective: RegistrationObjective, moving: torch.Tensor, fixed: torch.Tensor
) -> tuple[torch.Tensor, list[StageRecord]]:
    """The objective on one batch of pairs, with the reverse pass when a term needs it (as the trainer runs it).

    Args:
        network: a cascade whose forward takes ``return_stages``.
        objective: the loss terms (none may need labels).
        moving: Tensor in shape (B, 1, X, Y, Z).
        fixed: Tensor in shape (B, 1, X, Y, Z).

    Returns:
        the total loss (scalar tensor) and the forward pass's stage records.
    """
    image = torch.cat([moving, fixed], dim=1)
    if objective.needs_reverse:
        doubled = network(torch.cat([image, torch.cat([fixed, moving], dim=1)]), return_stages=True)
        records, reverse_records = split_records(doubled, image.shape[0])
    else:
        records, reverse_records = network(image, return_stages=True), None
    loss, _ = objective(RegistrationOutputs(moving, fixed, records, reverse_records=reverse_records))
    return loss, records


def instance_optimize(
    network: nn.Module,
    objective: RegistrationObjective,
    optimizer: torch.optim.Optimizer,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    steps: int,
) -> tuple[torch.Tensor, InstanceOptimization]:
    """Take ``steps`` optimiser steps of ``objective`` on one pair, return the refined DDF, restore the weights.

    The network's weights, mode and gradients are restored afterwards, so the network is unchanged for the next
    pair. The objective's own parameters (a MINE critic) train along and keep their new state.

    Args:
        network: a cascade whose forward takes ``return_stages``.
        objective: the loss (no label terms).
        optimizer: an optimiser over the network's (and the objective's) parameters.
        moving: Tensor in shape (1, 1, X, Y, Z), on the working grid.
        fixed: Tensor in shape (1, 1, X, Y, Z).
        steps: gradient steps, at least 1.

    Returns:
        the refined DDF (1, 3, X, Y, Z) in working voxels, and what was done.

    Raises:
        ValueError: when ``steps`` < 1.
        FloatingPointError: when the loss becomes NaN or infinite (the weights are restored).
    """
    if int(steps) < 1:
        raise ValueError(f"instance optimisation needs at least 1 step, got {steps}.")
    saved = copy.deepcopy(network.state_dict())
    was_training = network.training
    start = time.perf_counter()
    try:
        network.train()
        objective.train()
        loss_before = None
        for step in range(int(steps)):
            optimizer.zero_grad(set_to_none=True)
            loss, _ = objective_value(network, objective, moving, fixed)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"instance optimisation loss is {loss.item()} at step {step}.")
            loss_before = float(loss.detach()) if loss_before is None else loss_before
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            loss, records = objective_value(network, objective, moving, fixed)
        ddf = records[-1].composed_flow.detach()
    finally:
        network.load_state_dict(saved)
        network.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    return ddf, InstanceOptimization(int(steps), loss_before, float(loss), time.perf_counter() - start)
