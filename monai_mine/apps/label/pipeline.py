# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The steps of a MONAI Label infer request for registration, around a bundle's own preprocessing.

MONAI Label hands an infer task one image (``"image"``: here the moving image) and the request's parameters; the
network of a monai-mine bundle wants the pair as one tensor ``image`` (2, X, Y, Z). The request carries the fixed
image as ``fixed_image`` (see :func:`monai_mine.apps.label.resolve_fixed_image`), and optionally a label map of
the moving image as ``moving_label`` (warped too, e.g. an atlas segmentation carried onto the fixed image):

    pre:   PairFromRequestd  image -> moving_image, fixed_image checked
           the bundle's ``preprocessing`` (load, checks, RAS, intensity, resize to image_size)
           ConcatItemsd      [moving_image, fixed_image] -> image (2, X, Y, Z)
    infer: network(image[None])[0] -> pred, the DDF (3, X, Y, Z) in voxels
    post:  WarpMovingd       warped = moving(x + pred(x)) (bilinear), warped_label (nearest) when given
    write: write_registration_outputs: float32 NIfTI of warped and DDF (and the warped label) with the affine of
           the preprocessed fixed image

:class:`monai_mine.apps.label.infer.RegistrationInferTask` runs these steps inside MONAI Label's ``BundleInferTask``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ConcatItemsd, MapTransform

from monai_mine.flows import warp
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import FIXED_IMAGE, IMAGE_KEYS, MOVING_IMAGE, MOVING_LABEL

__all__ = [
    "OUTPUTS",
    "PairFromRequestd",
    "WarpMovingd",
    "registration_post_transforms",
    "registration_pre_transforms",
    "registration_result_json",
    "write_registration_outputs",
]

OUTPUTS = ("warped", "ddf", "warped_label")
"""What :func:`write_registration_outputs` writes (``warped_label`` only when the request had ``moving_label``)."""


class PairFromRequestd(MapTransform):
    """Name the request's image as the moving image and check that the fixed image is there.

    ``d[moving_key] = d[image_key]``; ``d[fixed_key]`` must be set (a file path or an already loaded image).

    Raises:
        ValueError: when ``fixed_key`` is missing or empty, naming the request parameter to pass.
    """

    def __init__(self, image_key: str = "image", moving_key: str = MOVING_IMAGE, fixed_key: str = FIXED_IMAGE) -> None:
        super().__init__([image_key])
        self.image_key, self.moving_key, self.fixed_key = image_key, moving_key, fixed_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if d.get(self.fixed_key) is None or (isinstance(d[self.fixed_key], str) and not d[self.fixed_key]):
            raise ValueError(
                f"registration request without {self.fixed_key!r}: pass the fixed image (datastore id or file path) "
                f"alongside the moving image {d.get(self.image_key)!r}."
            )
        d[self.moving_key] = d[self.image_key]
        return d


class WarpMovingd(MapTransform):
    """Warp the preprocessed moving image (and its label map) with the predicted DDF.

    ``d[output_key] = warp(d[moving_key], d[ddf_key])`` (bilinear, border padding) as float32, with the affine of
    ``d[reference_key]`` (the preprocessed fixed image); ``d[label_output_key]`` likewise with nearest-neighbour
    sampling when ``d[label_key]`` is present.

    Args:
        ddf_key: the DDF, (3, X, Y, Z), voxels.
        moving_key: the preprocessed moving image, (1, X, Y, Z).
        reference_key: the preprocessed fixed image whose affine the outputs get.
        output_key: where the warped image goes.
        label_key: an optional label map of the moving image, (1, X, Y, Z).
        label_output_key: where the warped label map goes.

    Raises:
        ValueError: when the DDF and the moving image are not on the same grid.
    """

    def __init__(
        self,
        ddf_key: str = "pred",
        moving_key: str = MOVING_IMAGE,
        reference_key: str = FIXED_IMAGE,
        output_key: str = "warped",
        label_key: str = MOVING_LABEL,
        label_output_key: str = "warped_label",
    ) -> None:
        super().__init__([ddf_key])
        self.ddf_key, self.moving_key, self.reference_key = ddf_key, moving_key, reference_key
        self.output_key, self.label_key, self.label_output_key = output_key, label_key, label_output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ddf = torch.as_tensor(d[self.ddf_key]).float()
        moving = torch.as_tensor(d[self.moving_key]).float()
        if ddf.ndim != 4 or ddf.shape[0] != 3 or ddf.shape[1:] != moving.shape[1:]:
            raise ValueError(
                f"{self.ddf_key!r} must be a DDF (3, X, Y, Z) on the grid of {self.moving_key!r} "
                f"{tuple(moving.shape)}, got {tuple(ddf.shape)}."
            )
        ddf = ddf[None].to(moving.device)
        affine = getattr(d[self.reference_key], "affine", None)
        d[self.ddf_key] = _with_affine(ddf[0], affine)
        d[self.output_key] = _with_affine(warp(moving[None], ddf)[0], affine)
        if d.get(self.label_key) is not None:
            label = torch.as_tensor(d[self.label_key]).round().to(torch.int32)
            d[self.label_output_key] = _with_affine(warp(label[None], ddf, mode="nearest")[0], affine)
        return d


def _with_affine(tensor: torch.Tensor, affine: torch.Tensor | None) -> MetaTensor:
    tensor = tensor.as_tensor() if isinstance(tensor, MetaTensor) else tensor
    return MetaTensor(tensor.detach().cpu(), affine=affine.detach().cpu().clone() if affine is not None else None)


def registration_pre_transforms(preprocessing: Sequence[Any], image_key: str = "image") -> list:
    """The infer pre-transforms around a bundle's ``preprocessing`` transforms (see the module docstring)."""
    return [
        PairFromRequestd(image_key=image_key),
        *preprocessing,
        ConcatItemsd(keys=list(IMAGE_KEYS), name=image_key),
    ]


def registration_post_transforms(ddf_key: str = "pred") -> list:
    """The infer post-transforms: warp the moving image (and label) with the DDF."""
    return [WarpMovingd(ddf_key=ddf_key)]


def write_registration_outputs(
    data: Mapping[Hashable, Any], output_dir: str | os.PathLike, ddf_key: str = "pred"
) -> dict[str, Path]:
    """Write ``warped.nii.gz``, ``ddf.nii.gz`` ((X, Y, Z, 3), voxels) and, when present, ``warped_label.nii.gz``
    (int32) into ``output_dir``, float32, with the affine of the preprocessed fixed image, each atomically.

    Returns:
        ``{"warped": path, "ddf": path, "warped_label": path}`` for the files written.
    """
    folder = Path(output_dir)
    affine = getattr(data[FIXED_IMAGE], "affine", None)
    affine = np.eye(4) if affine is None else torch.as_tensor(affine).cpu().numpy().astype(np.float64)
    written = {}
    for name, key in (("warped", "warped"), ("ddf", ddf_key), ("warped_label", "warped_label")):
        if data.get(key) is None:
            continue
        array = torch.as_tensor(data[key]).detach().cpu()
        array = array.to(torch.int32) if name == "warped_label" else array.float()
        written[name] = save_nifti(array, folder / f"{name}.nii.gz", affine)
    return written


def registration_result_json(data: Mapping[Hashable, Any], written: Mapping[str, Path], ddf_key: str = "pred") -> dict:
    """The JSON part of an infer result: the files written, the DDF's shape and units, and the working grid.

    ``ddf_shape`` is the shape of the DDF as saved, (X, Y, Z, 3) (read from ``written["ddf"]``, or that of
    ``data[ddf_key]`` with its channels last when no DDF file was written).
    """
    affine = getattr(data[FIXED_IMAGE], "affine", None)
    if written.get("ddf") is not None:
        ddf_shape = list(nib.load(os.fspath(written["ddf"])).shape)
    else:
        shape = list(torch.as_tensor(data[ddf_key]).shape)
        ddf_shape = shape[1:] + shape[:1]
    return {
        **{name: str(path) for name, path in written.items()},
        "ddf_shape": [int(size) for size in ddf_shape],
        "ddf_units": "voxels",
        "convention": "warped(x) = moving(x + ddf(x)); channel i displaces array axis i",
        "affine": [] if affine is None else torch.as_tensor(affine).cpu().numpy().round(6).tolist(),
    }
