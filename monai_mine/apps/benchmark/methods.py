# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The benchmark's registration methods: each turns a :class:`~monai_mine.apps.benchmark.BenchmarkPair` into a DDF.

Every method returns the DDF ``u`` (3, X, Y, Z) in voxels of the pair's grid (``warped(x) = moving(x + u(x))``)
and its wall time; the benchmark then warps and scores every method's DDF the same way.

- ``identity``: ``u = 0`` (the pair before registration);
- ``ants_syn``: antspyx ``SyN`` with its defaults; ``ants_vtn_paper``: the VTN paper's ANTs command (an option:
  about 15 minutes per 128^3 pair on 2 cores); ``elastix``: elastix's default affine + B-spline maps
  (:mod:`monai_mine.apps.benchmark.classical`);
- a bundle (``vtn_addd``, ``vtn_addd_inv``, ``miregnet``, ``midiceregnet``): the pair is written as NIfTI and
  registered by :func:`monai_mine.apps.registration.register_files` with a checkpoint (resampled to the bundle's
  working grid, the DDF mapped back to the pair's grid); the time is the registration's own (files excluded);
- any of these with ``+io`` (``vtn_addd+io``, ``identity+io``): the same start refined on the pair by instance
  optimisation (:class:`~monai_mine.optimization.InstanceOptimizer`, the bundles' default settings), the time
  included; ``identity+io`` is pure optimisation from the identity, no network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monai_mine.apps.benchmark.classical import ants_syn, elastix_affine_bspline
from monai_mine.apps.benchmark.pairs import BenchmarkPair
from monai_mine.io.nifti import save_nifti

__all__ = [
    "BUNDLE_METHODS",
    "CLASSICAL_METHODS",
    "DEFAULT_METHODS",
    "INSTANCE_METHODS",
    "INSTANCE_SUFFIX",
    "BundleMethod",
    "MethodRun",
    "base_method",
    "classical_method",
    "identity_instance_method",
]

CLASSICAL_METHODS = ("identity", "ants_syn", "ants_vtn_paper", "elastix")
BUNDLE_METHODS = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
DEFAULT_METHODS = ("identity", "ants_syn", "elastix", *BUNDLE_METHODS)
"""What ``monai-mine benchmark`` runs unless told otherwise (``ants_vtn_paper`` is left out for its run time)."""
INSTANCE_SUFFIX = "+io"
INSTANCE_METHODS = tuple(f"{name}{INSTANCE_SUFFIX}" for name in ("identity", *BUNDLE_METHODS))
"""The methods refined by instance optimisation: the identity start and each bundle's network."""


def base_method(name: str) -> str:
    """The method a ``+io`` method starts from (``vtn_addd+io`` -> ``vtn_addd``); other names unchanged."""
    return name[: -len(INSTANCE_SUFFIX)] if name.endswith(INSTANCE_SUFFIX) else name


@dataclass
class MethodRun:
    """One method on one pair.

    Attributes:
        ddf: float32 (3, X, Y, Z), voxels of the pair's grid.
        runtime_s: wall time of the registration.
    """

    ddf: np.ndarray
    runtime_s: float


def _identity(pair: BenchmarkPair) -> np.ndarray:
    return np.zeros((3, *pair.fixed.shape), dtype=np.float32)


_CLASSICAL: dict[str, Callable[[BenchmarkPair], np.ndarray]] = {
    "identity": _identity,
    "ants_syn": lambda pair: ants_syn(pair.fixed, pair.moving, pair.spacing, preset="defaults"),
    "ants_vtn_paper": lambda pair: ants_syn(pair.fixed, pair.moving, pair.spacing, preset="vtn_paper"),
    "elastix": lambda pair: elastix_affine_bspline(pair.fixed, pair.moving, pair.spacing),
}


def classical_method(name: str) -> Callable[[BenchmarkPair], MethodRun]:
    """The classical method ``name`` (one of :data:`CLASSICAL_METHODS`) as ``pair -> MethodRun``.

    Raises:
        ValueError: on an unknown name.
    """
    if name not in _CLASSICAL:
        raise ValueError(f"unknown classical method {name!r}; choose from {CLASSICAL_METHODS}.")
    register = _CLASSICAL[name]

    def run(pair: BenchmarkPair) -> MethodRun:
        start = time.perf_counter()
        ddf = register(pair)
        return MethodRun(np.asarray(ddf, dtype=np.float32), time.perf_counter() - start)

    return run


def identity_instance_method(instance_optimization) -> Callable[[BenchmarkPair], MethodRun]:
    """``identity+io``: instance optimisation from the identity as ``pair -> MethodRun``.

    Args:
        instance_optimization: Adam steps per level with the bundles' default settings (32- and 64-voxel levels,
            local correlation), a preset or a schedule ``A/B/C`` (a last level at full resolution), or an
            :class:`~monai_mine.optimization.InstanceOptimizer`.
    """
    import torch

    from monai_mine.optimization import InstanceOptimizer
    from monai_mine.optimization.schedule import instance_optimization_schedule

    optimizer = instance_optimization
    if not isinstance(optimizer, InstanceOptimizer):
        optimizer = InstanceOptimizer(steps=instance_optimization_schedule(instance_optimization))

    def run(pair: BenchmarkPair) -> MethodRun:
        images = (
            torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None] for image in (pair.moving, pair.fixed)
        )
        ddf, report = optimizer(*images)
        return MethodRun(ddf[0].numpy(), report.seconds)

    return run


class BundleMethod:
    """A bundle with a checkpoint, registering pairs through :func:`monai_mine.apps.registration.register_files`."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        checkpoint: str | os.PathLike,
        work_dir: str | os.PathLike,
        image_size: int | None = None,
        device: str = "cpu",
        instance_optimization=0,
    ) -> None:
        """
        Args:
            bundle_dir: the bundle's folder, e.g. ``bundles/vtn_addd``.
            checkpoint: its weights (``model.pt`` or a training ``checkpoint.pt``).
            work_dir: folder for each pair's NIfTI inputs and the registration's outputs.
            image_size: working grid edge; default the one the weights were trained at (their model record).
            device: where the network runs.
            instance_optimization: Adam steps per level of the bundle's instance optimisation (0: the network), a
                preset or a schedule ``A/B/C``, or an :class:`~monai_mine.optimization.InstanceOptimizer`.

        Raises:
            FileNotFoundError: when the bundle or checkpoint does not exist.
            ValueError: when the checkpoint does not fit the bundle's network, or ``image_size`` contradicts its record.
        """
        from monai_mine.bundle import load_trained_model

        overrides = {} if image_size is None else {"image_size": int(image_size)}
        self.bundle = load_trained_model(bundle_dir, checkpoint, overrides=overrides, device=device)
        self.work_dir = Path(work_dir)
        self.instance_optimization = instance_optimization

    def __call__(self, pair: BenchmarkPair) -> MethodRun:
        """Register one pair; its inputs are written to ``work_dir/<track>_<seed>/`` first."""
        from monai_mine.apps.registration import load_ddf, register_files

        folder = self.work_dir / f"{pair.track}_{pair.seed}"
        inputs = {"fixed": pair.fixed, "moving": pair.moving}
        paths = {name: folder / f"{name}.nii.gz" for name in inputs}
        for name, array in inputs.items():
            save_nifti(array, paths[name], pair.affine)
        report = register_files(
            paths["fixed"],
            paths["moving"],
            self.bundle,
            folder / self.bundle.name,
            instance_optimization=self.instance_optimization,
            overwrite=True,
        )
        ddf, _ = load_ddf(report.ddf)
        return MethodRun(ddf.numpy().astype(np.float32), float(report.runtime_s))
