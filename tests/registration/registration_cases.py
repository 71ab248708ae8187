"""Shared cases of the registration tests: analytic images on arbitrary grids, exact stand-in networks, files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser
from torch import nn

REPOSITORY = Path(__file__).resolve().parents[2]


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


def world_points(shape, affine) -> np.ndarray:
    """World coordinates (mm) of every voxel, array in shape (X, Y, Z, 3)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def blob(shape, affine, centre, sigma: float = 6.0) -> np.ndarray:
    """A Gaussian blob defined in world space (mm), sampled on a grid: float32 (X, Y, Z)."""
    distance2 = ((world_points(shape, affine) - np.asarray(centre)) ** 2).sum(-1)
    return np.exp(-distance2 / (2.0 * sigma**2)).astype(np.float32)


def two_blobs(shape, affine, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Two blobs of different size and brightness (an asymmetric, smooth image), moved by ``shift`` mm."""
    shift = np.asarray(shift)
    return blob(shape, affine, np.array([3.0, -2.0, 4.0]) + shift, 7.0) + 0.6 * blob(
        shape, affine, np.array([-9.0, 7.0, -6.0]) + shift, 4.0
    )


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


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


def untrained_checkpoint(bundle: str, path: Path, seed: int = 0, training: bool = False) -> Path:
    """Save the freshly initialised network of a repository bundle: weights only, or as a training checkpoint."""
    parser = ConfigParser()
    parser.read_config(str(REPOSITORY / "bundles" / bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(REPOSITORY / "bundles" / bundle)
    torch.manual_seed(seed)
    state = parser.get_parsed_content("network_def").state_dict()
    torch.save({"network": state} if training else state, path)
    return path
