# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MIND-SSC: a modality independent neighbourhood descriptor, and the registration loss that compares two images by it.

Each voxel is described by how alike its neighbours are to one another (the self-similarity context): for the 12
pairs of its six face neighbours that are not opposite each other, the patch distance between the two neighbours,
turned into ``exp(-distance / local variance)``. Two images of different contrasts have similar descriptors where
their structures align, so the loss is a plain mean squared difference of descriptors.

Reference:
    Heinrich et al., "MIND: Modality independent neighbourhood descriptor for multi-modal deformable registration",
    Medical Image Analysis 2012; Heinrich et al., "Towards realtime multimodal fusion for image-guided interventions
    using self-similarities" (MIND-SSC), MICCAI 2013.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_mine.losses._reduction import check_same_shape, reduce_per_sample
from monai_mine.losses.similarity import box_mean

__all__ = ["MINDSSCLoss", "mind_ssc"]

_FACE_NEIGHBOURS = [(axis, sign) for axis in range(3) for sign in (-1, 1)]
_NEIGHBOUR_PAIRS = [
    (first, second) for first, second in itertools.combinations(_FACE_NEIGHBOURS, 2) if first[0] != second[0]
]  # the 12 pairs of face neighbours that are not opposite each other, sqrt(2) * dilation apart


def _shifted(padded: torch.Tensor, neighbour: tuple[int, int], dilation: int) -> torch.Tensor:
    """``image(x + dilation * e_axis * sign)`` for every voxel ``x``, from the image padded by ``dilation``."""
    axis, sign = neighbour
    index = [slice(dilation, -dilation)] * 3
    index[axis] = slice(dilation + sign * dilation, padded.shape[2 + axis] - dilation + sign * dilation)
    return padded[(slice(None), slice(None), *index)]


def _check_settings(radius: int, dilation: int) -> None:
    if int(radius) != radius or radius < 0 or int(dilation) != dilation or dilation < 1:
        raise ValueError(f"radius must be a whole number >= 0 and dilation one >= 1, got {radius!r} and {dilation!r}.")


def mind_ssc(image: torch.Tensor, radius: int = 1, dilation: int = 2, eps: float = 1e-3) -> torch.Tensor:
    """The MIND-SSC descriptor of every voxel.

    For each of the 12 pairs ``(p, q)`` of face neighbours (``dilation`` voxels away along an axis, not opposite),
    the patch distance ``D_pq(x)``: the mean of ``(I(x + p + y) - I(x + q + y))^2`` over a ``(2 radius + 1)``^3 box
    of ``y`` (replicate padding at the borders). Less its minimum over the pairs, it is divided by its mean over the
    pairs (a local variance, kept within ``eps`` and ``1 / eps`` times its mean over the volume) and mapped to
    ``exp(-D / V)``: 1 where two neighbours are alike, near 0 where they differ.

    Args:
        image: Tensor in shape (B, C, X, Y, Z).
        radius: patch radius in voxels (the box edge is ``2 radius + 1``).
        dilation: distance of the neighbours in voxels.
        eps: the local variance's floor and ceiling relative to its volume mean.

    Returns:
        Tensor in shape (B, 12 C, X, Y, Z), values in (0, 1]; channel ``12 c + k`` is pair ``k`` of channel ``c``.

    Raises:
        ValueError: when ``image`` is not 5D, ``radius`` is not a whole number >= 0 or ``dilation`` one >= 1.
    """
    if image.ndim != 5:
        raise ValueError(f"image must have shape (B, C, X, Y, Z), got {tuple(image.shape)}.")
    _check_settings(radius, dilation)
    batch, channels = image.shape[:2]
    padded = F.pad(image.float().reshape(batch * channels, 1, *image.shape[2:]), (dilation,) * 6, mode="replicate")
    neighbours = {neighbour: _shifted(padded, neighbour, dilation) for neighbour in _FACE_NEIGHBOURS}
    differences = torch.cat([neighbours[p] - neighbours[q] for p, q in _NEIGHBOUR_PAIRS], dim=1)
    distance = box_mean(differences.square(), 2 * int(radius) + 1)  # (B C, 12, X, Y, Z)
    distance = distance - distance.amin(dim=1, keepdim=True)
    variance = distance.mean(dim=1, keepdim=True)
    scale = variance.mean(dim=(1, 2, 3, 4), keepdim=True)
    variance = torch.maximum(torch.minimum(variance, scale / eps), scale * eps).clamp_min(1e-12)
    return torch.exp(-distance / variance).reshape(batch, channels * len(_NEIGHBOUR_PAIRS), *image.shape[2:])


class MINDSSCLoss(_Loss):
    """Mean squared difference of the MIND-SSC descriptors (:func:`mind_ssc`) of two images: a similarity for pairs of
    different contrasts that, unlike mutual information, is local (each voxel compares its own neighbourhood).

    It is a :class:`~monai_mine.optimization.FeatureSimilarity`: :meth:`features` describes an image and
    :meth:`compare` scores two descriptions, so instance optimisation describes each image once per level and warps
    the description (as ConvexAdam does) instead of describing the warped image at every step.
    """

    def __init__(self, radius: int = 1, dilation: int = 2, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        """
        Args:
            radius: patch radius in voxels.
            dilation: distance of the compared neighbours in voxels.
            reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for a (B,) tensor.

        Raises:
            ValueError: on a radius or dilation :func:`mind_ssc` refuses.
        """
        super().__init__(reduction=LossReduction(reduction).value)
        _check_settings(radius, dilation)
        self.radius, self.dilation = int(radius), int(dilation)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The descriptors of ``image`` (B, C, X, Y, Z): Tensor in shape (B, 12 C, X, Y, Z)."""
        return mind_ssc(image, self.radius, self.dilation)

    def compare(self, pred_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """The loss from descriptors (B, 12 C, X, Y, Z), e.g. the warped moving image's descriptors and the fixed's."""
        check_same_shape(pred_features, target_features)
        squared = (pred_features - target_features.to(pred_features.dtype)).square()
        return reduce_per_sample(squared.flatten(1).mean(dim=1), self.reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: the warped moving image, Tensor in shape (B, C, X, Y, Z).
            target: the fixed image, Tensor in shape (B, C, X, Y, Z).

        Returns:
            the mean squared descriptor difference, 0 for images of the same structures, reduced as ``reduction``.

        Raises:
            ValueError: when the shapes differ or are not 5D.
        """
        check_same_shape(pred, target)
        return self.compare(self.features(pred), self.features(target))
