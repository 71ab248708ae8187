# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Random contrast of an image, in the manner of SynthMorph: a random transfer function of the intensities (per
band, monotone or not), a smooth multiplicative bias field, a gamma and noise, so that a network trained with it
sees every tissue contrast and learns to align structures rather than intensities."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor

from monai_mine.keys import MOVING_IMAGE

__all__ = ["RandContrastRemapd", "piecewise_linear"]


def piecewise_linear(image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Map intensities in [0, 1] through the piecewise-linear function with ``values`` at equally spaced knots.

    Args:
        image: Tensor of any shape, intensities in [0, 1] (clamped there first).
        values: Tensor in shape (K,), K >= 2, the function at ``0, 1/(K-1), ..., 1``.

    Returns:
        Tensor shaped as ``image``.
    """
    bands = values.numel() - 1
    position = image.clamp(0.0, 1.0) * bands
    lower = position.floor().clamp(max=bands - 1)
    weight = position - lower
    lower = lower.long()
    return values[lower] * (1.0 - weight) + values[lower + 1] * weight


class RandContrastRemapd(RandomizableTransform, MapTransform):
    """Give each image a new random contrast: transfer function, bias field, gamma and noise, then rescale to [0, 1].

    For every key independently (each draw its own):

    1. **transfer function**: the intensity range [0, 1] is cut into ``bands`` equal bands whose ``bands + 1``
       knots get values uniform in [0, 1], linear in between; with probability ``monotone_prob`` the values are
       sorted (the order of the tissues is kept, increasing or, with equal chance, decreasing), otherwise any order
       (tissues swap brightness as they do between MR sequences);
    2. **bias field**: multiplied by ``exp(b)``, ``b`` drawn normal with standard deviation ``bias`` on a
       ``bias_points``^3 grid and upsampled trilinearly;
    3. **gamma**: raised to ``exp(g)``, ``g`` normal with standard deviation ``gamma`` (after rescaling to [0, 1]);
    4. **noise**: Gaussian noise of standard deviation uniform in [0, ``noise``].

    The result is rescaled to [0, 1]. Inputs are expected in [0, 1] (after the bundle's intensity normalisation);
    the background (zeros) is mapped like any other intensity. Draws come from the transform's random state, which
    MONAI's ``DataLoader`` seeds from the bundle's seed.

    Args:
        keys: images to remap (items are (C, X, Y, Z), channel first); labels must not be listed.
        prob: probability of remapping an image (each key drawn separately).
        bands: bands of the transfer function (at least 1).
        monotone_prob: probability that a transfer function keeps or reverses the order of intensities.
        bias: standard deviation of the log bias field.
        bias_points: control points per axis of the bias field (at least 2).
        gamma: standard deviation of the log gamma exponent.
        noise: largest standard deviation of the added noise.
        allow_missing_keys: skip keys a pair lacks.
    """

    def __init__(
        self,
        keys: KeysCollection = (MOVING_IMAGE,),
        prob: float = 1.0,
        bands: int = 6,
        monotone_prob: float = 0.5,
        bias: float = 0.3,
        bias_points: int = 4,
        gamma: float = 0.25,
        noise: float = 0.05,
        allow_missing_keys: bool = True,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        if bands < 1 or bias_points < 2:
            raise ValueError(f"bands must be at least 1 and bias_points at least 2, got {bands}, {bias_points}.")
        if min(bias, gamma, noise) < 0 or not 0 <= monotone_prob <= 1:
            raise ValueError(
                f"bias, gamma and noise must be >= 0 and monotone_prob in [0, 1], got {bias}, {gamma}, {noise}, "
                f"{monotone_prob}."
            )
        self.bands, self.monotone_prob = bands, monotone_prob
        self.bias, self.bias_points, self.gamma, self.noise = bias, bias_points, gamma, noise

    def remap(self, image: torch.Tensor) -> torch.Tensor:
        """One random contrast of ``image`` (C, X, Y, Z) in [0, 1], drawn from the transform's random state."""
        values = self.R.uniform(0.0, 1.0, self.bands + 1)
        if self.R.uniform() < self.monotone_prob:
            values = np.sort(values)[:: 1 if self.R.uniform() < 0.5 else -1]
        log_bias = self.R.normal(0.0, self.bias, (1, 1) + (self.bias_points,) * 3)
        exponent = float(np.exp(self.R.normal(0.0, self.gamma)))
        noise_std = float(self.R.uniform(0.0, self.noise))
        seed = int(self.R.randint(0, 2**31 - 1))

        device = image.device
        out = piecewise_linear(image.float(), torch.as_tensor(values.copy(), dtype=torch.float32, device=device))
        field = torch.as_tensor(log_bias, dtype=torch.float32, device=device)
        out = out * F.interpolate(field, size=tuple(image.shape[1:]), mode="trilinear", align_corners=True)[0].exp()
        out = _rescale(out).pow(exponent)
        generator = torch.Generator(device=device).manual_seed(seed)
        out = out + noise_std * torch.randn(out.shape, generator=generator, device=device)
        return _rescale(out)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            self.randomize(None)
            if self._do_transform:
                d[key] = self.remap(convert_to_tensor(d[key], track_meta=False))
        return d


def _rescale(image: torch.Tensor) -> torch.Tensor:
    """Min-max rescaling to [0, 1] (a constant image becomes zeros)."""
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-6)
