# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A DICOM series folder checked before it is read as one volume: one series, its slices evenly spaced.

ITK reads a folder's first series and spaces its slices by their average distance, so a folder of two series, or
a series with a missing or misplaced slice, would be read as a wrong volume without a word.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["SLICE_TOLERANCE", "dicom_series"]

SLICE_TOLERANCE = 0.01
"""The most that a gap between neighbouring slices may differ from the others, relative to their median."""


def _positions(files: list[str]) -> np.ndarray:
    """Each file's image position (its first voxel's centre, LPS mm), in ITK's order, (N, 3)."""
    import itk

    positions = []
    for name in files:
        io = itk.GDCMImageIO.New()
        io.SetFileName(name)
        io.ReadImageInformation()
        positions.append([io.GetOrigin(axis) for axis in range(3)])
    return np.asarray(positions, dtype=np.float64)


def dicom_series(folder: str | os.PathLike, role: str) -> str:
    """The identifier of the one DICOM series in ``folder``, once its slices are checked to be evenly spaced.

    Args:
        folder: the DICOM series folder.
        role: what it is, for messages (e.g. ``"fixed image"``).

    Raises:
        ValueError: naming the folder and the series: no series, several (each with its file count: put each in a
            folder of its own), or slices whose gaps differ (a missing, repeated or misplaced slice).
    """
    import itk

    folder = Path(folder)
    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(True)  # the series identifiers MONAI's ITKReader names them by
    names.AddSeriesRestriction("0008|0021")
    names.SetDirectory(os.fspath(folder))
    series = list(names.GetSeriesUIDs())
    if not series:
        raise ValueError(f"cannot read {role} {folder} as a DICOM series folder: no DICOMs found in it.")
    if len(series) > 1:
        listed = ", ".join(f"{uid} ({len(names.GetFileNames(uid))} files)" for uid in series)
        raise ValueError(
            f"{role} {folder} holds {len(series)} DICOM series: {listed}; expected one series per folder (move each "
            "into a folder of its own)."
        )
    files = list(names.GetFileNames(series[0]))
    if len(files) > 2:
        gaps = np.linalg.norm(np.diff(_positions(files), axis=0), axis=1)
        median = float(np.median(gaps))
        uneven = np.flatnonzero(np.abs(gaps - median) > SLICE_TOLERANCE * max(median, 1e-6))
        if median <= 0 or uneven.size:
            first = int(uneven[0]) if uneven.size else 0
            raise ValueError(
                f"{role} {folder}: the slices of DICOM series {series[0]} are not evenly spaced: {median:.4g} mm "
                f"apart, but {gaps[first]:.4g} mm between {Path(files[first]).name} and "
                f"{Path(files[first + 1]).name} ({uneven.size} uneven gap(s)); expected a whole series (a missing or "
                "repeated slice?)."
            )
    return series[0]
