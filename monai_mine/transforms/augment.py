# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Random spatial augmentation of registration pairs: every call gives the moving image a new random affine and
smooth deformation, so that a training run sees a new pair at every iteration; now and then a pair is made
identical, so that a network learns to leave aligned images where they are. Made identical first and then
deformed, a pair's answer is known (``target_ddf``), for a supervised term."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor

from monai_mine.flows import affine_to_ddf, compose_ddf, invert_ddf, resize_ddf, warp
from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL, TARGET_DDF

__all__ = ["RandIdentityPaird", "RandPairDeformd", "known_answer", "random_rotation"]


def random_rotation(angles: Sequence[float]) -> np.ndarray:
    """The rotation matrix (3, 3) of angles (radians) about axes 0, 1 and 2, applied in that order."""
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        i, j = [k for k in range(3) if k != axis]
        rotation = np.eye(3)
        rotation[i, i] = rotation[j, j] = math.cos(angle)
        rotation[i, j], rotation[j, i] = -math.sin(angle), math.sin(angle)
        matrix = rotation @ matrix
    return matrix


def known_answer(ddf: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """A pair's answer after its moving image is warped by ``ddf`` once more: ``t'`` with ``compose_ddf(ddf, t') =
    answer`` (:func:`~monai_mine.flows.invert_ddf`), solved on a grid of half the size and refined by two
    fixed-point iterations at full size (for the default draws at 64^3: mean residual 0.004 voxels, at most 0.3,
    in a quarter of the time of solving at full size).

    Args:
        ddf: the new warp, Tensor in shape (1, 3, X, Y, Z), voxels.
        answer: the pair's answer before it, Tensor in shape (1, 3, X, Y, Z), voxels.

    Returns:
        Tensor in shape (1, 3, X, Y, Z).
    """
    shape = ddf.shape[2:]
    coarse = [max(n // 2, 2) for n in shape]
    first_guess = resize_ddf(invert_ddf(resize_ddf(ddf, coarse), resize_ddf(answer, coarse), tolerance=5e-3), shape)
    return invert_ddf(ddf, answer, max_iterations=2, start=first_guess)


class RandPairDeformd(RandomizableTransform, MapTransform):
    """Warp the moving image and its label by a random affine map followed by a random smooth deformation.

    The generated displacement is ``u = compose(affine, smooth)`` in voxels (docs/design.md section 2); the images
    become ``moving(x + u(x))`` (bilinear, border padding) and the labels the same with nearest-neighbour sampling.
    The affine part rotates by up to ``rotation`` degrees about each axis, scales each axis by up to ``scaling``
    and translates by up to ``translation`` voxels, about the grid's centre; the smooth part draws a displacement of
    up to ``deformation`` voxels at ``control_points``^3 points and upsamples it trilinearly. Draws come from the
    transform's random state, which MONAI's ``DataLoader`` seeds from the bundle's seed, so a run is repeatable.
    Used on the moving side of a pair, it turns a fixed set of pairs into a new pair at every iteration, for
    paired, unpaired and Learn2Reg datalists alike.

    A pair that holds its known answer at ``target_key`` (``warp(moving, target) = fixed``, e.g. set by
    :class:`RandIdentityPaird`) keeps it known: the target becomes the ``t'`` with ``compose_ddf(u, t') = t``
    (:func:`known_answer`), so that ``warp(moving', t') = fixed`` again.

    Args:
        keys: the moving image and its label map (items are (C, X, Y, Z), channel first, all on one grid).
        label_keys: which of ``keys`` are label maps (nearest-neighbour sampling).
        prob: probability of augmenting a pair.
        rotation: largest rotation about each axis, degrees.
        scaling: largest relative change of each axis' scale (0.1: factors in [0.9, 1.1]).
        translation: largest translation along each axis, voxels.
        deformation: largest displacement of the smooth part at its control points, voxels.
        control_points: control points per axis of the smooth part (at least 2).
        device: where to compute (e.g. the training device); the outputs stay there.
        target_key: where a pair keeps its known answer (3, X, Y, Z), voxels, updated when present.
        allow_missing_keys: skip keys a pair lacks (e.g. no labels).
    """

    def __init__(
        self,
        keys: KeysCollection = (MOVING_IMAGE, MOVING_LABEL),
        label_keys: KeysCollection = (MOVING_LABEL,),
        prob: float = 1.0,
        rotation: float = 10.0,
        scaling: float = 0.1,
        translation: float = 3.0,
        deformation: float = 4.0,
        control_points: int = 5,
        device: str | torch.device | None = None,
        target_key: str = TARGET_DDF,
        allow_missing_keys: bool = True,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.target_key = target_key
        if min(rotation, scaling, translation, deformation) < 0 or scaling >= 1:
            raise ValueError(
                f"rotation, scaling, translation and deformation must be >= 0 and scaling < 1, got {rotation}, "
                f"{scaling}, {translation}, {deformation}."
            )
        if control_points < 2:
            raise ValueError(f"control_points must be at least 2, got {control_points}.")
        self.label_keys = set(label_keys) if not isinstance(label_keys, str) else {label_keys}
        self.rotation, self.scaling, self.translation = rotation, scaling, translation
        self.deformation, self.control_points = deformation, control_points
        self.device = None if device is None else torch.device(device)
        self._matrix = np.eye(3)
        self._shift = np.zeros(3)
        self._coarse = np.zeros((3, control_points, control_points, control_points))

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        angles = np.deg2rad(self.R.uniform(-self.rotation, self.rotation, 3))
        scales = self.R.uniform(1 - self.scaling, 1 + self.scaling, 3)
        self._matrix = random_rotation(angles) @ np.diag(scales)
        self._shift = self.R.uniform(-self.translation, self.translation, 3)
        shape = (3,) + (self.control_points,) * 3
        self._coarse = self.R.uniform(-self.deformation, self.deformation, shape)

    def displacement(self, spatial_shape: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
        """The displacement of the last draw on a grid: Tensor in shape (1, 3, X, Y, Z), voxels."""
        matrix = torch.as_tensor(self._matrix - np.eye(3), dtype=torch.float32, device=device)[None]
        shift = torch.as_tensor(self._shift, dtype=torch.float32, device=device)[None]
        affine = affine_to_ddf(matrix, shift, spatial_shape)
        coarse = torch.as_tensor(self._coarse, dtype=torch.float32, device=device)[None]
        smooth = F.interpolate(coarse, size=tuple(spatial_shape), mode="trilinear", align_corners=True)
        return compose_ddf(affine, smooth)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        present = list(self.key_iterator(d))
        if not self._do_transform or not present:
            return d
        first = convert_to_tensor(d[present[0]], track_meta=False)
        device = self.device or first.device
        ddf = self.displacement(first.shape[1:], device)
        for key in present:
            image = convert_to_tensor(d[key], track_meta=False).to(device)
            label = key in self.label_keys
            moved = warp(image[None].float(), ddf, mode="nearest" if label else "bilinear")[0]
            d[key] = moved.to(image.dtype) if label else moved
        if self.target_key in d:
            target = convert_to_tensor(d[self.target_key], track_meta=False).to(device=device, dtype=ddf.dtype)
            d[self.target_key] = known_answer(ddf, target[None])[0]
        return d


class RandIdentityPaird(RandomizableTransform, MapTransform):
    """With probability ``prob``, make a pair identical: the moving image and label become copies of the fixed ones.

    A network trained only on misaligned pairs has no reason to output a zero field, and moves an image registered
    to itself; a share of identical pairs teaches it to leave aligned images alone. Place it after
    :class:`RandPairDeformd` (a pair made identical stays identical). A pair whose fixed side lacks one of the
    sources (e.g. a fixed label while the moving label exists) is left as it is.

    Placed *before* :class:`RandPairDeformd` with ``prob=1`` and a ``target_key``, it makes synthetic pairs with a
    known answer: every moving image starts as a copy of its fixed one with a zero ``target_ddf``, which the random
    deformation then keeps up to date (every pair of a batch must carry it, hence ``prob=1``).

    Args:
        keys: the moving image and label to replace.
        source_keys: the fixed image and label they become copies of, in the same order.
        prob: probability of making a pair identical.
        target_key: if given, an identical pair also gets a zero known answer (3, X, Y, Z) at this key.
        allow_missing_keys: skip keys a pair lacks (e.g. no labels).

    Raises:
        ValueError: when ``source_keys`` do not pair with ``keys``, or a ``target_key`` comes with ``prob < 1``.
    """

    def __init__(
        self,
        keys: KeysCollection = (MOVING_IMAGE, MOVING_LABEL),
        source_keys: KeysCollection = (FIXED_IMAGE, FIXED_LABEL),
        prob: float = 0.1,
        target_key: str | None = None,
        allow_missing_keys: bool = True,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.source_keys = (source_keys,) if isinstance(source_keys, str) else tuple(source_keys)
        if len(self.source_keys) != len(self.keys):
            raise ValueError(f"source_keys {self.source_keys} must pair one to one with keys {self.keys}.")
        if target_key is not None and prob < 1:
            raise ValueError(
                f"target_key {target_key!r} needs prob=1 (got {prob}): a pair left as it is has no known answer, "
                "and every pair of a batch must carry one."
            )
        self.target_key = target_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        pairs = [(key, source) for key, source in zip(self.keys, self.source_keys) if key in d]
        missing = [source for _, source in pairs if source not in d]
        if missing and self.target_key is not None:
            raise ValueError(f"a pair has {[key for key, _ in pairs]} but lacks {missing}: cannot make it identical.")
        if not self._do_transform or missing:
            return d
        for key, source in pairs:
            d[key] = convert_to_tensor(d[source], track_meta=False).clone()
        if self.target_key is not None:
            fixed = d[self.source_keys[0]]
            d[self.target_key] = torch.zeros((3, *fixed.shape[1:]), dtype=torch.float32, device=fixed.device)
        return d
