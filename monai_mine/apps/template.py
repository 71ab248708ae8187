# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The ICBM152 2009 brain template from nilearn's package data, resampled to a cube around the brain.

nilearn ships the skull-stripped ICBM152 2009 symmetric T1 template and its grey- and white-matter probability
maps (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``, 1 mm, 197 x 233 x 189,
RAS, values 0-255), but no brain mask or CSF map. They are derived here:

- **brain mask**: ``T1 > 0.2 * max(T1)`` (nilearn's own ``load_mni152_brain_mask`` rule) united with
  ``GM + WM > 0.5``, closed (2 iterations, 6-connected), holes filled (ventricles) and reduced to its largest
  connected component, at 1 mm;
- **tissue probabilities** ``p_gm = GM / 255``, ``p_wm = WM / 255`` and ``p_csf = clip(1 - p_gm - p_wm, 0, 1)``
  inside the mask (the template is skull-stripped, so what is neither GM nor WM inside the brain is CSF);
- **labels** on the output grid: 0 outside the mask, inside it ``1 + argmax(p_csf, p_gm, p_wm)`` (1 CSF, 2 GM,
  3 WM).

The output grid is ``size``^3 voxels of ``field_of_view_mm / size`` mm (128^3 at 1.5 mm by default) centred on the
centre of the brain mask's bounding box; images are resampled trilinearly, the mask at 0.5 of its trilinear
interpolation. The T2-like image used by the multimodal track is rendered from the tissue probabilities with CSF
bright, GM mid and WM dark (:data:`T2_LIKE_INTENSITIES`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = [
    "LABEL_NAMES",
    "T2_LIKE_INTENSITIES",
    "BrainTemplate",
    "build_template",
    "icbm152_files",
]

LABEL_NAMES = {1: "csf", 2: "gm", 3: "wm"}
"""Tissue labels of :attr:`BrainTemplate.labels` (0 is background)."""

T2_LIKE_INTENSITIES = {"csf": 1.0, "gm": 0.55, "wm": 0.25}
"""Intensity of each tissue in the T2-like rendering (background 0)."""

_MASK_THRESHOLD = 0.2  # fraction of max(T1), as nilearn's load_mni152_brain_mask


@dataclass
class BrainTemplate:
    """The template on the benchmark grid; arrays are (X, Y, Z) in RAS voxel order.

    Attributes:
        t1: float32 T1 intensities in [0, 1].
        t2_like: float32 T2-like intensities in [0, 1] (CSF bright, GM mid, WM dark).
        labels: int64 tissue labels, 0 background, 1 CSF, 2 GM, 3 WM.
        mask: bool brain mask.
        spacing: voxel size in mm, 3 floats.
        affine: 4x4 voxel-to-world (RAS, mm) matrix of the grid.
    """

    t1: np.ndarray
    t2_like: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def icbm152_files() -> dict[str, Path]:
    """Paths of the ICBM152 2009 T1, GM and WM files inside the installed nilearn package.

    Raises:
        ImportError: nilearn is not installed (``pip install "monai-mine[benchmark]"``).
        FileNotFoundError: a file is missing from the installed nilearn (its path is named).
    """
    try:
        import nilearn
    except ImportError as error:
        raise ImportError(
            'the benchmark needs nilearn for the ICBM152 template: pip install "monai-mine[benchmark]"'
        ) from error
    folder = Path(os.path.dirname(nilearn.__file__)) / "datasets" / "data"
    files = {name: folder / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz" for name in ("t1", "gm", "wm")}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"ICBM152 template file {path} is missing from nilearn {nilearn.__version__}.")
    return files


def _brain_mask(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Brain mask at the source resolution (see the module docstring)."""
    mask = (t1 > _MASK_THRESHOLD * t1.max()) | (gm + wm > 0.5)
    mask = ndimage.binary_closing(mask, iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
        mask = components == 1 + int(np.argmax(sizes))
    return mask


def build_template(size: int = 128, field_of_view_mm: float = 192.0) -> BrainTemplate:
    """The ICBM152 template resampled to ``size``^3 voxels covering ``field_of_view_mm`` around the brain.

    Args:
        size: voxels per axis (128 for the benchmark; 48 in tests).
        field_of_view_mm: edge of the cubic field of view in mm; the spacing is ``field_of_view_mm / size``
            (1.5 mm at the defaults). 192 mm holds the whole brain (its extent is 145 x 181 x 155 mm).

    Returns:
        the :class:`BrainTemplate`; deterministic (no randomness).

    Raises:
        ValueError: ``size`` below 8 or a non-positive field of view.
    """
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer of at least 8 voxels, got {size!r}.")
    if field_of_view_mm <= 0:
        raise ValueError(f"field_of_view_mm must be positive, got {field_of_view_mm!r}.")
    size = int(size)
    files = icbm152_files()
    images = {name: nib.load(path) for name, path in files.items()}
    source_affine = images["t1"].affine
    t1, gm, wm = (np.asarray(images[name].get_fdata(), dtype=np.float32) / 255.0 for name in ("t1", "gm", "wm"))
    mask = _brain_mask(t1, gm, wm)

    # output grid: world = centre + (index - (size - 1) / 2) * spacing, axes aligned with the (RAS) source grid
    spacing = float(field_of_view_mm) / size
    corners = np.argwhere(mask)
    centre_voxel = (corners.min(axis=0) + corners.max(axis=0)) / 2.0
    centre_world = source_affine[:3, :3] @ centre_voxel + source_affine[:3, 3]
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre_world - spacing * (size - 1) / 2.0
    to_source = np.linalg.inv(source_affine) @ affine
    index = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij")).reshape(3, -1)
    coordinates = to_source[:3, :3] @ index + to_source[:3, 3:4]

    def resample(volume: np.ndarray) -> np.ndarray:
        values = ndimage.map_coordinates(volume, coordinates, order=1, mode="constant", cval=0.0)
        return values.reshape(size, size, size).astype(np.float32)

    t1_out = np.clip(resample(t1), 0.0, 1.0)
    mask_out = resample(mask.astype(np.float32)) > 0.5
    p_gm = np.clip(resample(gm), 0.0, 1.0)
    p_wm = np.clip(resample(wm), 0.0, 1.0)
    p_csf = np.clip(1.0 - p_gm - p_wm, 0.0, 1.0) * mask_out
    labels = np.where(mask_out, 1 + np.argmax(np.stack([p_csf, p_gm, p_wm]), axis=0), 0).astype(np.int64)
    t2_like = (
        T2_LIKE_INTENSITIES["csf"] * p_csf + T2_LIKE_INTENSITIES["gm"] * p_gm + T2_LIKE_INTENSITIES["wm"] * p_wm
    ) * mask_out
    return BrainTemplate(
        t1=t1_out,
        t2_like=np.clip(t2_like, 0.0, 1.0).astype(np.float32),
        labels=labels,
        mask=mask_out,
        spacing=(spacing, spacing, spacing),
        affine=affine,
    )
