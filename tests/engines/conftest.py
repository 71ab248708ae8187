"""Shared fixtures of the engine tests: smooth synthetic pairs, tiny cascades and in-memory loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch import nn

from monai_mine.networks.variants import build_miregnet, build_vtn

SIZE = 16


def gaussian_blob(shift: float = 0.0, size: int = SIZE, sigma: float = 3.0) -> torch.Tensor:
    """A (1, X, Y, Z) Gaussian blob in [0, 1] centred ``shift`` voxels along the first axis from the grid centre."""
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.exp(-((x - shift) ** 2 + y**2 + z**2) / (2 * sigma**2))[None]


def cube_label(start: int, stop: int, size: int = SIZE, value: int = 1) -> torch.Tensor:
    """A (1, X, Y, Z) int64 label map with a cube of ``value`` in [start, stop) along the first axis, [4, 10) else."""
    label = torch.zeros(1, size, size, size, dtype=torch.int64)
    label[:, start:stop, 4:10, 4:10] = value
    return label


class ZeroFlow(nn.Module):
    """A 'registration network' returning the identity transform: DDF of zeros (B, 3, X, Y, Z)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.zeros(image.shape[0], 3, *image.shape[2:], dtype=image.dtype)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_vtn():
    """``tiny_vtn("AD")``: a VTN cascade with 2 channels and depth 4 (total stride 16: 16^3 inputs)."""
    return lambda stages="A": build_vtn(stages, channels=2, depth=4)


@pytest.fixture
def tiny_miregnet():
    """A two-stage MIRegNet (AffineNet + U-Net DeformNet) small enough for 16^3 inputs."""
    return lambda: build_miregnet(
        affine_channels=(2, 4), affine_strides=(2, 2), deform_channels=(2, 4), deform_strides=(2,)
    )


@pytest.fixture
def random_pairs():
    """``random_pairs(n)``: n distinct (moving, fixed) pairs of smooth random images, as datalist dicts."""

    def make(count: int = 2) -> list[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(1234)
        items = []
        for _ in range(count):
            coarse = torch.rand(2, 1, 4, 4, 4, generator=generator)
            images = nn.functional.interpolate(coarse, size=(SIZE,) * 3, mode="trilinear", align_corners=True)
            items.append({"moving_image": images[0], "fixed_image": images[1]})
        return items

    return make


def meta_image(data: torch.Tensor, filename: str, affine: np.ndarray) -> MetaTensor:
    return MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64), meta={"filename_or_obj": filename})


@pytest.fixture
def meta_pairs():
    """``meta_pairs(n, labels=True, spacing=2.0)``: MetaTensor pairs with files ``/data/moving_<i>.nii.gz`` and
    ``/data/fixed_<i>.nii.gz`` and an affine of ``spacing`` mm voxels; the moving label cube is shifted 2 voxels
    from the fixed one (Dice 2/3, HD95 2 voxels)."""

    def make(count: int = 2, labels: bool = True, spacing: float = 2.0) -> list[dict[str, MetaTensor]]:
        items = []
        for index in range(count):
            moving_affine, fixed_affine = np.diag([spacing, spacing, spacing, 1.0]), np.diag([spacing] * 3 + [1.0])
            moving_affine[:3, 3] = (1.0, 2.0, 3.0)  # the writers must use the fixed image's affine, per pair
            fixed_affine[:3, 3] = (-10.0 - index, 5.0, 3.0)
            item = {
                "moving_image": meta_image(gaussian_blob(2.0 + index), f"/data/moving_{index}.nii.gz", moving_affine),
                "fixed_image": meta_image(gaussian_blob(0.0), f"/data/fixed_{index}.nii.gz", fixed_affine),
            }
            if labels:
                item["moving_label"] = meta_image(
                    cube_label(4, 10), f"/data/moving_label_{index}.nii.gz", moving_affine
                )
                item["fixed_label"] = meta_image(cube_label(6, 12), f"/data/fixed_label_{index}.nii.gz", fixed_affine)
            items.append(item)
        return items

    return make


@pytest.fixture
def blob():
    """``blob(shift)``: see :func:`gaussian_blob`."""
    return gaussian_blob


@pytest.fixture
def cube():
    """``cube(start, stop)``: see :func:`cube_label`."""
    return cube_label


@pytest.fixture
def zero_flow() -> ZeroFlow:
    return ZeroFlow()
