# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Reading volumes and DDFs with checks that name the file, and writing results atomically.

Volumes are read from NIfTI (and the other formats nibabel reads, e.g. MGH/MGZ), MetaImage (``.mha``/``.mhd``),
NRRD and DICOM series folders (through ITK). Images are written as NIfTI, MGZ, MetaImage or NRRD by the file name's
ending (:func:`output_suffix` picks the fixed image's own format; DICOM series become NIfTI); DDFs always as NIfTI.

A DDF file is a NIfTI vector image ``(X, Y, Z, 1, 3)`` with intent ``VECTOR`` (the layout ITK, ANTs and nibabel
read as a displacement field), in **voxels of its own grid**: ``warped(x) = moving(x + ddf(x))`` with the moving
image resampled onto that grid (see :mod:`monai_mine.apps.registration.geometry`). ``(X, Y, Z, 3)`` files, as the
bundles' inference writes them, are read too.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from monai_mine.apps.registration.dicom import dicom_series
from monai_mine.apps.registration.geometry import Grid
from monai_mine.apps.registration.resources import available_memory, gib
from monai_mine.io import nifti
from monai_mine.io.atomic import atomic_output
from monai_mine.io.formats import output_suffix

__all__ = [
    "DDF_DESCRIPTION",
    "ITK_SUFFIXES",
    "Volume",
    "load_ddf",
    "load_volume",
    "save_ddf",
    "save_volume",
]

DDF_DESCRIPTION = "monai-mine DDF in voxels: warped(x) = moving(x + ddf(x))"
"""Stored in the ``descrip`` field of every DDF file written here."""


@dataclass(eq=False)
class Volume:
    """A 3D image or label map with its voxel-to-world affine.

    Attributes:
        data: array in shape (X, Y, Z): float32 for images, an integer dtype for label maps.
        affine: 4x4 voxel-to-world matrix (mm).
        path: the file it was read from, for messages (``None`` for an array built in memory).
        header: the NIfTI header it was read with, whose qform/sform codes outputs on its grid copy.
        grid: its :class:`~monai_mine.apps.registration.geometry.Grid` (shape and affine), checked on creation.
    """

    data: np.ndarray
    affine: np.ndarray
    path: str | None = None
    header: nib.Nifti1Header | None = None
    grid: Grid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data = np.ascontiguousarray(self.data)  # C order, positive strides: shared with torch
        if self.data.ndim != 3:
            raise ValueError(f"{self.name} must be a 3D volume (X, Y, Z), got shape {self.data.shape}.")
        if min(self.data.shape) < 2:
            raise ValueError(
                f"{self.name} has shape {self.data.shape}: a 3D volume needs at least 2 voxels along each axis "
                "(is it a 2D slice?)."
            )
        try:
            self.grid = Grid(self.data.shape, self.affine)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None
        self.affine = self.grid.affine

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "volume"

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The data as a channel-first Tensor in shape (1, X, Y, Z)."""
        return torch.as_tensor(self.data, device=device)[None]


ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
"""File name endings read through ITK (MONAI's ``ITKReader``) rather than nibabel; a folder is read as a DICOM
series. NIfTI, MGH/MGZ and the other formats nibabel knows are read by nibabel."""


def _read_itk(path: Path, role: str) -> nib.Nifti1Image:
    """A MetaImage/NRRD file or a DICOM series folder as an in-memory NIfTI image (RAS world affine)."""
    from monai.data import ITKReader

    kind = "a DICOM series folder" if path.is_dir() else "an ITK image"
    series = dicom_series(path, role) if path.is_dir() else ""
    reader = ITKReader(series_name=series, affine_lps_to_ras=True)
    try:
        data, meta = reader.get_data(reader.read(os.fspath(path)))
    except (RuntimeError, OSError, ValueError) as error:  # ITK reports unreadable input as RuntimeError
        reason = " ".join(str(error).split())
        raise ValueError(f"cannot read {role} {path} as {kind}: {reason}") from error
    return nib.Nifti1Image(np.asarray(data), np.asarray(meta["affine"], dtype=np.float64))


def _read(path: str | os.PathLike, role: str) -> tuple[nib.spatialimages.SpatialImage, Path]:
    """Open an image file (NIfTI and what nibabel reads; MetaImage and NRRD through ITK) or a DICOM series folder."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f"{role} {path} is a symbolic link to nothing (a loop, or its target is missing).")
    if not path.exists():
        raise FileNotFoundError(f"{role} {path} does not exist.")
    if path.is_dir() or path.name.lower().endswith(ITK_SUFFIXES):
        return _read_itk(path, role), path
    try:
        image = nib.load(path)
    except (ImageFileError, HeaderDataError, OSError, EOFError, ValueError) as error:
        raise ValueError(
            f"cannot read {role} {path} as a NIfTI image: {error} (formats read: NIfTI, MGH/MGZ, "
            f"{', '.join(ITK_SUFFIXES)} and DICOM series folders)"
        ) from error
    return image, path


GZIP_CHUNK = 2**24
"""Bytes decompressed at a time when a gzip file's checksum is verified."""


def _check_gzip(path: Path, role: str) -> None:
    """Read a gzip-compressed file (``.gz``, ``.mgz``) to its end, so that its CRC is checked: nibabel reads only
    the bytes it needs and never reaches the checksum, so a damaged file would otherwise be read as if intact."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(GZIP_CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"cannot read {role} {path}: its gzip data is damaged ({error}); expected an intact file (copy or "
            "download it again)."
        ) from error


def _check_readable(image: nib.spatialimages.SpatialImage, path: Path, role: str, label: bool) -> None:
    """Refuse voxels that are not one real number each, and data larger than the memory left to read it into."""
    dtype = image.get_data_dtype()
    if dtype.kind == "c":  # nibabel would drop the imaginary part without a word
        raise ValueError(f"{role} {path} holds complex voxels; expected real values (take the magnitude first).")
    if dtype.fields is not None or dtype.kind == "V":
        raise ValueError(
            f"{role} {path} holds voxels of type {dtype} (e.g. RGB colour); expected one real value per voxel "
            "(convert it to greyscale first)."
        )
    needed = int(np.prod(image.shape)) * (dtype.itemsize + (0 if label else 4))
    available = available_memory()
    if needed > available:
        raise MemoryError(
            f"reading {role} {path} needs {gib(needed)} for its {'x'.join(map(str, image.shape))} voxels, and this "
            f"machine has {gib(available)} available: is its header's shape right (a damaged or malicious file)?"
        )


def _array(image: nib.spatialimages.SpatialImage, path: Path, role: str, label: bool) -> np.ndarray:
    _check_readable(image, path, role, label)
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, named by _check_finite
            data = np.asanyarray(image.dataobj) if label else image.get_fdata(dtype=np.float32)
    except (HeaderDataError, OSError, EOFError, ValueError) as error:  # bad scaling, truncated data
        raise ValueError(f"cannot read the voxels of {role} {path} (truncated or corrupt file?): {error}") from error
    except MemoryError as error:
        raise MemoryError(
            f"out of memory reading the voxels of {role} {path} ({'x'.join(map(str, image.shape))} voxels): free "
            "memory, or resample it to coarser voxels first."
        ) from error
    if path.is_file() and path.name.lower().endswith((".gz", ".mgz")):
        _check_gzip(path, role)
    return np.asarray(data)


def _check_finite(data: np.ndarray, image: nib.spatialimages.SpatialImage, path: Path, role: str) -> None:
    """Refuse NaN or infinite voxels, telling them apart from finite values beyond float32's range."""
    bad = ~np.isfinite(data)
    if not bad.any():
        return
    stored = np.asanyarray(image.dataobj)
    if np.isfinite(stored).all():
        raise ValueError(
            f"{role} {path} holds values up to {float(np.abs(stored).max()):.3g}, beyond float32's range "
            f"(+-{float(np.finfo(np.float32).max):.3g}); expected image intensities (rescale it first)."
        )
    raise ValueError(f"{role} {path} has {int(bad.sum())} NaN or infinite voxel(s) out of {data.size}.")


INT32 = np.iinfo(np.int32)
"""The range of label numbers: label maps are sampled and written as 32-bit integers."""


def _label_numbers(data: np.ndarray, path: Path, role: str) -> np.ndarray:
    """A label map as whole numbers of 8, 16 or 32 bits (what torch samples and NIfTI readers expect).

    Raises:
        ValueError: naming the file when it holds fractions, or numbers outside the 32-bit integer range (written
            as 32-bit integers they would change).
    """
    if data.dtype.kind not in "iub":
        rounded = np.round(data)
        if not np.array_equal(rounded, data):
            raise ValueError(f"{role} {path} is not a label map: it holds non-integer values.")
        data = rounded
    elif data.dtype in (np.uint8, np.int8, np.int16, np.int32):
        return data
    low, high = data.min(), data.max()
    if low < INT32.min or high > INT32.max:
        raise ValueError(
            f"{role} {path} holds label numbers from {low:.0f} to {high:.0f}; expected numbers from {INT32.min} to "
            f"{INT32.max} (32-bit integers): renumber its labels."
        )
    return data.astype(np.int32)


def _check_orientation(image: nib.spatialimages.SpatialImage, path: Path, role: str) -> None:
    """Refuse a NIfTI file whose qform and sform codes are both 0: its place in the world is unknown."""
    header = image.header
    if isinstance(header, nib.Nifti1Header) and int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise ValueError(
            f"{role} {path} has qform_code and sform_code 0: where its voxels lie in the world is unknown, and "
            "nibabel's fallback (voxel sizes only, no orientation) may flip or shift it. Set its orientation (e.g. "
            "fslorient, or nibabel's set_qform/set_sform), or pass --assume_affine to use the fallback."
        )


def load_volume(
    path: str | os.PathLike, role: str = "image", label: bool = False, assume_affine: bool = False
) -> Volume:
    """Read a 3D image (float32) or label map (integers) and check it.

    Trailing axes of size 1 beyond the third (e.g. ``(X, Y, Z, 1)``) are dropped.

    Args:
        path: a NIfTI file (or any format nibabel reads), a MetaImage or NRRD file, or a DICOM series folder.
        role: what the file is, for messages (e.g. ``"fixed image"``).
        label: read a label map: integer voxels (floating files must hold whole numbers).
        assume_affine: accept a NIfTI file with qform and sform codes 0 (nibabel's fallback affine).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file when it cannot be read, has no orientation (both header codes 0, unless
            ``assume_affine``), is not 3D, has NaN/Inf voxels, a label map holds fractional values, or an image
            is constant.
    """
    image, path = _read(path, role)
    if not assume_affine:
        _check_orientation(image, path, role)
    shape = tuple(image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise ValueError(
            f"{role} {path} has shape {tuple(image.shape)}; expected a 3D volume (X, Y, Z) "
            "(one channel, one time point)."
        )
    data = _array(image, path, role, label).reshape(shape)
    if data.dtype.kind in "fc":
        _check_finite(data, image, path, role)
    if label:
        data = _label_numbers(data, path, role)
    elif float(data.max()) == float(data.min()):
        raise ValueError(f"{role} {path} is constant (every voxel is {float(data.min())}): nothing to register.")
    header = image.header if isinstance(image.header, nib.Nifti1Header) else None
    try:
        return Volume(data, image.affine, str(path), header)
    except ValueError as error:
        raise ValueError(f"{role} {error}") from None


def load_ddf(path: str | os.PathLike, role: str = "DDF") -> tuple[torch.Tensor, Volume]:
    """Read a DDF file: (X, Y, Z, 1, 3) or (X, Y, Z, 3), in voxels of its grid.

    Returns:
        the DDF as a float32 Tensor in shape (3, X, Y, Z), and a :class:`Volume` of its first component that
        carries the grid, affine and header.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file when it cannot be read or is not a 3-vector field over a 3D grid.
    """
    image, path = _read(path, role)
    shape = tuple(image.shape)
    if len(shape) == 5 and shape[3] == 1 and shape[4] == 3:
        layout = shape[:3]
    elif len(shape) == 4 and shape[3] == 3:
        layout = shape[:3]
    else:
        raise ValueError(
            f"{role} {path} has shape {shape}; expected a displacement field (X, Y, Z, 1, 3) or (X, Y, Z, 3) "
            "in voxels, as `monai-mine register` writes it."
        )
    data = _array(image, path, role, label=False).reshape(*layout, 3)
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValueError(f"{role} {path} has {int(bad.sum())} NaN or infinite value(s) out of {data.size}.")
    header = image.header if isinstance(image.header, nib.Nifti1Header) else None
    try:
        grid_volume = Volume(data[..., 0], image.affine, str(path), header)
    except ValueError as error:
        raise ValueError(f"{role} {error}") from None
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, -1, 0))), grid_volume


def _nifti(data: np.ndarray, reference: Volume) -> nib.Nifti1Image:
    """A NIfTI image on ``reference``'s grid; qform/sform codes copied from its header (sform "aligned" without)."""
    image = nib.Nifti1Image(data, reference.affine)
    header = reference.header
    qform_code = int(header["qform_code"]) if header is not None else 0
    sform_code = int(header["sform_code"]) if header is not None else 0
    image.set_sform(reference.affine, code=sform_code if (sform_code or qform_code) else 2)
    image.set_qform(reference.affine, code=qform_code)
    if header is not None:
        image.header.set_xyzt_units(*header.get_xyzt_units())
    return image


def _write(image: nib.Nifti1Image, path: str | os.PathLike) -> Path:
    """Write atomically, in the format the name ends with: NIfTI, MGZ (nibabel) or MetaImage/NRRD (through ITK,
    which converts the RAS affine to its LPS geometry)."""
    path = Path(path)
    suffix = output_suffix(path)
    with atomic_output(path) as temporary:
        if suffix == ".mgz":
            nib.save(nib.MGHImage(np.asarray(image.dataobj), image.affine), temporary)
        elif suffix in (".mha", ".nrrd"):
            import itk

            staging = temporary.with_name(f"{temporary.name}.nii")
            try:
                nifti.write_nifti(image, staging)
                itk.imwrite(itk.imread(os.fspath(staging)), os.fspath(temporary))
            finally:
                staging.unlink(missing_ok=True)
        else:
            nifti.write_nifti(image, temporary)  # looked up here: the one place NIfTI bytes are written
    return path


def save_volume(data: torch.Tensor | np.ndarray, path: str | os.PathLike, reference: Volume) -> Path:
    """Write a (X, Y, Z) or (1, X, Y, Z) array on ``reference``'s grid (its affine and header codes), atomically, in
    the format ``path`` ends with (NIfTI, ``.mgz``, ``.mha``, ``.nrrd``).

    Floating data is stored as float32, integer data keeps its dtype (64-bit integers become 32-bit).
    """
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.shape != reference.grid.shape:
        raise ValueError(f"data for {path} must have shape {reference.grid.shape}, got {array.shape}.")
    if array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    elif array.dtype.itemsize > 4:
        if array.size and (array.min() < INT32.min or array.max() > INT32.max):
            raise ValueError(f"data for {path} holds integers beyond 32 bits ({array.min()}..{array.max()}).")
        array = array.astype(np.int32)
    return _write(_nifti(array, reference), path)


def save_ddf(ddf: torch.Tensor | np.ndarray, path: str | os.PathLike, reference: Volume) -> Path:
    """Write a (3, X, Y, Z) DDF in voxels of ``reference``'s grid as an (X, Y, Z, 1, 3) VECTOR NIfTI, atomically."""
    array = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if array.shape != (3, *reference.grid.shape):
        raise ValueError(f"DDF for {path} must have shape {(3, *reference.grid.shape)}, got {array.shape}.")
    image = _nifti(np.moveaxis(array.astype(np.float32, copy=False), 0, -1)[:, :, :, None, :], reference)
    image.header.set_intent("vector")
    image.header["descrip"] = DDF_DESCRIPTION.encode()[:79]
    return _write(image, path)
