# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Displacement fields in Learn2Reg's submission layout, from the DDFs the bundles write.

The layout the Learn2Reg evaluation reads (2022-2024, ``evaluation/evaluation.py`` and ``evaluation/utils.py`` of
github.com/MDL-UzL/L2R):

- one file per evaluation pair, ``disp_FFFF_MMMM.nii.gz`` (:func:`monai_mine.data.learn2reg.displacement_name`);
- array shape ``(X, Y, Z, 3)``, the fixed image's shape (the task's ``tensorImageShape``); stored as float32;
- **units: voxels**, along the axes of the arrays as stored on disk (nibabel's ``get_fdata()``, no reorientation):
  channel ``i`` displaces array axis ``i``;
- direction: fixed to moving. For a fixed voxel ``x`` the evaluation samples the moving label map at
  ``x + disp(x)`` (``scipy.ndimage.map_coordinates``), and computes the TRE of keypoints as
  ``|| (x_f + disp(x_f) - x_m) * moving spacing ||``.

That is monai-mine's own DDF convention (``warped(x) = moving(x + ddf(x))``) on the fixed image's grid. A bundle's
inference writes the DDF on its working grid (``image_size``^3, RAS orientation) with that grid's affine; the export
resamples it onto the fixed image's grid through world coordinates
(:func:`monai_mine.apps.registration.geometry.ddf_to_grid`), and, should the moving image lie on another grid, expresses
the target points in the moving image's voxels. The fixed image's affine is stored with the field (the evaluation
ignores it; viewers use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from monai_mine.apps.registration.geometry import Grid, ddf_to_grid
from monai_mine.apps.registration.io import load_ddf
from monai_mine.data.learn2reg import Learn2RegTask, displacement_name, read_learn2reg_task
from monai_mine.io.atomic import atomic_folder
from monai_mine.io.nifti import save_nifti

__all__ = ["DEFAULT_PATTERN", "export_displacement", "export_learn2reg", "image_grid"]

DEFAULT_PATTERN = "{moving}_to_{fixed}_ddf.nii.gz"
"""DDF file names as the bundles' inference writes them (``{fixed}``/``{moving}``: file names without ``.nii.gz``)."""

SPLITS = ("validation", "test", "training")


def split_pairs(dataset, split: str) -> tuple[Learn2RegTask, list[tuple[str, str]]]:
    """The Learn2Reg task of ``dataset`` and the (fixed, moving) pairs of its ``split``.

    Raises:
        ValueError: an unknown split, a split without pairs, or pairs whose displacement files would have the same
            name (the challenge's naming keeps only case numbers), naming the pairs that collide.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    task = read_learn2reg_task(dataset)
    pairs = task.pairs[split]
    if not pairs:
        raise ValueError(f"Learn2Reg dataset {task.path} lists no {split} pairs.")
    by_name: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        by_name.setdefault(displacement_name(*pair), []).append(pair)
    collisions = {name: named for name, named in by_name.items() if len(named) > 1}
    if collisions:
        shown = "; ".join(f"{name}.nii.gz from {named}" for name, named in collisions.items())
        raise ValueError(
            f"Learn2Reg dataset {task.path}: {split} pairs would write the same displacement file ({shown}); each "
            "pair needs its own fixed and moving case numbers."
        )
    return task, pairs


def image_grid(path: str | os.PathLike, role: str) -> Grid:
    """The voxel grid (shape and affine) of a NIfTI file, read from its header only.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file when it cannot be read or has fewer than 3 axes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{role} {path} does not exist.")
    try:
        image = nib.load(path)
    except (ImageFileError, HeaderDataError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"cannot read {role} {path} as a NIfTI image: {error}") from error
    if len(image.shape) < 3:
        raise ValueError(f"{role} {path} has shape {image.shape}; expected a 3D image (X, Y, Z).")
    return Grid(image.shape[:3], image.affine)


def _stem(path: str) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem


def _in_moving_voxels(disp: torch.Tensor, fixed: Grid, moving: Grid) -> torch.Tensor:
    """``A_M^-1 A_F (x + disp(x)) - x``: a fixed-grid DDF whose targets are given in the moving image's voxels."""
    index_map = torch.as_tensor(np.linalg.inv(moving.affine) @ fixed.affine, dtype=torch.float64)
    axes = [torch.arange(n, dtype=torch.float64) for n in fixed.shape]
    voxels = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, X, Y, Z)
    targets = torch.einsum("ij,j...->i...", index_map[:3, :3], voxels + disp.double())
    return (targets + index_map[:3, 3, None, None, None] - voxels).float()


def export_displacement(
    ddf: str | os.PathLike,
    fixed_image: str | os.PathLike,
    out: str | os.PathLike,
    moving_image: str | os.PathLike | None = None,
    expected_shape: tuple[int, int, int] | None = None,
) -> Path:
    """Write one DDF in Learn2Reg's layout on the fixed image's grid (see the module docstring), atomically.

    Args:
        ddf: a DDF NIfTI, (X, Y, Z, 3) or (X, Y, Z, 1, 3) in voxels of its own grid (its affine), as the bundles'
            inference or ``monai-mine register`` write it.
        fixed_image: the pair's fixed image, whose grid the field is written on.
        out: the output file, e.g. ``submission/disp_0101_0101.nii.gz``.
        moving_image: the pair's moving image; only needed when its grid differs from the fixed image's.
        expected_shape: the task's ``tensorImageShape``; the fixed image must have it.

    Returns:
        the path written.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: naming the file that cannot be read, is not a DDF, or whose shape is not ``expected_shape``.
    """
    field, ddf_volume = load_ddf(ddf)
    fixed = image_grid(fixed_image, "fixed image")
    if expected_shape is not None and tuple(expected_shape) != fixed.shape:
        raise ValueError(
            f"fixed image {fixed_image} has shape {fixed.shape}, but the task's tensorImageShape is "
            f"{tuple(expected_shape)}: Learn2Reg expects displacement fields of shape {(*expected_shape, 3)}."
        )
    disp = ddf_to_grid(field, ddf_volume.grid, fixed)
    if moving_image is not None:
        moving = image_grid(moving_image, "moving image")
        if not moving.same_as(fixed):
            disp = _in_moving_voxels(disp, fixed, moving)
    return save_nifti(disp, out, fixed.affine)


def export_learn2reg(
    dataset: str | os.PathLike,
    ddf_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str = "validation",
    pattern: str = DEFAULT_PATTERN,
    overwrite: bool = False,
) -> list[Path]:
    """Export the DDFs of one split's pairs as ``disp_*.nii.gz`` files in Learn2Reg's submission layout.

    Every expected DDF is checked first, so that nothing is written for an incomplete set, and the submission
    folder is written as a whole (under a hidden name beside it, renamed at the end): it never mixes two exports.

    Args:
        dataset: the task's ``*_dataset.json`` (or its folder).
        ddf_dir: the folder of DDFs, e.g. a bundle's ``eval/inference`` after its inference on this split.
        out_dir: the submission folder; it must not exist or be empty, unless ``overwrite``.
        split: ``"validation"`` (``registration_val``), ``"test"`` (``registration_test``) or ``"training"``.
        pattern: the DDF file name of a pair; ``{fixed}`` and ``{moving}`` are the image file names without
            ``.nii.gz``.
        overwrite: replace a submission folder of an earlier export (one holding only ``disp_*`` files) as a whole.

    Returns:
        the files written, in the order of the split's pairs.

    Raises:
        ValueError: an unknown split or a split without pairs.
        FileNotFoundError: naming every missing DDF.
        OSError: an ``out_dir`` with files, without ``overwrite`` or holding other files than displacement files.
    """
    task, pairs = split_pairs(dataset, split)
    sources = [Path(ddf_dir) / pattern.format(fixed=_stem(fixed), moving=_stem(moving)) for fixed, moving in pairs]
    missing = [str(path) for path in sources if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(pairs)} DDF file(s) for the {split} pairs of {task.path} are missing "
            f"(file names from pattern {pattern!r}): {missing}."
        )
    out_dir = Path(out_dir)
    names = [f"{displacement_name(fixed, moving)}.nii.gz" for fixed, moving in pairs]
    with atomic_folder(out_dir, overwrite, lambda name: name.lstrip(".").startswith("disp_")) as staging:
        for source, name, (fixed, moving) in zip(sources, names, pairs):
            export_displacement(source, fixed, staging / name, moving, task.shape)
    return [out_dir / name for name in names]
