# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What the tests share, defined once: the repository's paths, bundle copies, configs and workflows, untrained
networks, synthetic images and NIfTI files, exception chains and the benchmark scripts.

Import it as ``from tests.helpers import ...``: ``tests`` is a package (``tests/__init__.py``) whose root conftest
pytest imports first, which puts the repository on ``sys.path`` (pytest's default ``prepend`` import mode). Fixtures
stay in the conftest of the folder that uses them. The files in ``tests/zoo_unit_tests`` import nothing from here:
they are copied as they are into the model zoo's ``ci/unit_tests``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from scipy.ndimage import gaussian_filter

__all__ = [
    "BUNDLES",
    "QUICK",
    "REPOSITORY",
    "RUN_OUTPUTS",
    "benchmark_script",
    "bundle_dir",
    "bundle_parser",
    "config_files",
    "copy_bundle",
    "edit_configs",
    "error_chain",
    "make_workflow",
    "run_workflow",
    "save_untrained_weights",
    "smooth_noise",
    "smooth_texture",
    "untrained_checkpoint",
    "untrained_network",
    "voxel_blob",
    "voxel_distance2",
    "world_blob",
    "world_points",
    "write_dicom_series",
    "write_nifti",
]

# ----------------------------------------------------------------------------------------------------------- paths
REPOSITORY = Path(__file__).resolve().parents[1]
"""The checkout's root (``bundles/``, ``configs/``, ``benchmarks/``, ``sample-apps/``)."""

BUNDLES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
QUICK = REPOSITORY / "configs" / "quick.json"
"""The overlay of the quick runs: 4 channels, 2 x 2 iterations."""

RUN_OUTPUTS = ("models", "eval", "runs")
"""What runs write into a bundle folder; a bundle copy leaves it out."""


def bundle_dir(name: str) -> Path:
    """``bundles/<name>`` of the checkout."""
    return REPOSITORY / "bundles" / name


def copy_bundle(name: str, target: Path, exclude: tuple[str, ...] = RUN_OUTPUTS) -> Path:
    """Copy ``bundles/<name>`` to ``target`` without ``exclude`` (by default the outputs of runs, weights too) and
    return ``target``."""
    shutil.copytree(bundle_dir(name), target, ignore=shutil.ignore_patterns(*exclude))
    return target


def edit_configs(folder: Path, names: tuple[str, ...], **values) -> None:
    """Set top-level ``values`` in each of the bundle's ``configs/<name>`` JSON files."""
    for name in names:
        path = folder / "configs" / name
        config = json.loads(path.read_text())
        config.update(values)
        path.write_text(json.dumps(config, indent=4))


# ------------------------------------------------------------------------------------------- configs and networks
def bundle_parser(folder: Path, **overrides) -> ConfigParser:
    """The bundle's ``configs/inference.json`` read with ``bundle_root`` set to ``folder``, then ``overrides``."""
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.json"))
    parser["bundle_root"] = str(folder)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def untrained_network(folder: Path, seed: int = 0, **overrides) -> torch.nn.Module:
    """The bundle's ``network_def`` (see :func:`bundle_parser`) built after ``torch.manual_seed(seed)``."""
    parser = bundle_parser(folder, **overrides)
    torch.manual_seed(seed)
    return parser.get_parsed_content("network_def")


def save_untrained_weights(folder: Path, seed: int = 0) -> torch.nn.Module:
    """Save the untrained network's weights as the bundle's ``models/model.pt`` (a new folder); returns the network
    in eval mode."""
    network = untrained_network(folder, seed).eval()
    (folder / "models").mkdir()
    torch.save(network.state_dict(), folder / "models" / "model.pt")
    return network


def untrained_checkpoint(bundle: str, path: Path, seed: int = 0, training: bool = False) -> Path:
    """Save the freshly initialised network of a checkout bundle: weights only, or as a training checkpoint."""
    state = untrained_network(bundle_dir(bundle), seed).state_dict()
    torch.save({"network": state} if training else state, path)
    return path


# --------------------------------------------------------------------------------------------------- workflows
def config_files(bundle: Path, *names: str, quick: bool = True) -> list[str]:
    files = [str(bundle / "configs" / name) for name in names]
    return files + [str(QUICK)] if quick else files


def make_workflow(bundle: Path, names: tuple[str, ...], workflow_type: str, quick: bool = True, **override):
    """A bundle workflow as MONAI Label and the model zoo's tests build one (with :data:`QUICK` unless not
    ``quick``)."""
    return ConfigWorkflow(
        config_file=config_files(bundle, *names, quick=quick),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(bundle),
        **override,
    )


def run_workflow(bundle: Path, names: tuple[str, ...], workflow_type: str, quick: bool = True, **override):
    """initialize(), check_properties() (must find nothing missing), run(), finalize(); returns the workflow."""
    workflow = make_workflow(bundle, names, workflow_type, quick, **override)
    workflow.initialize()
    missing = workflow.check_properties()
    assert missing == [], f"{bundle.name} {names}: missing bundle properties {missing}"
    workflow.run()
    workflow.finalize()
    return workflow


# ------------------------------------------------------------------------------------------------------ images
def world_points(shape, affine) -> np.ndarray:
    """World coordinates (mm) of every voxel, array in shape (X, Y, Z, 3)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def world_blob(shape, affine, centre, sigma: float = 6.0) -> np.ndarray:
    """A Gaussian blob defined in world space (mm), sampled on a grid: float32 (X, Y, Z) in (0, 1]."""
    distance2 = ((world_points(shape, affine) - np.asarray(centre)) ** 2).sum(-1)
    return np.exp(-distance2 / (2.0 * sigma**2)).astype(np.float32)


def voxel_distance2(shape: tuple[int, int, int], centre: tuple[float, float, float]) -> np.ndarray:
    """Squared distance (voxels, float32) of every voxel to ``centre``."""
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    return sum((grid[i] - centre[i]) ** 2 for i in range(3))


def voxel_blob(shape: tuple[int, int, int], centre: tuple[float, float, float], spread: float = 18.0) -> np.ndarray:
    """A Gaussian blob, ``100 exp(-d^2 / spread)`` on a background of 10, centred at ``centre`` (voxels): float32."""
    return (100.0 * np.exp(-voxel_distance2(shape, centre) / spread) + 10.0).astype(np.float32)


def smooth_noise(
    shape, rng: np.random.Generator | int, sigma: float = 1.5, scale: float = 100.0, offset: float = 0.0
) -> np.ndarray:
    """Uniform noise smoothed by a Gaussian of ``sigma`` voxels, times ``scale`` plus ``offset``: float32.

    ``rng`` is a generator (its next draw) or a seed (``np.random.default_rng(rng)``)."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return (scale * gaussian_filter(rng.random(shape), sigma) + offset).astype(np.float32)


def smooth_texture(size: int, seed: int = 0, coarse: int = 4, align_corners: bool = True) -> torch.Tensor:
    """Uniform noise on a ``coarse``^3 grid upsampled trilinearly to ``size``^3, then min-max normalised to [0, 1]:
    a smooth random image, (1, 1, size, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, coarse, coarse, coarse, generator=generator)
    image = torch.nn.functional.interpolate(noise, size=(size,) * 3, mode="trilinear", align_corners=align_corners)
    return (image - image.min()) / (image.max() - image.min())


def write_nifti(path: Path, array, affine: np.ndarray | None = None) -> Path:
    """Write ``array`` as NIfTI (identity affine unless given) and return ``path``."""
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return path


def write_dicom_series(
    volume: np.ndarray, spacing, origin_lps, folder: Path, series: str = "1.2.826.0.1.3680043.2.1125.1"
) -> None:
    """One axial DICOM file per slice of ``volume`` (X, Y, Z; int16) with LPS positions, as a scanner writes them,
    in series ``series`` (a DICOM UID)."""
    import itk

    folder.mkdir(parents=True, exist_ok=True)
    for z in range(volume.shape[2]):
        image = itk.image_from_array(np.ascontiguousarray(volume[:, :, z].T))
        image.SetSpacing([float(spacing[0]), float(spacing[1])])
        position = [origin_lps[0], origin_lps[1], origin_lps[2] + z * spacing[2]]
        tags = {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"{series}.{z + 1}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.2",
            "0020|000e": series,
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(f"{value:.4f}" for value in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing[1]:.4f}\\{spacing[0]:.4f}",
            "0018|0050": f"{spacing[2]:.4f}",
        }
        dictionary = image.GetMetaDataDictionary()
        for tag, value in tags.items():
            dictionary[tag] = value
        io = itk.GDCMImageIO.New()
        io.KeepOriginalUIDOn()
        itk.imwrite(image, str(folder / f"{series[-4:]}_slice{z:03d}.dcm"), imageio=io)


# ------------------------------------------------------------------------------------------------------ others
def error_chain(error: BaseException | None) -> str:
    """Every message of an exception's chain (MONAI wraps errors from configs, transforms and engines)."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def benchmark_script(name: str, register: bool = False) -> ModuleType:
    """A fresh module of ``benchmarks/<name>.py`` (the scripts are not a package); ``register`` puts it into
    ``sys.modules`` under ``name`` (a dataclass of the script looks its module up)."""
    spec = importlib.util.spec_from_file_location(name, REPOSITORY / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
