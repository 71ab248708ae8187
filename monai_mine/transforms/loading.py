# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Loading images with errors that name the file: MONAI's ``LoadImaged`` and what it leaves unsaid.

MONAI's loader reports a truncated ``.nii.gz`` as ``EOFError: Compressed file ended before the end-of-stream marker
was reached`` (no file name), and casts complex voxels to real numbers with only a warning. :class:`CheckedLoadImaged`
names the file and the key in both cases, and reads FreeSurfer's ``.mgz``/``.mgh`` (which MONAI would hand to ITK,
which cannot read them) with nibabel: with MONAI's ITK reader for MetaImage, NRRD and DICOM, a datalist may name
any of the formats ``monai-mine register`` reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from typing import Any

from monai.data import ImageReader, NibabelReader
from monai.data.utils import is_supported_format
from monai.transforms import LoadImaged
from numpy.exceptions import ComplexWarning

__all__ = ["CheckedLoadImaged", "MGHReader"]


class MGHReader(NibabelReader):
    """MONAI's ``NibabelReader`` for FreeSurfer's MGH/MGZ files (nibabel reads them with their affine)."""

    def verify_suffix(self, filename) -> bool:
        return is_supported_format(filename, ["mgz", "mgh"])


class CheckedLoadImaged(LoadImaged):
    """MONAI's ``LoadImaged`` (same arguments), raising ``ValueError`` that names the file and the key when a file
    cannot be read (not an image, truncated, corrupt) or holds complex voxels.

    Inside a ``Compose`` MONAI wraps the error in ``RuntimeError("applying transform ...")``; the message naming the
    file is its cause (see :func:`monai_mine.transforms.root_cause`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loader.register(MGHReader())  # tried first, for .mgz/.mgh only

    def _load(self, filename: Any, reader: ImageReader | None) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ComplexWarning)
            return self._loader(filename, reader)

    def __call__(self, data: Mapping[Hashable, Any], reader: ImageReader | None = None) -> dict[Hashable, Any]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ComplexWarning)
                return super().__call__(data, reader)
        except Exception:  # find the file at fault: load each one again (this is the failure path only)
            for key in self.key_iterator(dict(data)):
                try:
                    self._load(data[key], reader)
                except ComplexWarning as cause:
                    raise ValueError(
                        f"{data[key]} (key {key!r}) holds complex voxels; expected real-valued intensities "
                        "(take the magnitude or the real part before registration)."
                    ) from cause
                except Exception as cause:
                    raise ValueError(
                        f"cannot read {data[key]} (key {key!r}) as an image: {type(cause).__name__}: {cause}. "
                        "Is it a complete NIfTI (or other ITK/nibabel) file? A truncated download or copy reads so."
                    ) from cause
            raise
