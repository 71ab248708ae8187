# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Between MONAI Deploy's in-memory images (an array plus a metadata dict) and MONAI MetaTensors.

MONAI Deploy passes images between operators as ``Image(array, metadata)``. Two layouts occur:

- from ``DICOMSeriesToVolumeOperator``: the array in (Z, Y, X) order with DICOM keys (``row_pixel_spacing``, ...)
  and the voxel-to-world matrix in ``nifti_affine_transform`` (RAS); MONAI Deploy's bundle operator swaps the
  first and last axes and uses that matrix, and so does :func:`image_to_metatensor`;
- from NIfTI loaders such as :class:`monai_mine.apps.deploy.operators.NiftiPairLoaderOperator`: the array in MONAI's
  (X, Y, Z) order with ``affine`` in the metadata.

Outputs go the other way with :func:`metatensor_to_image_parts`: float32 arrays, channel first, and the affine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

__all__ = ["image_to_metatensor", "metatensor_to_image_parts"]


def image_to_metatensor(array: Any, metadata: Mapping[str, Any] | None, name: str) -> MetaTensor:
    """A 3D MetaTensor (X, Y, Z) with its affine, as ``LoadImage`` would return it, from an image's parts.

    Args:
        array: the image array, (X, Y, Z), or (Z, Y, X) for a DICOM-derived image (see the module docstring).
        metadata: the image's metadata: ``affine`` (4x4), or the DICOM keys with ``nifti_affine_transform``.
            Without either, the affine is the identity (1 mm voxels at the origin).
        name: what the image is (e.g. the input port ``"moving_image"``), for messages and ``filename_or_obj``.

    Raises:
        ValueError: naming ``name`` when the array is not 3D or an affine is not a 4x4 matrix.
    """
    metadata = dict(metadata or {})
    data = np.asarray(array)
    if data.ndim != 3:
        raise ValueError(f"{name} must be a 3D image array, got shape {data.shape}.")
    if "row_pixel_spacing" in metadata:  # DICOM series converted by MONAI Deploy: (Z, Y, X), RAS affine separately
        data = np.swapaxes(data, 0, 2)
        affine = metadata.get("nifti_affine_transform")
    else:
        affine = metadata.get("affine")
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"the affine of {name} must be a 4x4 matrix, got shape {affine.shape}.")
    source = metadata.get("filename_or_obj") or name
    meta = {"original_channel_dim": "no_channel", "filename_or_obj": str(source)}
    return MetaTensor(torch.as_tensor(np.ascontiguousarray(data)), affine=torch.as_tensor(affine), meta=meta)


def metatensor_to_image_parts(tensor: MetaTensor) -> tuple[np.ndarray, dict[str, Any]]:
    """The float32 array (channel first, e.g. a DDF (3, X, Y, Z)) and metadata (``affine``, ``spacing``) of a
    result, to build a MONAI Deploy ``Image`` from."""
    affine = tensor.affine.detach().cpu().numpy().astype(np.float64)
    array = tensor.as_tensor().detach().cpu().numpy().astype(np.float32)
    return array, {"affine": affine, "spacing": np.linalg.norm(affine[:3, :3], axis=0)}
