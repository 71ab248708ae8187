# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Using a saved DDF file: warp another image or label map with it, and measure its Jacobian determinant."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from monai_mine.apps.registration.geometry import warp_to_grid
from monai_mine.apps.registration.io import load_ddf, load_volume, save_volume
from monai_mine.apps.registration.resources import check_device
from monai_mine.flows import jacobian_determinant
from monai_mine.metrics import jacobian_statistics

__all__ = ["JacobianReport", "WarpReport", "jacobian_file", "warp_file"]


def _real(path: str | os.PathLike) -> str:
    """The path with symbolic links followed (as far as they lead: a loop is left for the reader to name)."""
    return os.path.realpath(path)


@dataclass
class WarpReport:
    """What :func:`warp_file` wrote.

    Attributes:
        path: the warped image, on the DDF's grid with its affine.
        same_grid: whether the input image was on the DDF's grid (else it was sampled through world coordinates).
        inside_percent: share of the DDF's voxels whose sample point falls inside the input image, in %.
    """

    path: Path
    same_grid: bool
    inside_percent: float

    def summary(self) -> str:
        where = "on the DDF's grid" if self.same_grid else "on its own grid, sampled through world coordinates"
        return f"wrote {self.path} (input {where}; {self.inside_percent:.1f} % of the sample points inside the input)"


def warp_file(
    image: str | os.PathLike,
    ddf: str | os.PathLike,
    out: str | os.PathLike,
    label: bool = False,
    device: str | torch.device = "cpu",
) -> WarpReport:
    """Warp an image or label map with a saved DDF and write the result on the DDF's grid.

    Each voxel ``x`` of the DDF's grid samples the input at the world point ``A_D (x + ddf(x))`` through the input's
    own affine (one resampling): an input on the DDF's grid gives ``image(x + ddf(x))``, and one on another grid
    (e.g. the original moving image's) gives the same physical result.

    Args:
        image: the image or label map file.
        ddf: a DDF file as ``monai-mine register`` writes it ((X, Y, Z, 1, 3) or (X, Y, Z, 3), in voxels).
        out: the output file (written atomically; it may not be one of the inputs).
        label: the input is a label map: nearest-neighbour sampling, integer output.
        device: where to compute.

    Raises:
        FileNotFoundError: naming a missing input.
        ValueError: naming the file for unreadable or non-3D inputs, or when the input and the DDF's grid do not
            overlap in world space.
    """
    if _real(out) in {_real(image), _real(ddf)}:
        raise ValueError(f"output {out} would overwrite an input file: choose another --out.")
    device = check_device(device)
    field, grid_volume = load_ddf(ddf)
    volume = load_volume(image, "label map" if label else "image", label=bool(label))
    field = field.to(device)
    data = volume.tensor(device) if label else volume.tensor(device).float()
    mode = "nearest" if label else "bilinear"
    inside = warp_to_grid(
        torch.ones_like(data, dtype=torch.float32), volume.grid, field, grid_volume.grid, "nearest", "zeros"
    )
    inside_percent = float(inside.mean()) * 100.0
    if inside_percent == 0.0:
        raise ValueError(
            f"{volume.path} and the grid of DDF {grid_volume.path} do not overlap in world space: no warped point "
            "falls inside the image; check that both files' affines are in one world (scanner) space."
        )
    warped = warp_to_grid(data, volume.grid, field, grid_volume.grid, mode)
    path = save_volume(warped, out, grid_volume)
    return WarpReport(path, volume.grid.same_as(grid_volume.grid), inside_percent)


@dataclass
class JacobianReport:
    """What :func:`jacobian_file` wrote and measured (``monai_mine.metrics.jacobian_statistics``).

    Attributes:
        path: the determinant map, on the DDF's grid.
        folding_percent: share of voxels with det <= 0, in %.
        sdlogj: standard deviation of log(det) (det clipped to 1e-9).
        sdlogj_l2r: the Learn2Reg scripts' variant, standard deviation of log(det + 3).
        min_det: smallest determinant.
        max_det: largest determinant.
    """

    path: Path
    folding_percent: float
    sdlogj: float
    sdlogj_l2r: float
    min_det: float
    max_det: float

    def summary(self) -> str:
        return (
            f"folding {self.folding_percent:.4f} % (det <= 0), SDlogJ {self.sdlogj:.4f} "
            f"(Learn2Reg log(det + 3): {self.sdlogj_l2r:.4f}), min det {self.min_det:.4f}, "
            f"max det {self.max_det:.4f}; wrote {self.path}"
        )


def jacobian_file(ddf: str | os.PathLike, out: str | os.PathLike, device: str | torch.device = "cpu") -> JacobianReport:
    """Write the Jacobian determinant of ``x + ddf(x)`` for a saved DDF (on its grid, its affine) and its statistics.

    The determinant is the same in voxels and in mm (the voxel size conjugates the Jacobian).

    Args:
        ddf: a DDF file ((X, Y, Z, 1, 3) or (X, Y, Z, 3), in voxels).
        out: the determinant map to write (atomically).
        device: where to compute.

    Raises:
        FileNotFoundError: naming a missing DDF file.
        ValueError: naming the file when it is not a readable 3D displacement field.
    """
    if _real(out) == _real(ddf):
        raise ValueError(f"output {out} would overwrite the DDF file: choose another --out.")
    device = check_device(device)
    field, grid_volume = load_ddf(ddf)
    batch = field.to(device)[None]
    path = save_volume(jacobian_determinant(batch)[0], out, grid_volume)
    stats = {key: float(value[0]) for key, value in jacobian_statistics(batch).items()}
    return JacobianReport(path, **stats)
