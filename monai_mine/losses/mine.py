# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Mutual information neural estimation (MINE) as a registration similarity loss.

The critic ``T(M, F)`` scores every voxel of a pair of images; voxels of the aligned pair are samples of the
joint distribution, voxels of the moving image paired with a voxel-shuffled fixed image are samples of the
product of the marginals. The Donsker-Varadhan bound ``mean(T_joint) - log mean(exp(T_marginal))`` is a lower
bound of the mutual information that the critic and the registration network both maximise.

Reference:
    Belghazi et al., "Mutual Information Neural Estimation", ICML 2018.
    Huang et al., "Mutual information neural estimation in CNN-based end-to-end medical image registration"
    (MIRegNet), section 2.
"""

from __future__ import annotations

import math

import torch
from monai.utils import LossReduction
from torch import nn
from torch.nn.modules.loss import _Loss

from monai_mine.losses._reduction import check_same_shape, reduce_per_sample
from monai_mine.networks.contracts import JointMarginalCritic, SampledCritic

__all__ = [
    "MINELoss",
    "donsker_varadhan_bound",
    "logmeanexp",
    "sample_voxels",
    "shuffle_voxels",
    "standardize_intensities",
]


def _flat_mask(mask: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor | None:
    """(B, N) boolean mask matching ``scores`` flattened to (B, N), or ``None``."""
    if mask is None:
        return None
    if mask.shape[0] != scores.shape[0] or mask.shape[2:] != scores.shape[2:] or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape {(scores.shape[0], 1, *scores.shape[2:])}, got {tuple(mask.shape)}.")
    flat = mask.flatten(1) > 0
    empty = (~flat.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask is empty (no foreground voxel) for batch sample(s) {empty}.")
    return flat


def _masked_mean(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``scores`` (B, 1, X, Y, Z) over each sample's voxels, or its foreground voxels; shape (B,)."""
    flat = scores.flatten(1)
    keep = _flat_mask(mask, scores)
    return flat.mean(dim=1) if keep is None else (flat * keep).sum(dim=1) / keep.sum(dim=1)


def logmeanexp(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``log(mean(exp(scores)))`` over all voxels of each sample, computed stably with ``logsumexp``.

    Args:
        scores: Tensor in shape (B, 1, X, Y, Z).
        mask: optional foreground, Tensor in shape (B, 1, X, Y, Z); only voxels where it is > 0 count.

    Returns:
        Tensor in shape (B,).
    """
    flat = scores.flatten(1)
    keep = _flat_mask(mask, scores)
    if keep is None:
        return torch.logsumexp(flat, dim=1) - math.log(flat.shape[1])
    flat = flat.masked_fill(~keep, float("-inf"))
    return torch.logsumexp(flat, dim=1) - keep.sum(dim=1).to(flat.dtype).log()


def donsker_varadhan_bound(
    joint_scores: torch.Tensor, marginal_scores: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Donsker-Varadhan lower bound of the mutual information, in nats.

    Args:
        joint_scores: critic scores of joint samples, Tensor in shape (B, 1, X, Y, Z).
        marginal_scores: critic scores of marginal samples, Tensor in shape (B, 1, X, Y, Z).
        mask: optional foreground, Tensor in shape (B, 1, X, Y, Z).

    Returns:
        ``mean(joint) - logmeanexp(marginal)``, Tensor in shape (B,).
    """
    check_same_shape(joint_scores, marginal_scores, "joint_scores", "marginal_scores")
    return _masked_mean(joint_scores, mask) - logmeanexp(marginal_scores, mask)


def standardize_intensities(image: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Each sample's intensities moved to zero mean and unit standard deviation, over all voxels or the mask's.

    Mutual information is unchanged by an invertible map of one image's intensities, so the critic may see
    standardised images and still bound the same quantity; it learns much faster on them than on [0, 1] images
    whose background is mostly 0 (see :class:`MINELoss`). A constant image becomes zeros.

    Args:
        image: Tensor in shape (B, C, X, Y, Z).
        mask: optional foreground, Tensor in shape (B, 1, X, Y, Z): the statistics come from its voxels only.
        eps: floor of the standard deviation.

    Returns:
        Tensor in shape (B, C, X, Y, Z).
    """
    flat = image.flatten(2)
    keep = _flat_mask(mask, image)
    weight = torch.ones_like(flat[:, :1]) if keep is None else keep[:, None].to(flat.dtype)
    count = weight.sum(dim=2, keepdim=True)
    mean = (flat * weight).sum(dim=2, keepdim=True) / count
    variance = ((flat - mean).square() * weight).sum(dim=2, keepdim=True) / count
    return ((flat - mean) / variance.sqrt().clamp_min(eps)).reshape(image.shape)


def shuffle_voxels(image: torch.Tensor, mask: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """Randomly permute the voxels of each sample (the same permutation for all channels).

    The result keeps the intensity distribution of ``image`` but is independent of any other image: paired with
    the moving image it samples the product of the marginal distributions.

    Args:
        image: Tensor in shape (B, C, X, Y, Z).
        mask: optional foreground, Tensor in shape (B, 1, X, Y, Z): voxels are permuted only among the
            foreground voxels; background voxels keep their values.
        generator: optional ``torch.Generator`` for reproducible permutations.

    Returns:
        Tensor in shape (B, C, X, Y, Z).
    """
    if image.ndim != 5:
        raise ValueError(f"image must have shape (B, C, X, Y, Z), got {tuple(image.shape)}.")
    flat = image.flatten(2)
    keep = _flat_mask(mask, image)
    if keep is None:
        keys = torch.rand(flat.shape[0], flat.shape[2], device=image.device, generator=generator)
        order = keys.argsort(dim=1)
    else:
        # identity order, with the foreground positions permuted among themselves
        order = torch.arange(flat.shape[2], device=image.device).repeat(flat.shape[0], 1)
        for b in range(flat.shape[0]):
            positions = keep[b].nonzero().flatten()
            perm = torch.randperm(positions.numel(), device=image.device, generator=generator)
            order[b, positions] = positions[perm]
    shuffled = torch.gather(flat, 2, order.unsqueeze(1).expand(-1, flat.shape[1], -1))
    return shuffled.reshape(image.shape)


def sample_voxels(image: torch.Tensor, count: int, mask: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """``count`` voxels of each sample drawn uniformly with replacement, among the mask's foreground if given.

    Args:
        image: Tensor in shape (B, C, X, Y, Z) (only its shape and device are used).
        count: voxels per sample.
        mask: optional foreground, Tensor in shape (B, 1, X, Y, Z).
        generator: optional ``torch.Generator`` for reproducible draws.

    Returns:
        flat voxel indices into X * Y * Z, Tensor in shape (B, count), int64.
    """
    if image.ndim != 5:
        raise ValueError(f"image must have shape (B, C, X, Y, Z), got {tuple(image.shape)}.")
    keep = _flat_mask(mask, image)
    voxels = image[0, 0].numel()
    if keep is None:
        return torch.randint(voxels, (image.shape[0], count), device=image.device, generator=generator)
    draws = []
    for row in keep:
        positions = row.nonzero().flatten()
        draws.append(positions[torch.randint(positions.numel(), (count,), device=image.device, generator=generator)])
    return torch.stack(draws)


class MINELoss(_Loss):
    """Minus the Donsker-Varadhan bound of the mutual information between a warped moving and a fixed image.

    The loss owns its critic (a :class:`monai_mine.networks.MINECritic` unless one is given), so the critic's
    parameters are ``loss.critic.parameters()``: train them with the registration network, maximising the same
    bound (``docs/design.md`` section 4). After each call, ``last_bound`` holds the batch mean of the bound (nats,
    detached) for logging.

    With ``standardize`` (the default), both images are standardised per sample (:func:`standardize_intensities`)
    before the critic sees them: the bound is of the same mutual information, and a critic learns it faster on inputs
    of unit scale than on [0, 1] images whose voxels are mostly background. Measured at 32^3 on the brain
    benchmark's T2-like and T1 templates, aligned, the critic alone (learning rate 0.01, steps 151-200): 0.81 nats
    standardised against 0.59 without; an AffineNet trained with MINE came within 2.8 voxels of the known answer
    after 500 steps with standardised inputs, 3.2 without (``benchmarks/results/miregnet_diagnostics.md``).

    With ``ema_decay`` set, the gradient of the marginal term is bias-corrected as in MINE: the denominator
    ``mean(exp(T_marginal))`` of its gradient is replaced by an exponential moving average (kept in log space
    in the buffer ``ema_log_denominator``, saved with the state dict). The loss value is unchanged.

    With ``samples`` set, each call scores a minibatch of that many voxels per image (drawn uniformly, within the
    mask when one is given) instead of every voxel: the joint pairs at the drawn voxels and the marginal pairs with
    the fixed intensities of an independent draw. The bound is the same quantity estimated from fewer samples, and
    most of the critic's work (its moving branch's last convolution, the fixed branch and the head) scales with
    the samples (:meth:`~monai_mine.networks.MINECritic.joint_and_marginal_at`).

    With ``drift_penalty`` set to ``lambda > 0``, the loss adds ``lambda * logmeanexp(T_marginal)^2`` (ReMINE): the
    bound does not change when the critic's scores all move by a constant, so nothing stops them drifting, and a
    drifted critic makes ``exp(T_marginal)`` and the bias-corrected gradient explode; the penalty holds the
    log-denominator near 0 (where the Donsker-Varadhan and the ``f``-divergence bounds agree) without moving the
    bound's maximiser. ``last_bound`` stays the bound alone. Alone it did not keep a long MIRegNet training from
    diverging (a spike of the bias-corrected gradient; ``docs/training.md``): cap the gradients too
    (:class:`~monai_mine.engines.RegistrationTrainer`'s ``max_grad_norm``).

    Reference:
        Belghazi et al., "Mutual Information Neural Estimation", ICML 2018, section 3.2.
        Huang et al., MIRegNet, eq. 3-5.
        Choi and Lee, "Regularized Mutual Information Neural Estimation" (ReMINE), 2020, eq. 9.
    """

    def __init__(
        self,
        critic: nn.Module | None = None,
        ema_decay: float | None = None,
        standardize: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
        samples: int | None = None,
        drift_penalty: float = 0.0,
    ) -> None:
        """
        Args:
            critic: a module ``critic(moving, fixed)`` returning per-voxel scores (B, 1, X, Y, Z); by default a
                :class:`monai_mine.networks.MINECritic` with one channel per entrance. A critic that is also a
                :class:`~monai_mine.networks.contracts.JointMarginalCritic` scores joint and marginal pairs in one
                call; any other is called twice.
            ema_decay: decay in (0, 1) of the moving average used for the bias-corrected gradient; ``None``
                uses the plain (biased) minibatch gradient.
            standardize: standardise each image per sample before the critic (over the mask's voxels when a mask
                is given); ``False`` gives the critic the images as they come.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.
            samples: voxels per image scored per call (``None``: every voxel); needs a critic that is a
                :class:`~monai_mine.networks.contracts.SampledCritic`.
            drift_penalty: weight of the squared log-denominator ``logmeanexp(T_marginal)^2`` added to the loss
                (0: the plain bound).

        Raises:
            TypeError: when ``critic`` is not callable.
            ValueError: when ``ema_decay`` is outside (0, 1), ``samples`` is not a positive integer, ``samples``
                is given with a critic that cannot score sampled voxels, or ``drift_penalty`` is negative or not
                finite.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        if critic is not None and not callable(critic):
            raise TypeError(
                f"critic must be a module critic(moving, fixed) -> scores (B, 1, X, Y, Z), got {type(critic).__name__}."
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}.")
        if critic is None:
            from monai_mine.networks.mine_critic import MINECritic

            critic = MINECritic()
        if samples is not None and (isinstance(samples, bool) or int(samples) != samples or samples < 1):
            raise ValueError(f"samples must be a positive number of voxels or None, got {samples!r}.")
        if samples is not None and not isinstance(critic, SampledCritic):
            raise ValueError(
                f"samples={samples} needs a critic with joint_and_marginal_at (a SampledCritic, e.g. MINECritic), got "
                f"{type(critic).__name__}."
            )
        if not (math.isfinite(drift_penalty) and drift_penalty >= 0.0):
            raise ValueError(f"drift_penalty must be a finite weight >= 0, got {drift_penalty!r}.")
        self.critic = critic
        self.drift_penalty = float(drift_penalty)
        self.samples = None if samples is None else int(samples)
        self.ema_decay = ema_decay
        self.standardize = standardize
        self.register_buffer("ema_log_denominator", torch.tensor(float("nan")))
        self.last_bound: torch.Tensor | None = None

    def _marginal_term(self, log_denominator: torch.Tensor) -> torch.Tensor:
        """The bound's marginal term from ``logmeanexp(T_marginal)`` (B,): its value, with the bias-corrected
        gradient when ``ema_decay`` is set (and gradients are on)."""
        if self.ema_decay is None or not torch.is_grad_enabled():
            return log_denominator
        with torch.no_grad():
            batch_log = torch.logsumexp(log_denominator, dim=0) - math.log(log_denominator.numel())
            if torch.isnan(self.ema_log_denominator):
                self.ema_log_denominator.copy_(batch_log)
            else:
                self.ema_log_denominator.copy_(
                    torch.logaddexp(
                        math.log(self.ema_decay) + self.ema_log_denominator,
                        math.log(1.0 - self.ema_decay) + batch_log,
                    )
                )
        # value: log_denominator; gradient: grad(mean exp T) / moving average of mean exp T
        ratio = torch.exp(log_denominator - self.ema_log_denominator)
        return log_denominator.detach() + ratio - ratio.detach()

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            pred: the warped moving image ``M``, Tensor in shape (B, C, X, Y, Z).
            target: the fixed image ``F``, Tensor in shape (B, C, X, Y, Z).
            mask: optional foreground, Tensor in shape (B, 1, X, Y, Z): marginal samples are shuffled within it
                and only its voxels enter the bound.

        Returns:
            minus the bound (plus the drift penalty, if set), reduced over the batch as ``reduction`` says.

        Raises:
            ValueError: on mismatched shapes, a mask of the wrong shape or an empty mask.
        """
        check_same_shape(pred, target)
        if self.standardize:
            pred, target = standardize_intensities(pred, mask), standardize_intensities(target, mask)
        if self.samples is not None:
            joint_index, marginal_index = (sample_voxels(target, self.samples, mask) for _ in range(2))
            joint_scores, marginal_scores = self.critic.joint_and_marginal_at(pred, target, joint_index, marginal_index)
            joint_mean, log_denominator = joint_scores.flatten(1).mean(dim=1), logmeanexp(marginal_scores)
        else:
            marginal_target = shuffle_voxels(target, mask)
            if isinstance(self.critic, JointMarginalCritic):  # one call for both (MINECritic: one moving-branch pass)
                joint_scores, marginal_scores = self.critic.joint_and_marginal(pred, target, marginal_target)
            else:
                joint_scores, marginal_scores = self.critic(pred, target), self.critic(pred, marginal_target)
            check_same_shape(joint_scores, marginal_scores, "joint_scores", "marginal_scores")
            joint_mean, log_denominator = _masked_mean(joint_scores, mask), logmeanexp(marginal_scores, mask)
        bound = joint_mean - self._marginal_term(log_denominator)
        self.last_bound = bound.detach().mean()
        loss = -bound + self.drift_penalty * log_denominator.square() if self.drift_penalty else -bound
        return reduce_per_sample(loss, self.reduction)
