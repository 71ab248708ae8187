# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Image file endings: the name without its ending, and the ending of images written on an input's grid."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["output_suffix", "strip_suffix"]

_OUTPUT_SUFFIXES = {
    ".nii.gz": ".nii.gz",
    ".nii": ".nii",
    ".mgz": ".mgz",
    ".mgh": ".mgz",
    ".mha": ".mha",
    ".mhd": ".mha",
    ".nrrd": ".nrrd",
    ".nhdr": ".nrrd",
}
"""Input file endings and the ending images written on such an input's grid get (one file each)."""


def strip_suffix(name: str) -> str:
    """A file name without its image ending (``.nii.gz``, ``.mha``, ...)."""
    for suffix in _OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def output_suffix(path: str | os.PathLike) -> str:
    """The file ending for images written on the grid of the image read from ``path``: its own format (a
    single-file one: ``.mhd`` -> ``.mha``, ``.nhdr`` -> ``.nrrd``, ``.mgh`` -> ``.mgz``), ``.nii.gz`` for a DICOM
    series folder or another format."""
    name = Path(path).name.lower()
    return next((out for suffix, out in _OUTPUT_SUFFIXES.items() if name.endswith(suffix)), ".nii.gz")
