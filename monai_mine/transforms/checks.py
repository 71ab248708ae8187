# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Dictionary transforms that stop bad data early, with a message naming the file.

Each check passes the data through unchanged or raises ``ValueError``; the file is taken from the MetaTensor's
``meta["filename_or_obj"]`` (set by ``LoadImaged``), else only the key is named. Place them after ``LoadImaged``
and ``EnsureChannelFirstd``, e.g.::

    Compose([
        LoadImaged(keys), EnsureChannelFirstd(keys),
        CheckSpatialDimsd(keys), CheckFinited(keys), CheckSameShaped(keys),
    ])

Inside a ``Compose`` (and a MONAI ``Dataset``) MONAI re-raises every error as ``RuntimeError("applying transform
...")`` chained to the original, so the message naming the file is in the printed traceback ("The above exception
was the direct cause ..."), and in code in ``exc.__cause__``; :func:`root_cause` finds it. Setting the environment
variable ``MONAI_DEBUG=1`` makes MONAI raise the ``ValueError`` itself.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = [
    "CheckFinited",
    "CheckLabelGridd",
    "CheckNonConstantd",
    "CheckNonEmptyLabeld",
    "CheckSameShaped",
    "CheckSpatialDimsd",
    "root_cause",
]


def _name(value: Any, key: Hashable) -> str:
    """``"<file> (key 'k')"`` when the data knows its file, else ``"key 'k'"``."""
    meta = getattr(value, "meta", None)
    filename = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    return f"{filename} (key {key!r})" if filename else f"key {key!r}"


def _as_tensor(value: Any) -> torch.Tensor:
    return value.as_tensor() if hasattr(value, "as_tensor") else torch.as_tensor(np.asarray(value))


def _grid_text(shape: tuple[int, ...], affine: torch.Tensor | None) -> str:
    matrix = "unknown" if affine is None else np.round(affine.numpy(), 4).tolist()
    return f"shape {shape}, affine {matrix}"


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a ``__cause__`` chain, e.g. a check's ``ValueError`` inside MONAI's wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


class _Check(MapTransform):
    """Base of the checks: ``repr`` names the class and keys, as MONAI's ``RuntimeError("applying transform ...")``
    shows it."""

    def __repr__(self) -> str:
        extra = f", spatial_dims={self.spatial_dims}" if hasattr(self, "spatial_dims") else ""
        return f"{type(self).__name__}(keys={list(self.keys)}{extra})"


class CheckFinited(_Check):
    """Raise if an image holds NaN or infinite voxels.

    Args:
        keys: keys of the images to check.
        allow_missing_keys: skip keys absent from the data instead of raising.

    Raises:
        ValueError: naming the file and the number of NaN and infinite voxels.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            array = _as_tensor(d[key])
            nan = int(torch.isnan(array).sum())
            inf = int(torch.isinf(array).sum())
            if nan or inf:
                raise ValueError(
                    f"{_name(d[key], key)} has {nan} NaN and {inf} infinite voxel(s) out of {array.numel()}."
                )
        return d


class CheckNonConstantd(_Check):
    """Raise if an image has the same value in every voxel: there is nothing to register (a blank or failed scan).

    Args:
        keys: keys of the images to check (not label maps, which may well be all one label).
        allow_missing_keys: skip keys absent from the data instead of raising.

    Raises:
        ValueError: naming the file and its single value.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            array = _as_tensor(d[key])
            if array.numel() and bool(torch.all(array == array.reshape(-1)[0])):
                raise ValueError(
                    f"{_name(d[key], key)} is constant (every voxel is {array.reshape(-1)[0].item()}): "
                    "nothing to register; expected an image with some contrast."
                )
        return d


class CheckLabelGridd(_Check):
    """Raise unless each label map lies on its image's voxel grid: same spatial shape and the same affine.

    A label map with another voxel size, origin or orientation than its image would be resampled and warped
    out of register without any error. Keys are paired in order: ``keys[i]`` is the label map of ``image_keys[i]``.
    Place it after ``LoadImaged`` and ``EnsureChannelFirstd`` (it reads the MetaTensors' ``affine``).

    Args:
        keys: keys of the label maps, e.g. ``["moving_label", "fixed_label"]``.
        image_keys: keys of their images, in the same order, e.g. ``["moving_image", "fixed_image"]``.
        tolerance: largest difference allowed between affine entries, in mm.
        allow_missing_keys: skip label maps absent from the data (optional labels).

    Raises:
        ValueError: naming both files, their shapes and voxel-to-world affines.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_keys: KeysCollection,
        tolerance: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_keys = tuple(image_keys) if not isinstance(image_keys, str) else (image_keys,)
        if len(self.image_keys) != len(self.keys):
            raise ValueError(
                f"image_keys {list(self.image_keys)} must pair one image with each label key {list(self.keys)}."
            )
        self.tolerance = tolerance

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        images = dict(zip(self.keys, self.image_keys))
        for key in self.key_iterator(d):
            label, image = d[key], d[images[key]]
            grids = []
            for value in (label, image):
                affine = getattr(value, "affine", None)
                grids.append((tuple(np.shape(value)[1:]), None if affine is None else _as_tensor(affine).double()))
            (label_shape, label_affine), (image_shape, image_affine) = grids
            same = label_shape == image_shape
            if same and label_affine is not None and image_affine is not None:
                same = bool(torch.allclose(label_affine, image_affine, rtol=0.0, atol=self.tolerance))
            if not same:
                raise ValueError(
                    f"label map {_name(label, key)} is not on the grid of its image {_name(image, images[key])}: "
                    f"{_grid_text(label_shape, label_affine)} vs {_grid_text(image_shape, image_affine)}; expected "
                    "the same shape and voxel-to-world affine (resample the label map onto its image's grid)."
                )
        return d


class CheckSameShaped(_Check):
    """Raise unless all images have the same spatial shape (the last ``spatial_dims`` axes).

    Args:
        keys: keys of the images to compare; keys absent from the data are skipped when ``allow_missing_keys``.
        spatial_dims: number of trailing spatial axes compared, so (C, X, Y, Z) and (X, Y, Z) data both work.
        allow_missing_keys: skip keys absent from the data (e.g. optional labels) instead of raising.

    Raises:
        ValueError: naming every key with its file and spatial shape.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int = 3, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shapes = {key: tuple(np.shape(d[key])[-self.spatial_dims :]) for key in self.key_iterator(d)}
        if len(set(shapes.values())) > 1:
            listing = "; ".join(f"{_name(d[key], key)}: {shape}" for key, shape in shapes.items())
            raise ValueError(f"Spatial shapes differ: {listing}.")
        return d


class CheckNonEmptyLabeld(_Check):
    """Raise if a label map has no foreground (every voxel zero). Apply before any one-hot conversion.

    Args:
        keys: keys of the label maps to check.
        allow_missing_keys: skip keys absent from the data (e.g. optional labels) instead of raising.

    Raises:
        ValueError: naming the file of the empty label map.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if not bool(torch.any(_as_tensor(d[key]) != 0)):
                raise ValueError(f"{_name(d[key], key)} is an empty label map: no foreground (nonzero) voxel.")
        return d


class CheckSpatialDimsd(_Check):
    """Raise unless data is channel-first with ``spatial_dims`` spatial axes, (C, X, Y, Z) for 3D, each at least
    ``min_size`` voxels long.

    Use after ``EnsureChannelFirstd``: a 2D slice then arrives as (C, X, Y), a single slice stored as a 3D volume as
    (C, X, Y, 1), a 4D series or an ITK-style vector image as (C, X, Y, Z, T).

    Args:
        keys: keys of the images to check.
        spatial_dims: number of spatial axes expected.
        min_size: fewest voxels along each spatial axis (2: a one-voxel-thick volume is a slice, not a volume).
        allow_missing_keys: skip keys absent from the data instead of raising.

    Raises:
        ValueError: naming the file and its shape.
    """

    def __init__(
        self, keys: KeysCollection, spatial_dims: int = 3, min_size: int = 2, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims
        self.min_size = min_size
        axes = "XYZ"[:spatial_dims] if spatial_dims <= 3 else [f"S{i}" for i in range(spatial_dims)]
        self._layout = f"({', '.join(['C', *axes])})"

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            shape = tuple(np.shape(d[key]))
            if len(shape) != self.spatial_dims + 1:
                raise ValueError(
                    f"{_name(d[key], key)} has shape {shape} ({len(shape) - 1} spatial axes after the channel); "
                    f"expected channel-first data with {self.spatial_dims} spatial axes, {self._layout}."
                )
            if min(shape[1:]) < self.min_size:
                raise ValueError(
                    f"{_name(d[key], key)} has shape {shape}: each spatial axis needs at least {self.min_size} "
                    "voxels (is it a single slice stored as a volume?)."
                )
        return d
