# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""NIfTI output written atomically (a reader never sees a half-written file), gzip-compressed by Intel's ISA-L.

``.nii.gz`` files are compressed by ISA-L (the ``isal`` package) at its level 1: the same size as nibabel's own
gzip level 1 in about a fifth of the time (a 128^3 DDF, 25 MB: 0.25 s instead of 1.1 s on a 2-core CPU), which
made writing the largest stage of ``monai-mine register`` after the imports (``benchmarks/results/speed.md``). The
files are ordinary gzip streams, read by any NIfTI reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from isal import igzip
from nibabel.fileholders import FileHolder

from monai_mine.io.atomic import atomic_output

__all__ = ["GZIP_LEVEL", "save_nifti", "write_nifti"]

GZIP_LEVEL = 1
"""ISA-L's compression level (0-3) for ``.nii.gz`` outputs."""


def write_nifti(image: nib.Nifti1Image, path: str | os.PathLike) -> None:
    """Write a NIfTI image to ``path`` as it is named (not atomically: see :func:`save_nifti`), ``.nii.gz`` through
    ISA-L's gzip (:data:`GZIP_LEVEL`), streamed as nibabel writes it (no second copy of the data in memory)."""
    if not os.fspath(path).endswith(".gz"):
        nib.save(image, path)
        return
    with igzip.open(path, "wb", compresslevel=GZIP_LEVEL) as stream:
        image.to_file_map({"image": FileHolder(fileobj=stream)})


def save_nifti(data: torch.Tensor | np.ndarray, path: str | os.PathLike, affine: np.ndarray | None = None) -> Path:
    """Write a (X, Y, Z) or channel-first (C, X, Y, Z) array as NIfTI, atomically.

    Channels are stored last, as NIfTI vector images are (X, Y, Z, C); 64-bit integers are stored as 32-bit.
    The file appears only once complete: it is written to a temporary file in the same folder and renamed.

    Args:
        data: the array; a batch dimension of size 1 is dropped.
        path: the ``.nii`` or ``.nii.gz`` file to write.
        affine: 4x4 voxel-to-world matrix; identity (1 mm voxels) when ``None``.

    Returns:
        the path written.
    """
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.ndim == 5 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 4:
        array = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    if array.ndim not in (3, 4):
        raise ValueError(f"data for {path} must be (X, Y, Z) or (C, X, Y, Z), got shape {array.shape}.")
    if array.dtype == np.int64:  # NIfTI readers expect at most 32-bit integers (label maps)
        array = array.astype(np.int32)
    path = Path(path)
    image = nib.Nifti1Image(array, np.eye(4) if affine is None else affine)
    with atomic_output(path) as temporary:
        write_nifti(image, temporary)
    return path
