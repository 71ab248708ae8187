"""Shared cases of the registration tests: analytic images on arbitrary grids, exact stand-in networks, file hashes
(the generic helpers, images and NIfTI files included, are in :mod:`tests.helpers`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from monai_mine.apps.registration import Volume
from tests.helpers import world_blob


def grid_affine(spacing, origin, axcodes: str = "RAS", shape=None) -> np.ndarray:
    """Affine of a grid whose axes run along ``axcodes`` (e.g. "LPS", "PIR") with the given spacing (mm).

    ``origin`` is the world position of the voxel ``(0, 0, 0)`` when ``shape`` is None, else of the box centre.
    """
    axes = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for column, code in enumerate(axcodes):
        row, sign = axes[code]
        affine[row, column] = sign * spacing[column]
    affine[:3, 3] = origin
    if shape is not None:
        affine[:3, 3] = np.asarray(origin) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return affine


def two_blobs(shape, affine, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Two blobs of different size and brightness (an asymmetric, smooth image), moved by ``shift`` mm."""
    shift = np.asarray(shift)
    return world_blob(shape, affine, np.array([3.0, -2.0, 4.0]) + shift, 7.0) + 0.6 * world_blob(
        shape, affine, np.array([-9.0, 7.0, -6.0]) + shift, 4.0
    )


def shifted_pair(fixed_shape=(36, 40, 30), moving_shape=(44, 34, 38)) -> tuple[Volume, Volume]:
    """A fixed (LPS, 1.5 x 1.5 x 2 mm) and a moving volume (RAS, 1.2 x 1.8 x 1.6 mm, another origin) of
    :func:`two_blobs`, the moving content moved by (3, -2, 2) mm."""
    fixed_affine = grid_affine((1.5, 1.5, 2.0), (0.0, 0.0, 0.0), "LPS", shape=fixed_shape)
    moving_affine = grid_affine((1.2, 1.8, 1.6), (1.0, 0.0, -1.0), "RAS", shape=moving_shape)
    fixed = Volume(two_blobs(fixed_shape, fixed_affine), fixed_affine)
    moving = Volume(two_blobs(moving_shape, moving_affine, shift=(3.0, -2.0, 2.0)), moving_affine)
    return fixed, moving


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CentreOfMassNet(nn.Module):
    """An exact "network" for a pure translation: a constant DDF equal to the shift between the centres of mass of
    moving and fixed (in working voxels), so that ``warped(x) = moving(x + ddf)`` lines the centres up."""

    total_stride = 1

    @staticmethod
    def centre_of_mass(image: torch.Tensor) -> torch.Tensor:
        axes = [torch.arange(n, dtype=torch.float64) for n in image.shape[2:]]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, X, Y, Z)
        weights = image[:, 0].to(torch.float64)
        return torch.einsum("bxyz,ixyz->bi", weights, grid) / weights.sum(dim=(1, 2, 3))[:, None]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        shift = self.centre_of_mass(image[:, :1]) - self.centre_of_mass(image[:, 1:])
        return shift.float()[:, :, None, None, None].expand(-1, -1, *image.shape[2:]).contiguous()


class ConstantNet(nn.Module):
    """A "network" returning one known constant DDF (working voxels)."""

    total_stride = 1

    def __init__(self, displacement) -> None:
        super().__init__()
        self.register_buffer("displacement", torch.as_tensor(displacement, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.displacement[None, :, None, None, None].expand(image.shape[0], 3, *image.shape[2:]).contiguous()
