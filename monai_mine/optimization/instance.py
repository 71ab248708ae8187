# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Instance optimisation: refine a DDF on one pair by gradient descent on the displacement itself, coarse to fine.

The learned network gives a DDF in one forward pass; a short optimisation on the pair's own images then corrects
what the network missed (as ConvexAdam, uniGradICON and FireANTs end). At each level (a grid of 32, then 64 voxels
along the image's longest axis by default: 1/4 then 1/2 of a 128^3 image, 1/2 then all of a 64^3 working grid)
both images are averaged down to that grid, the current DDF is averaged down with them, and a
correction at that resolution is found by Adam on

    ``similarity(moving_l o (x + u_l), fixed_l) + smoothness * diffusion(u_l)``

where ``u_l`` is the level's whole displacement: the current DDF plus the correction (``additive``), or the
current DDF composed with the exponential of a stationary velocity field (``diffeomorphic``: scaling and
squaring, :func:`~monai_mine.flows.integrate_velocity`; a composition of folding-free maps stays folding-free,
and the diffusion term then acts on the velocity). The correction is upsampled (trilinear, box to box) and added
to (composed with) the DDF at the input resolution, so the network's fine detail is kept. Only the downsampled
moving image is warped at a level; with a :class:`FeatureSimilarity` (MIND-SSC) both level images are described
once and the moving image's description is warped instead.

Never worse than the start: each level keeps each pair's best iterate (the level's start included), a step that
raises a pair's objective above the level's start is taken half back and the pair's step size halved, doubling back
to the full step with each step that does not (Adam's first step moves every unknown by about the learning rate
whatever the gradient, and overshoots a start that is already good), and the result is judged against the start on
the finest level optimised, keeping the start where the levels together made it worse (not with a similarity that
trains along, whose objective changes as it trains).

Displacements are in voxels of the grid they live on (``docs/design.md`` section 2); the diffusion term is
:class:`~monai_mine.losses.TotalVariationLoss` (squared forward differences), which is the same for a smooth
field at every level, so one weight serves all levels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from monai.losses import GlobalMutualInformationLoss
from torch import nn

from monai_mine.flows import check_ddf, compose_ddf, integrate_velocity, resize_ddf, warp
from monai_mine.losses.mind import MINDSSCLoss
from monai_mine.losses.mine import MINELoss
from monai_mine.losses.similarity import CorrelationCoefficientLoss, LocalCorrelationLoss
from monai_mine.losses.smoothness import TotalVariationLoss
from monai_mine.networks.mine_critic import MINECritic
from monai_mine.optimization.schedule import InstanceSchedule, instance_optimization_schedule

__all__ = [
    "FULL_RESOLUTION",
    "SIMILARITIES",
    "FeatureSimilarity",
    "InstanceOptimization",
    "InstanceOptimizationInferer",
    "InstanceOptimizer",
    "similarity_loss",
]

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 100
"""Adam steps between two progress lines (logged at INFO: level, step and objective)."""

SIMILARITIES = ("local_correlation", "correlation", "mutual_information", "mine", "mind")
"""Similarities by name: :class:`~monai_mine.losses.LocalCorrelationLoss` (box window ``kernel_size``),
:class:`~monai_mine.losses.CorrelationCoefficientLoss` (global), MONAI's ``GlobalMutualInformationLoss``
(Parzen windows, 23 bins; for pairs of different contrasts), :class:`~monai_mine.losses.MINELoss` (a fresh
:class:`~monai_mine.networks.MINECritic` scoring :data:`MINE_SAMPLES` voxels per image, trained along with the
displacement) and :class:`~monai_mine.losses.MINDSSCLoss` (MIND-SSC descriptors, for pairs of different
contrasts)."""

MINE_SAMPLES = 16384
"""Voxels per image the ``"mine"`` similarity scores per step (the MI bundles' ``mine_samples``)."""


def similarity_loss(name: str, kernel_size: int = 5) -> nn.Module:
    """The similarity loss called ``name`` (one of :data:`SIMILARITIES`), lower is more similar.

    Raises:
        ValueError: on an unknown name.
    """
    if name == "local_correlation":
        return LocalCorrelationLoss(kernel_size)
    if name == "correlation":
        return CorrelationCoefficientLoss()
    if name == "mutual_information":
        return GlobalMutualInformationLoss(num_bins=23)
    if name == "mine":
        return MINELoss(critic=MINECritic(), samples=MINE_SAMPLES)
    if name == "mind":
        return MINDSSCLoss()
    raise ValueError(f"unknown similarity {name!r}; choose from {SIMILARITIES} or pass a loss module.")


@runtime_checkable
class FeatureSimilarity(Protocol):
    """A similarity that compares two images through features of each (e.g. :class:`~monai_mine.losses.MINDSSCLoss`):
    ``similarity(pred, target) == compare(features(pred), features(target))``. The optimiser computes each level's
    features once and warps the moving image's, which is what it then optimises (the features of a warped image
    and the warped features agree up to interpolation)."""

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Features of an image (B, C, X, Y, Z): Tensor in shape (B, F, X, Y, Z)."""
        ...

    def compare(self, pred_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """The loss (lower is more similar) of two feature volumes (B, F, X, Y, Z), reduced over the batch."""
        ...


@dataclass
class InstanceOptimization:
    """What instance optimisation did.

    Attributes:
        steps: Adam steps taken, over all levels.
        levels: the grid shape of each level optimised, coarse to fine.
        loss_before: the objective of the starting DDF on the finest level optimised (mean over the batch).
        loss_after: the objective of the returned DDF on that level, never above ``loss_before`` (with a similarity
            that trains, a critic: the finest level's objective at its start and at its best iterate).
        seconds: wall time.
    """

    steps: int
    levels: tuple[tuple[int, ...], ...]
    loss_before: float
    loss_after: float
    seconds: float


FULL_RESOLUTION = math.inf
"""A level's size meaning the image's own grid (``"full"`` in a config's ``levels``)."""


def _level_size(size: int | float | str) -> int | float:
    """A level's size as given: a whole number of voxels, or ``"full"``/:data:`FULL_RESOLUTION`."""
    if size == "full" or size == FULL_RESOLUTION:
        return FULL_RESOLUTION
    return int(size)


def _level_shape(shape: Sequence[int], size: float) -> tuple[int, ...]:
    """The grid with ``size`` voxels along the longest axis of ``shape`` (the others in proportion, at least 2),
    or ``shape`` itself when ``size`` reaches it."""
    factor = max(shape) / size
    return tuple(shape) if factor <= 1 else tuple(max(2, round(n / factor)) for n in shape)


def _per_level(value, levels: tuple[int, ...], kind: type) -> tuple:
    """One setting for every level, or one per level, as a tuple of ``kind``."""
    return (kind(value),) * len(levels) if isinstance(value, (int, float)) else tuple(kind(v) for v in value)


class InstanceOptimizer:
    """Refine a DDF on a pair of images (see the module docstring); batched, on the images' device.

    Example::

        refine = InstanceOptimizer(steps=50, levels=(32, 64), similarity="local_correlation")
        ddf, report = refine(moving, fixed, network_ddf)
    """

    def __init__(
        self,
        steps: int | Sequence[int] | str | InstanceSchedule = 50,
        levels: Sequence[int | str] = (32, 64),
        similarity: str | nn.Module = "local_correlation",
        kernel_size: int = 5,
        smoothness: float = 1.0,
        learning_rate: float | Sequence[float] = 1.0,
        similarity_learning_rate: float = 1e-3,
        field_factor: int = 2,
        diffeomorphic: bool = False,
        integration_steps: int = 7,
        full_resolution_learning_rate: float = 0.25,
    ) -> None:
        """
        Args:
            steps: Adam steps at each level, or one count per level (0 everywhere: the DDF is returned unchanged);
                or what ``--instance_optimization`` accepts
                (:func:`~monai_mine.optimization.schedule.instance_optimization_schedule`): ``"50"``, a preset name
                (``"fast"``, ``"balanced"``, ``"accurate"``) or a schedule ``"A/B/C"``, one count per level of
                ``levels`` and a last one for a level added at full resolution.
            levels: each level's grid, coarse to fine, as voxels along the image's longest axis (the other axes in
                proportion); a size at or beyond the image's, or ``"full"``, keeps its resolution.
            similarity: a name in :data:`SIMILARITIES` or a loss module ``(warped, fixed) -> scalar``; a module
                with parameters (e.g. :class:`~monai_mine.losses.MINELoss` and its critic) trains along with the
                displacement, and keeps its trained state.
            kernel_size: window edge of ``"local_correlation"``, in voxels of each level.
            smoothness: weight of the diffusion term (:class:`~monai_mine.losses.TotalVariationLoss`).
            learning_rate: Adam's step size in voxels of each level's unknowns, one for all levels or one per level.
            similarity_learning_rate: Adam's step size for the similarity module's own parameters (a critic).
            field_factor: the correction lives on the level's grid, but never finer than this many times coarser
                than the input, upsampled to the level's images: a level at full resolution then compares every
                voxel for an eighth of the unknowns (and a smoother field).
            diffeomorphic: compose the exponential of a velocity field instead of adding a displacement.
            integration_steps: scaling-and-squaring steps of the diffeomorphic mode.
            full_resolution_learning_rate: the learning rate of the full-resolution level a schedule ``"A/B/C"`` adds
                (0.25: the rate the measured trade-off used).

        Raises:
            ValueError: on negative steps or weights, a level below 2 voxels, steps that do not match the levels, a
                value ``--instance_optimization`` does not accept, or an unknown similarity name.
        """
        levels = tuple(_level_size(size) for size in levels)
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be grid sizes >= 2 voxels, coarse to fine, got {levels}.")
        rates = _per_level(learning_rate, levels, float)
        if isinstance(steps, (str, InstanceSchedule)):
            schedule = instance_optimization_schedule(steps)
            steps = schedule.steps[0] if not schedule.full_resolution else schedule.steps
            if schedule.full_resolution:
                if len(schedule.steps) != len(levels) + 1:
                    raise ValueError(
                        f"instance_optimization {schedule}: expected {len(levels) + 1} counts, one per level {levels} "
                        "and one at full resolution."
                    )
                levels, rates = (*levels, FULL_RESOLUTION), (*rates, float(full_resolution_learning_rate))
        counts = _per_level(steps, levels, int)
        if len(counts) != len(levels) or min(counts) < 0:
            raise ValueError(f"steps must be >= 0, one count or one per level {levels}, got {steps}.")
        if smoothness < 0 or len(rates) != len(levels) or min(rates) <= 0 or similarity_learning_rate <= 0:
            raise ValueError(
                f"smoothness must be >= 0 and the learning rates > 0 (one or one per level {levels}), got "
                f"{smoothness}, {learning_rate}, {similarity_learning_rate}."
            )
        self.steps = counts
        self.levels = levels
        self.similarity = similarity_loss(similarity, kernel_size) if isinstance(similarity, str) else similarity
        self.smoothness = float(smoothness)
        self.learning_rate = rates
        self.similarity_learning_rate = float(similarity_learning_rate)
        self.diffeomorphic = bool(diffeomorphic)
        if int(integration_steps) < 1 or int(field_factor) < 1:
            raise ValueError(
                f"integration_steps and field_factor must be >= 1, got {integration_steps}, {field_factor}."
            )
        self.field_factor = int(field_factor)
        self.integration_steps = int(integration_steps)
        self.diffusion = TotalVariationLoss()

    def __call__(
        self, moving: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, InstanceOptimization]:
        """Refine ``ddf`` so that ``warp(moving, ddf)`` matches ``fixed``; the inputs are not modified.

        Args:
            moving: Tensor in shape (B, 1, X, Y, Z), on the fixed image's grid.
            fixed: Tensor in shape (B, 1, X, Y, Z).
            ddf: the starting DDF (B, 3, X, Y, Z) in voxels, e.g. a network's; default zero (the identity).

        Returns:
            the refined DDF (B, 3, X, Y, Z), float32, detached, and what was done.

        Raises:
            ValueError: when the shapes do not match.
            FloatingPointError: when the objective becomes NaN or infinite.
        """
        if moving.ndim != 5 or moving.shape != fixed.shape:
            raise ValueError(
                f"moving and fixed must be (B, C, X, Y, Z) of one shape, got {tuple(moving.shape)}, "
                f"{tuple(fixed.shape)}."
            )
        if ddf is not None:
            check_ddf(ddf)
            if ddf.shape[0] != moving.shape[0] or ddf.shape[2:] != moving.shape[2:]:
                raise ValueError(
                    f"ddf {tuple(ddf.shape)} must be (B, 3, X, Y, Z) over the images {tuple(moving.shape)}."
                )
        start = time.perf_counter()
        loss_before = loss_after = float("nan")
        # usable from an evaluator's inference mode and autocast: fresh float32 copies that autograd may track
        with torch.inference_mode(False), torch.autocast(moving.device.type, enabled=False):
            moving, fixed = moving.detach().float().clone(), fixed.detach().float().clone()
            ddf = moving.new_zeros((moving.shape[0], 3, *moving.shape[2:])) if ddf is None else ddf.detach().float()
            ddf = ddf.clone()
            start_ddf = ddf
            self.similarity.to(moving.device)
            optimised = []
            for size, steps, rate in zip(self.levels, self.steps, self.learning_rate):
                if not steps:
                    continue
                shape = _level_shape(moving.shape[2:], size)
                optimised.append(shape)
                moving_l, fixed_l = self._level_images(moving, fixed, shape)
                base = resize_ddf(ddf, shape)
                unknowns = _level_shape(moving.shape[2:], min(size, max(moving.shape[2:]) / self.field_factor))
                correction, loss_before, loss_after = self._optimize_level(
                    moving_l, fixed_l, base, unknowns, steps, rate
                )
                correction = resize_ddf(correction, moving.shape[2:])
                ddf = compose_ddf(ddf, correction) if self.diffeomorphic else ddf + correction
            if optimised and not self._trains_similarity():
                # the levels each keep their best iterate, but a coarse level's gain can be a finer level's loss:
                # each pair's result is judged against its start on the finest level optimised (the last level's
                # images, still at hand), the better one kept
                before, after = (self._start_objectives(moving_l, fixed_l, field) for field in (start_ddf, ddf))
                worse = ~(after <= before)
                if worse.any():
                    logger.info(
                        f"instance optimisation raised the objective of {int(worse.sum())} of {len(worse)} pair(s) "
                        f"on the finest level ({float(before[worse].mean()):.5f} -> {float(after[worse].mean()):.5f}):"
                        " their start is kept"
                    )
                    ddf = torch.where(worse.view(-1, 1, 1, 1, 1), start_ddf, ddf)
                    after = torch.where(worse, before, after)
                loss_before, loss_after = float(before.mean()), float(after.mean())
        seconds = time.perf_counter() - start
        return ddf, InstanceOptimization(sum(self.steps), tuple(optimised), loss_before, loss_after, seconds)

    def _level_images(
        self, moving: torch.Tensor, fixed: torch.Tensor, shape: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both images averaged down to a level's grid, (B, C, *shape), or their features there (B, F, *shape)."""
        images = [F.interpolate(image, size=tuple(shape), mode="area") for image in (moving, fixed)]
        if isinstance(self.similarity, FeatureSimilarity):
            with torch.no_grad():
                images = [self.similarity.features(image) for image in images]
        return images[0], images[1]

    def _compare(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The similarity loss of a warped level image (or its warped features) and the fixed one (or its)."""
        if isinstance(self.similarity, FeatureSimilarity):
            return self.similarity.compare(warped, fixed)
        return self.similarity(warped, fixed)

    def _trains_similarity(self) -> bool:
        """Whether the similarity has trainable parameters (a critic): its objective then changes as it trains."""
        return any(weight.requires_grad for weight in self.similarity.parameters())

    def _objectives(
        self, moving: torch.Tensor, fixed: torch.Tensor, base: torch.Tensor, parameter: torch.Tensor
    ) -> torch.Tensor:
        """The level's objective of each pair, Tensor in shape (B,), for the unknowns ``parameter`` on top of
        ``base``: each pair alone, or the batch's (repeated) for a similarity that trains (a critic sees the
        batch)."""
        total, regularised = self._level_displacement(base, parameter)
        warped = warp(moving, total)
        batch = moving.shape[0]
        if batch == 1 or self._trains_similarity():
            loss = self._compare(warped, fixed) + self.smoothness * self.diffusion(regularised)
            return loss.expand(batch)
        pairs = [slice(index, index + 1) for index in range(batch)]
        return torch.stack(
            [self._compare(warped[i], fixed[i]) + self.smoothness * self.diffusion(regularised[i]) for i in pairs]
        )

    def _start_objectives(self, moving: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """Each pair's objective on a level (the images' grid) at its start: ``ddf`` resized to it, no correction."""
        base = resize_ddf(ddf, moving.shape[2:])
        with torch.no_grad():
            return self._objectives(moving, fixed, base, torch.zeros_like(base)).detach()

    def _correction(self, parameter: torch.Tensor) -> torch.Tensor:
        """The correction on the parameter's grid: the displacement itself, or the exponential of the velocity."""
        return integrate_velocity(parameter, self.integration_steps) if self.diffeomorphic else parameter

    def _level_displacement(self, base: torch.Tensor, parameter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The level's whole displacement and the field the diffusion term acts on."""
        correction = resize_ddf(self._correction(parameter), base.shape[2:])
        if self.diffeomorphic:
            return compose_ddf(base, correction), parameter
        total = base + correction
        return total, total

    def _optimize_level(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        base: torch.Tensor,
        unknowns: Sequence[int],
        steps: int,
        learning_rate: float,
    ) -> tuple[torch.Tensor, float, float]:
        """Adam on one level, the unknowns on a grid of shape ``unknowns``; returns the correction on that grid
        (displacement, or integrated velocity) of each pair's best iterate and the objective (batch mean) at the
        start and at those iterates, so a level never ends worse than it began.

        A step that leaves a pair's objective above its start (an overshoot: Adam's first steps move every unknown
        by about the learning rate, whatever the gradient's size) is taken half back, a backtracking line search
        along the step: that pair's unknowns move half way to its best iterate and its step size is halved; each
        later step that does not overshoot doubles it back, up to Adam's full step (a step size halved for good
        cost 0.03-0.04 Dice at every multimodal preset from the same networks). Pairs are independent, as if each
        were alone (Adam's update is element by element)."""
        batch = base.shape[0]
        parameter = base.new_zeros((batch, 3, *unknowns), requires_grad=True)
        best_parameter = parameter.detach().clone()
        groups = [{"params": [parameter]}]
        critic = [weight for weight in self.similarity.parameters() if weight.requires_grad]
        if critic:
            groups.append({"params": critic, "lr": self.similarity_learning_rate})
        optimizer = torch.optim.Adam(groups, lr=learning_rate)
        scale = [1.0] * batch  # each pair's share of Adam's step
        first = best = None
        with torch.enable_grad():
            for step in range(steps + 1):
                optimizer.zero_grad(set_to_none=True)
                losses = self._objectives(moving, fixed, base, parameter)
                values = losses.detach()
                if not torch.isfinite(values).all():
                    bad = values[~torch.isfinite(values)][0].item()
                    raise FloatingPointError(f"instance optimisation objective is {bad} at step {step}.")
                if first is None:
                    first, best = values.clone(), values.clone()
                improved = values < best
                if improved.any():
                    best = torch.where(improved, values, best)
                    best_parameter[improved] = parameter.detach()[improved]
                if step == steps:  # the last evaluation only measures
                    break
                if step and step % PROGRESS_EVERY == 0:
                    grid = "x".join(map(str, moving.shape[2:]))
                    logger.info(
                        f"instance optimisation, {grid} grid: step {step} of {steps}, objective "
                        f"{float(values.mean()):.5f}"
                    )
                # the sum of the pairs' objectives: each pair's gradient as if it were alone
                losses.sum().backward()
                previous = parameter.detach().clone()
                optimizer.step()
                overshoot = (values > first).tolist()
                if any(overshoot) or min(scale) < 1.0:
                    with torch.no_grad():
                        for index in range(batch):
                            if overshoot[index]:  # half way back from the rejected iterate to the best one
                                scale[index] *= 0.5
                                parameter[index] = 0.5 * (previous[index] + best_parameter[index])
                            elif scale[index] < 1.0:
                                parameter[index] = previous[index] + scale[index] * (parameter[index] - previous[index])
                                scale[index] = min(1.0, 2.0 * scale[index])
        return self._correction(best_parameter), float(first.mean()), float(best.mean())


class InstanceOptimizationInferer(Inferer):
    """A MONAI inferer: the network's DDF, refined on each pair by an :class:`InstanceOptimizer`.

    Drop-in for ``SimpleInferer`` in an evaluator (the bundles' ``inferer``): with ``None`` or zero steps it returns
    the network's DDF unchanged. ``last`` holds what the last refinement did.
    """

    def __init__(self, optimizer: InstanceOptimizer | None = None) -> None:
        """
        Args:
            optimizer: the refinement; ``None``: the network alone.
        """
        super().__init__()
        self.optimizer = optimizer
        self.last: InstanceOptimization | None = None

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs) -> torch.Tensor:
        """
        Args:
            inputs: Tensor in shape (B, 2, X, Y, Z): moving and fixed images.
            network: ``network(inputs) -> DDF (B, 3, X, Y, Z)``.

        Returns:
            the DDF (B, 3, X, Y, Z) in voxels.
        """
        ddf = network(inputs, *args, **kwargs)
        if self.optimizer is None or not any(self.optimizer.steps):
            return ddf
        ddf, self.last = self.optimizer(inputs[:, :1], inputs[:, 1:2], ddf)
        return ddf
