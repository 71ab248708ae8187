# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Classical baselines, ANTs (``antspyx``) and Elastix (``itk-elastix``), returning a dense DDF in voxels.

Both take numpy (X, Y, Z) images on one grid and return the DDF ``u`` (3, X, Y, Z), float32, in voxels, with the
project's convention ``warped(x) = moving(x + u(x))`` (``docs/design.md`` section 2). Images are handed to ITK with
the identity direction, zero origin and the given spacing, and with ITK's index axes equal to the array's axes, so
the physical (ITK) point of voxel ``i`` is ``spacing * i`` and no LPS/RAS flip is involved. Both toolkits return the
map from fixed to moving physical points, ``T(p) = p + d(p)``: the DDF is ``d / spacing`` per axis.

Threads: ITK's global default, which is the number of CPU cores (:func:`itk_threads`), in both toolkits.
Settings (REFERENCE.md, appendix E of the VTN paper):

- :func:`ants_syn` ``preset="defaults"``: ``ants.registration(type_of_transform="SyN")`` as antspyx runs it
  (affine with Mattes MI, then SyN with Mattes MI, 40 x 20 x 0 iterations);
- :func:`ants_syn` ``preset="vtn_paper"``: the VTN paper's command, ``Rigid[0.1]`` and ``Affine[0.1]`` with
  ``MI[32 bins, Regular 0.2 / 0.1]``, ``2000x2000x2000`` at shrink ``4x2x1``, smoothing ``2x1x0``, then
  ``SyN[0.15,3,0]`` with ``CC`` radius 4, ``100x100x100x50`` at shrink ``6x4x2x1``, smoothing ``3x2x1x0``
  (about 15 minutes per 128^3 pair on 2 cores);
- :func:`elastix_affine_bspline`: elastix's default ``"affine"`` and ``"bspline"`` parameter maps (the paper's
  ``-p Affine -p BSpline``); ``max_iterations`` overrides both maps' ``MaximumNumberOfIterations`` (the
  default maps use 256 per resolution; the paper's ``BSpline_1000`` used 1000).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np

__all__ = ["ANTS_PRESETS", "ants_syn", "elastix_affine_bspline", "itk_threads", "vtn_paper_arguments"]

ANTS_PRESETS = ("defaults", "vtn_paper")


def _check_inputs(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float]) -> tuple[float, float, float]:
    fixed, moving = np.asarray(fixed), np.asarray(moving)
    if fixed.ndim != 3:
        raise ValueError(f"fixed must be a 3D (X, Y, Z) array, got shape {fixed.shape}.")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving must have the fixed image's shape {fixed.shape}, got {moving.shape}.")
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or min(values) <= 0:
        raise ValueError(f"spacing must be 3 positive voxel sizes in mm, got {tuple(spacing)}.")
    for name, array in (("fixed", fixed), ("moving", moving)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values.")
    return values  # type: ignore[return-value]


def itk_threads() -> int:
    """Threads ITK (and so ANTs and Elastix) uses by default: the number of CPU cores unless the environment
    variable ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` says otherwise."""
    import itk

    return int(itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads())


def vtn_paper_arguments(fixed: str, moving: str, prefix: str) -> list[str]:
    """``antsRegistration`` arguments of the VTN paper's baseline (REFERENCE.md, appendix E).

    Args:
        fixed: the fixed image as antsRegistration reads it (a file or an antspyx pointer string).
        moving: the moving image, likewise.
        prefix: output prefix; the transforms are written to ``<prefix>0GenericAffine.mat`` (rigid and affine
            collapsed) and ``<prefix>1Warp.nii.gz``.
    """
    return [
        "--dimensionality", "3",
        "--float", "1",
        "--output", prefix,
        "--interpolation", "Linear",
        "--collapse-output-transforms", "1",
        "--transform", "Rigid[0.1]",
        "--metric", f"MI[{fixed},{moving},1,32,Regular,0.2]",
        "--convergence", "[2000x2000x2000,1e-6,10]",
        "--shrink-factors", "4x2x1",
        "--smoothing-sigmas", "2x1x0vox",
        "--transform", "Affine[0.1]",
        "--metric", f"MI[{fixed},{moving},1,32,Regular,0.1]",
        "--convergence", "[2000x2000x2000,1e-6,10]",
        "--shrink-factors", "4x2x1",
        "--smoothing-sigmas", "2x1x0vox",
        "--transform", "SyN[0.15,3,0]",
        "--metric", f"CC[{fixed},{moving},1,4]",
        "--convergence", "[100x100x100x50,1e-6,10]",
        "--shrink-factors", "6x4x2x1",
        "--smoothing-sigmas", "3x2x1x0vox",
    ]  # fmt: skip


def ants_syn(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float], preset: str = "defaults") -> np.ndarray:
    """Register ``moving`` to ``fixed`` with ANTs SyN and return the dense DDF.

    Args:
        fixed: (X, Y, Z) image.
        moving: (X, Y, Z) image on the same grid.
        spacing: voxel size in mm per axis.
        preset: ``"defaults"`` (antspyx ``SyN``, seconds) or ``"vtn_paper"`` (the VTN paper's rigid + affine +
            SyN CC command, about 15 minutes per 128^3 pair on 2 cores).

    Returns:
        float32 array (3, X, Y, Z), displacement in voxels: ``warped(x) = moving(x + ddf(x))``.

    Raises:
        ImportError: antspyx is not installed.
        ValueError: on arrays that are not 3D, of different shapes, non-finite, a bad spacing or an unknown preset.
        RuntimeError: when antsRegistration fails.
    """
    spacing = _check_inputs(fixed, moving, spacing)
    if preset not in ANTS_PRESETS:
        raise ValueError(f"preset must be one of {ANTS_PRESETS}, got {preset!r}.")
    try:
        import ants
        from ants.internal import get_pointer_string
    except ImportError as error:
        raise ImportError('ANTs baselines need antspyx: pip install "monai-mine[benchmark]"') from error

    fixed_image = ants.from_numpy(np.asarray(fixed, dtype=np.float32), spacing=spacing)
    moving_image = ants.from_numpy(np.asarray(moving, dtype=np.float32), spacing=spacing)
    with tempfile.TemporaryDirectory(prefix="monai_mine_ants_") as folder:
        prefix = os.path.join(folder, "reg_")
        if preset == "defaults":
            result = ants.registration(fixed_image, moving_image, type_of_transform="SyN", outprefix=prefix)
            transforms = result["fwdtransforms"]
        else:
            arguments = vtn_paper_arguments(get_pointer_string(fixed_image), get_pointer_string(moving_image), prefix)
            ants.registration(arguments, None)  # raw antsRegistration arguments; RuntimeError on failure
            transforms = [f"{prefix}1Warp.nii.gz", f"{prefix}0GenericAffine.mat"]
        composite = ants.apply_transforms(fixed_image, moving_image, transforms, compose=os.path.join(folder, "all_"))
        field = ants.image_read(composite).numpy()  # (X, Y, Z, 3), mm
    return (np.moveaxis(field, -1, 0) / np.asarray(spacing)[:, None, None, None]).astype(np.float32)


def elastix_affine_bspline(
    fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float], max_iterations: int | None = None
) -> np.ndarray:
    """Register ``moving`` to ``fixed`` with elastix's default affine then B-spline maps; return the dense DDF.

    Args:
        fixed: (X, Y, Z) image.
        moving: (X, Y, Z) image on the same grid.
        spacing: voxel size in mm per axis.
        max_iterations: iterations per resolution of both maps; ``None`` keeps the default maps' value (256).

    Returns:
        float32 array (3, X, Y, Z), displacement in voxels: ``warped(x) = moving(x + ddf(x))``.

    Raises:
        ImportError: itk-elastix is not installed.
        ValueError: on arrays that are not 3D, of different shapes, non-finite, a bad spacing or
            ``max_iterations`` below 1.
    """
    spacing = _check_inputs(fixed, moving, spacing)
    if max_iterations is not None and int(max_iterations) < 1:
        raise ValueError(f"max_iterations must be a positive integer or None, got {max_iterations!r}.")
    import itk

    if not hasattr(itk, "elastix_registration_method"):
        raise ImportError('Elastix baselines need itk-elastix: pip install "monai-mine[benchmark]"')

    def to_itk(array: np.ndarray):
        # ITK's array view is (Z, Y, X): transpose so that ITK index axis i is the array's axis i
        image = itk.image_from_array(np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)))
        image.SetSpacing(spacing)
        return image

    fixed_image, moving_image = to_itk(fixed), to_itk(moving)
    parameters = itk.ParameterObject.New()
    for name in ("affine", "bspline"):
        parameter_map = parameters.GetDefaultParameterMap(name)
        if max_iterations is not None:
            parameter_map["MaximumNumberOfIterations"] = [str(int(max_iterations))]
        parameters.AddParameterMap(parameter_map)
    with tempfile.TemporaryDirectory(prefix="monai_mine_elastix_") as folder:
        _, transform = itk.elastix_registration_method(
            fixed_image, moving_image, parameter_object=parameters, output_directory=folder, log_to_console=False
        )
        # transformix writes deformationField.nii into its output directory (else the working directory)
        deformation = itk.transformix_deformation_field(moving_image, transform, output_directory=folder)
        field = itk.array_from_image(deformation)  # (Z, Y, X, 3), mm
    field = np.asarray(field, dtype=np.float64).transpose(3, 2, 1, 0)
    return (field / np.asarray(spacing)[:, None, None, None]).astype(np.float32)
