# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Register real images with a bundle: any size, orientation and spacing, the result on the fixed image's grid.

Steps (:func:`register_volumes`):

1. the working grid: the fixed image's box in the closest RAS orientation at the bundle's ``image_size``^3
   (:func:`~monai_mine.apps.registration.geometry.working_grid`), the grid the bundles' preprocessing
   (``Orientationd("RAS")`` + ``Resized``) trains on;
2. the bundle's intensity transform on each original image, then both resampled onto the working grid through
   their world coordinates (one trilinear resampling each);
3. the network's DDF on the working grid, mapped to the fixed image's own voxels
   (:func:`~monai_mine.apps.registration.geometry.ddf_to_grid`);
4. optionally, instance optimisation (:class:`~monai_mine.optimization.instance.InstanceOptimizer`) refines that DDF
   on the fixed grid, with the intensity-scaled fixed image and the moving image resampled onto the fixed grid;
5. the **original** moving image (and its label maps, nearest) sampled once at the world points the DDF sends each
   fixed voxel to.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.utils import convert_to_tensor

from monai_mine.apps.registration.geometry import (
    Grid,
    box_overlap,
    ddf_to_grid,
    jacobian_map,
    resample_to_grid,
    to_closest_ras,
    warp_to_grid,
    working_grid,
)
from monai_mine.apps.registration.io import Volume, load_volume, save_ddf, save_volume
from monai_mine.apps.registration.resources import WAYS_OUT, check_device, check_memory, registration_memory
from monai_mine.bundle import TrainedModel, load_trained_model
from monai_mine.inference import FastRegistration
from monai_mine.io.atomic import atomic_folder
from monai_mine.io.formats import output_suffix, strip_suffix
from monai_mine.keys import FIXED_IMAGE, IMAGE_KEYS, MOVING_IMAGE
from monai_mine.metrics.jacobian import determinant_statistics
from monai_mine.optimization.instance import InstanceOptimization, InstanceOptimizer
from monai_mine.optimization.schedule import instance_optimization_schedule
from monai_mine.timing import StageTimer, device_clock

__all__ = [
    "FOLDING_WARNING_PERCENT",
    "MIN_BOX_OVERLAP",
    "PairInputs",
    "RegistrationReport",
    "RegistrationResult",
    "check_overlap",
    "read_inputs",
    "register_files",
    "register_volumes",
]

logger = logging.getLogger(__name__)


@dataclass
class RegistrationResult:
    """A registration in memory, everything on the fixed image's grid unless said otherwise.

    Attributes:
        ddf: Tensor in shape (3, X, Y, Z), in fixed voxels: ``warped(x) = moving(x + ddf(x))`` for the moving
            image resampled onto the fixed grid.
        warped: the original moving image sampled once through the DDF, Tensor in shape (1, X, Y, Z).
        warped_labels: each moving label map warped with nearest-neighbour sampling, (1, X, Y, Z) integer.
        working_ddf: the network's DDF, Tensor in shape (3, N, N, N) in working voxels.
        working: the working grid.
        runtime_s: wall time of the registration (resampling, network, instance optimisation, mapping back and
            warping; reading and writing files excluded).
        network_s: wall time of the network's forward pass.
        instance: what instance optimisation did, or ``None``.
    """

    ddf: torch.Tensor
    warped: torch.Tensor
    warped_labels: list[torch.Tensor]
    working_ddf: torch.Tensor
    working: Grid
    runtime_s: float
    network_s: float
    instance: InstanceOptimization | None = None


def _scale_intensity(bundle: TrainedModel, moving: torch.Tensor, fixed: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if bundle.intensity is None:
        return moving, fixed
    scaled = bundle.intensity({MOVING_IMAGE: moving, FIXED_IMAGE: fixed})
    return tuple(convert_to_tensor(scaled[key], track_meta=False).float() for key in IMAGE_KEYS)


FOLDING_WARNING_PERCENT = 1.0
"""Folding (share of fixed voxels with Jacobian determinant <= 0, in %) above which ``register`` warns."""

MIN_BOX_OVERLAP = 0.1
"""The least share of the smaller image's world box that the fixed and moving boxes must have in common."""


def _box(volume: Volume) -> str:
    low, high = volume.grid.world_box
    return "[" + ", ".join(f"{a:.1f}..{b:.1f}" for a, b in zip(low, high)) + "] mm"


def check_overlap(fixed: Volume, moving: Volume, roles: tuple[str, str] = ("fixed image", "moving image")) -> None:
    """Refuse two volumes whose world boxes barely meet: one would be sampled outside the other.

    Args:
        fixed: the first volume (the fixed image, or the moving image a label map belongs to).
        moving: the second volume.
        roles: what the two are, for the message.

    Raises:
        ValueError: naming both volumes and their world boxes when they share less than :data:`MIN_BOX_OVERLAP`
            of the smaller box (different coordinate systems, or a header with a wrong origin).
    """
    share = box_overlap(fixed.grid, moving.grid)
    if share < MIN_BOX_OVERLAP:
        raise ValueError(
            f"the {roles[0]} {fixed.name} (world box {_box(fixed)}) and the {roles[1]} {moving.name} (world box "
            f"{_box(moving)}) overlap by {100 * share:.1f} % of the smaller box, less than "
            f"{100 * MIN_BOX_OVERLAP:.0f} %: are they in the same world coordinates? Align their origins first "
            "(e.g. a rigid pre-alignment, or headers that place both in scanner or MNI space)."
        )


def _check_finite(ddf: torch.Tensor, bundle: TrainedModel, fixed: Volume, moving: Volume) -> None:
    """Refuse a network output with NaN or infinite values: the weights are broken, not the images (checked)."""
    bad = int((~torch.isfinite(ddf)).sum())
    if bad:
        raise ValueError(
            f"the network of bundle {bundle.name!r} (weights {bundle.weights}) gave {bad} NaN or infinite "
            f"displacement value(s) out of {ddf.numel()} for the fixed image {fixed.name} and the moving image "
            f"{moving.name}: expected finite values; are the weights damaged (NaN) or trained with other settings?"
        )


def register_volumes(
    fixed: Volume,
    moving: Volume,
    bundle: TrainedModel,
    moving_labels: Sequence[Volume] = (),
    instance_optimization: int | str | InstanceOptimizer = 0,
    timer: StageTimer | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` with a bundle's network; see the module docstring for the steps.

    Args:
        fixed: the fixed image (any grid).
        moving: the moving image (any grid; related to ``fixed`` by world coordinates).
        bundle: the network, working size and intensity transform (:func:`~monai_mine.bundle.load_trained_model`).
        moving_labels: label maps of the moving image (any grid; warped with nearest-neighbour sampling).
        instance_optimization: Adam steps per level of the bundle's ``instance_optimizer`` (0: the network alone;
            at most :data:`~monai_mine.optimization.schedule.MAX_INSTANCE_STEPS`), a preset name (``"fast"``,
            ``"balanced"``, ``"accurate"``) or a schedule ``"A/B/C"`` (the last level at full resolution; see
            :func:`~monai_mine.optimization.schedule.instance_optimization_schedule`), or an
            :class:`~monai_mine.optimization.instance.InstanceOptimizer` of one's own.
        timer: where to add the wall time of each stage (resampling, network, instance optimisation,
            full-resolution warping; :data:`~monai_mine.timing.REGISTER_STAGES`).

    Returns:
        the :class:`RegistrationResult`.

    Raises:
        ValueError: naming the inputs: world boxes that barely overlap (fixed and moving image, or a label map and
            the moving image), steps that are not a whole number within the bound, a preset or a schedule, or a
            network output with NaN
            or infinite values (naming the weights).
    """
    optimizer = instance_optimization
    if not isinstance(optimizer, InstanceOptimizer):
        schedule = instance_optimization_schedule(optimizer)
        optimizer = bundle.instance_optimizer(schedule) if schedule.refines else None
    check_overlap(fixed, moving)
    for label in moving_labels:
        check_overlap(moving, label, ("moving image", "moving label"))
    device = bundle.device
    timer = StageTimer() if timer is None else timer
    start = device_clock(device)
    with timer.stage("resampling", device):
        working = working_grid(fixed.grid, bundle.image_size)
        moving_t, fixed_t = moving.tensor(device).float(), fixed.tensor(device).float()
        moving_scaled, fixed_scaled = _scale_intensity(bundle, moving_t, fixed_t)
        moving_w = resample_to_grid(moving_scaled, moving.grid, working)[None]
        fixed_w = resample_to_grid(fixed_scaled, fixed.grid, working)[None]
    network_start = device_clock(device)
    # float32, weight layout and cuDNN algorithm choice unchanged: the DDF the evaluator computes
    predict = FastRegistration(bundle.network, device, channels_last=False, cudnn_benchmark=False)
    working_ddf = predict(torch.cat([moving_w, fixed_w], dim=1))[0].detach().float()
    _check_finite(working_ddf, bundle, fixed, moving)
    network_s = device_clock(device) - network_start
    timer.add("network", network_s)
    with timer.stage("full-resolution warping", device):
        ddf = ddf_to_grid(working_ddf, working, fixed.grid)
    instance = None
    if optimizer is not None and any(optimizer.steps):
        with timer.stage("instance optimisation", device):
            moving_on_fixed = resample_to_grid(moving_scaled, moving.grid, fixed.grid)
            refined, instance = optimizer(moving_on_fixed[None], fixed_scaled[None], ddf[None])
            ddf = refined[0]
    with timer.stage("full-resolution warping", device):
        warped = warp_to_grid(moving_t, moving.grid, ddf, fixed.grid)
        warped_labels = [
            warp_to_grid(label.tensor(device), label.grid, ddf, fixed.grid, mode="nearest") for label in moving_labels
        ]
    runtime_s = device_clock(device) - start
    return RegistrationResult(ddf, warped, warped_labels, working_ddf, working, runtime_s, network_s, instance)


@dataclass
class RegistrationReport:
    """What :func:`register_files` wrote and measured.

    Attributes:
        out_dir: the output folder.
        warped: ``warped.nii.gz`` (or ``.mha``, ``.nrrd``, ``.mgz``, ``.nii``: the fixed image's format), the moving
            image on the fixed grid.
        ddf: ``ddf.nii.gz``, (X, Y, Z, 1, 3) VECTOR NIfTI in fixed voxels, the fixed image's affine.
        jacobian: ``jacobian.nii.gz``, the Jacobian determinant of ``x + ddf(x)``.
        qc: ``qc.png``, the quality-control figure, or ``None`` when not drawn.
        warped_labels: ``warped_<label name>.nii.gz`` per moving label map, in the order given.
        runtime_s: registration wall time (see :class:`RegistrationResult`).
        network_s: the network's wall time.
        folding_percent: share of fixed voxels with Jacobian determinant <= 0, in %.
        sdlogj: standard deviation of the log Jacobian determinant.
        min_det: smallest Jacobian determinant.
        max_det: largest Jacobian determinant.
        instance: what instance optimisation did, or ``None``.
        timings: seconds per stage of this call (:data:`~monai_mine.timing.REGISTER_STAGES`: config parsing and
            model build only when the bundle was loaded here).
    """

    out_dir: Path
    warped: Path
    ddf: Path
    jacobian: Path
    qc: Path | None
    warped_labels: list[Path] = field(default_factory=list)
    runtime_s: float = 0.0
    network_s: float = 0.0
    folding_percent: float = 0.0
    sdlogj: float = 0.0
    min_det: float = 0.0
    max_det: float = 0.0
    instance: InstanceOptimization | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def timings_table(self, wall_s: float | None = None) -> str:
        """Where the time went, stage by stage (``wall_s``: the wall time to account for, e.g. since process start)."""
        timer = StageTimer()
        timer.seconds = dict(self.timings)
        return timer.table(wall_s)

    def folding_warning(self) -> str | None:
        """A warning when more than :data:`FOLDING_WARNING_PERCENT` of the voxels fold, else ``None``."""
        if not self.folding_percent > FOLDING_WARNING_PERCENT:
            return None
        remedy = (
            "fewer instance optimisation steps or a preset (fast, balanced, accurate)"
            if self.instance is not None
            else "weights trained for this kind of image, or a bundle trained with a stronger smoothness weight"
        )
        return (
            f"WARNING: the DDF folds {self.folding_percent:.2f} % of the fixed voxels (Jacobian determinant <= 0), "
            f"above {FOLDING_WARNING_PERCENT:g} %: the warped image and labels are not a one-to-one mapping there "
            f"(see jacobian.nii.gz{' and qc.png' if self.qc else ''}); try {remedy}."
        )

    def summary(self) -> str:
        """A few lines for the command line: timings, the folding share (with a warning above
        :data:`FOLDING_WARNING_PERCENT`) and other Jacobian statistics, instance optimisation."""
        lines = [
            f"registered in {self.runtime_s:.2f} s (network {self.network_s:.2f} s); outputs in {self.out_dir}",
            f"Jacobian: folding {self.folding_percent:.3f} % (det <= 0), SDlogJ {self.sdlogj:.4f}, "
            f"det in [{self.min_det:.4f}, {self.max_det:.4f}]",
        ]
        warning = self.folding_warning()
        if warning:
            lines.append(warning)
        if self.instance is not None:
            grids = ", ".join("x".join(map(str, shape)) for shape in self.instance.levels)
            lines.append(
                f"instance optimisation: {self.instance.steps} steps on grids {grids}, finest level's loss "
                f"{self.instance.loss_before:.5f} -> {self.instance.loss_after:.5f} ({self.instance.seconds:.2f} s)"
            )
        return "\n".join(lines)


def _output_paths(
    out_dir: Path, label_paths: Sequence[str], inputs: Sequence[str], suffix: str = ".nii.gz", qc: bool = True
) -> dict[str, Path]:
    paths = {
        "warped": out_dir / f"warped{suffix}",
        "ddf": out_dir / "ddf.nii.gz",
        "jacobian": out_dir / "jacobian.nii.gz",
    }
    if qc:
        paths["qc"] = out_dir / "qc.png"
    for index, label in enumerate(label_paths):
        paths[f"label{index}"] = out_dir / f"warped_{strip_suffix(Path(label).name)}{suffix}"
    names = [path.name for path in paths.values()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"moving label files would be written to the same output {repeated}: rename them.")
    resolved_inputs = {Path(os.path.realpath(path)) for path in inputs}  # a link loop is named when read
    inside = sorted(os.fspath(path) for path in resolved_inputs if Path(os.path.realpath(out_dir)) in path.parents)
    if inside:
        raise ValueError(f"input {inside} lies inside the output folder {out_dir}: choose another --out folder.")
    return paths


def _is_result_name(name: str) -> bool:
    """Whether a file name is one that :func:`register_files` writes (or a hidden temporary file of one)."""
    name = name[1:] if name.startswith(".") else name
    fixed_names = ("ddf.nii.gz", "jacobian.nii.gz", "qc.png")
    return name.startswith(fixed_names) or (name.startswith("warped") and strip_suffix(name) != name)


@dataclass
class PairInputs:
    """The volumes of one registration, read and checked by :func:`read_inputs`.

    Attributes:
        fixed: the fixed image.
        moving: the moving image.
        labels: the moving label maps, in the order given.
        reading_s: the wall time reading them took.
    """

    fixed: Volume
    moving: Volume
    labels: list[Volume]
    reading_s: float


def read_inputs(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    moving_labels: Sequence[str | os.PathLike] = (),
    assume_affine: bool = False,
) -> PairInputs:
    """Read and check the files of one registration (:func:`~monai_mine.apps.registration.io.load_volume`).

    Raises:
        FileNotFoundError, ValueError: as :func:`~monai_mine.apps.registration.io.load_volume`, naming the file.
    """
    start = time.perf_counter()
    fixed_volume = load_volume(fixed, "fixed image", assume_affine=assume_affine)
    moving_volume = load_volume(moving, "moving image", assume_affine=assume_affine)
    labels = [load_volume(path, "moving label", label=True, assume_affine=assume_affine) for path in moving_labels]
    return PairInputs(fixed_volume, moving_volume, labels, time.perf_counter() - start)


def register_files(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    bundle: str | os.PathLike | TrainedModel,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    moving_labels: Sequence[str | os.PathLike] = (),
    instance_optimization: int | str | InstanceOptimizer = 0,
    device: str | torch.device = "cpu",
    assume_affine: bool = False,
    overwrite: bool = False,
    model: str | os.PathLike | None = None,
    timer: StageTimer | None = None,
    qc: bool = True,
    inputs: PairInputs | None = None,
) -> RegistrationReport:
    """Register two image files with a bundle and write the results on the fixed image's grid.

    Writes the folder ``out_dir`` as a whole (built under a hidden name beside it and renamed into place at the
    end, so it never mixes two runs; inputs are only read): ``warped.nii.gz`` (the original
    moving image resampled once), ``ddf.nii.gz`` ((X, Y, Z, 1, 3) VECTOR NIfTI in fixed voxels,
    ``warped(x) = moving(x + ddf(x))`` with the moving image on the fixed grid; in mm it is ``L_F ddf`` with
    ``L_F`` the linear part of the fixed affine, see :func:`~monai_mine.apps.registration.physical_displacement`),
    ``warped_<label>.nii.gz`` for each moving label map, ``jacobian.nii.gz`` and ``qc.png`` (unless ``qc`` is
    false). All outputs carry the
    fixed image's affine; the warped image and labels are written in the fixed image's own format (``.mha``,
    ``.nrrd``, ``.mgz``, ``.nii``; NIfTI for a DICOM series folder), the DDF and Jacobian always as NIfTI.

    Args:
        fixed: the fixed image file.
        moving: the moving image file.
        bundle: a bundle folder (e.g. ``bundles/vtn_addd``) or an already loaded
            :class:`~monai_mine.bundle.TrainedModel` (to register many pairs without reloading).
        out_dir: the output folder.
        checkpoint: weights instead of the bundle's ``models/model.pt`` (only with a bundle folder).
        moving_labels: label map files of the moving image.
        instance_optimization: Adam steps per level of the bundle's ``instance_optimizer`` refining the DDF on
            this pair (0: the network alone), a preset (``"fast"``, ``"balanced"``, ``"accurate"``), a schedule
            ``"A/B/C"`` (the last level at full resolution), or an
            :class:`~monai_mine.optimization.instance.InstanceOptimizer`.
        device: ``"cpu"``, ``"cuda"``, ... (only with a bundle folder; a loaded bundle keeps its device).
        assume_affine: accept NIfTI inputs whose qform and sform codes are both 0, with nibabel's fallback
            affine (refused otherwise: their place in the world is unknown).
        overwrite: replace an ``out_dir`` that holds an earlier registration's results (refused otherwise, and
            always when it holds other files or an input).
        model: an exported network (``.ts``, ``.onnx``, ``.pt2`` of ``monai-mine export``) instead of the weights
            (only with a bundle folder): its record gives the working size and intensity transform
            (:func:`~monai_mine.bundle.load_trained_model` with ``model``).
        timer: where to add the wall time of each stage (:data:`~monai_mine.timing.REGISTER_STAGES`); the
            report's ``timings`` hold this call's stages either way.
        qc: draw the quality-control figure ``qc.png`` (:func:`~monai_mine.visualize.qc_figure`).
        inputs: these files' volumes when already read by :func:`read_inputs` (with the same ``moving_labels``
            and ``assume_affine``): :func:`~monai_mine.apps.registration.many.register_pairs` reads the next pair
            while one registers.

    Returns:
        a :class:`RegistrationReport` with the output paths, timings and Jacobian statistics.

    Raises:
        FileNotFoundError: naming a missing input, bundle or checkpoint.
        ValueError: naming the file for unreadable, unplaced (both header codes 0), non-3D or non-finite inputs,
            images whose world boxes barely overlap, a checkpoint that does not fit, or an exported model of an
            unknown format or without a record.
    """
    if isinstance(moving_labels, (str, os.PathLike)):
        moving_labels = [moving_labels]
    label_paths = [os.fspath(path) for path in moving_labels]
    out_dir = Path(out_dir)
    input_files = [os.fspath(fixed), os.fspath(moving), *label_paths]
    paths = _output_paths(out_dir, label_paths, input_files, output_suffix(fixed), qc)
    if not isinstance(bundle, TrainedModel):
        device = check_device(device)
    stages = StageTimer()
    if inputs is None:
        inputs = read_inputs(fixed, moving, label_paths, assume_affine)
    stages.add("reading", inputs.reading_s)
    fixed_volume, moving_volume, labels = inputs.fixed, inputs.moving, inputs.labels
    if isinstance(bundle, TrainedModel):
        if checkpoint is not None or model is not None:
            raise ValueError("checkpoint and model are for a bundle folder; this bundle is loaded already.")
    else:
        bundle = load_trained_model(bundle, checkpoint, device=device, model=model, timer=stages)
    if isinstance(instance_optimization, InstanceOptimizer):
        refines = any(instance_optimization.steps)
    else:
        refines = instance_optimization_schedule(instance_optimization).refines
    what = f"registering {fixed} ({'x'.join(map(str, fixed_volume.grid.shape))} voxels) with {moving}"
    label_voxels = sum(label.data.size for label in labels)
    needed = registration_memory(fixed_volume.data.size, label_voxels, bundle.image_size, refines)
    check_memory(needed, bundle.device, what)
    device = bundle.device
    with atomic_folder(out_dir, overwrite, _is_result_name) as staging, _out_of_memory(what):
        result = register_volumes(fixed_volume, moving_volume, bundle, labels, instance_optimization, stages)
        with stages.stage("Jacobian", device):
            jacobian = jacobian_map(result.ddf)
            stats = {key: float(value[0]) for key, value in determinant_statistics(jacobian[None]).items()}
        staged = {key: staging / path.name for key, path in paths.items()}
        with stages.stage("writing"):
            save_volume(result.warped, staged["warped"], fixed_volume)
            save_ddf(result.ddf, staged["ddf"], fixed_volume)
            save_volume(jacobian, staged["jacobian"], fixed_volume)
            for index, warped_label in enumerate(result.warped_labels):
                save_volume(warped_label, staged[f"label{index}"], fixed_volume)
        if qc:
            with stages.stage("QC figure"):
                _write_qc(fixed_volume, moving_volume, result, jacobian, staged["qc"])
        finishing = device_clock(torch.device("cpu"))
    stages.add("writing", device_clock(torch.device("cpu")) - finishing)  # the folder renamed into place
    written_labels = [paths[f"label{index}"] for index in range(len(result.warped_labels))]
    report = RegistrationReport(
        out_dir=out_dir,
        warped=paths["warped"],
        ddf=paths["ddf"],
        jacobian=paths["jacobian"],
        qc=paths.get("qc"),
        warped_labels=written_labels,
        runtime_s=result.runtime_s,
        network_s=result.network_s,
        folding_percent=stats["folding_percent"],
        sdlogj=stats["sdlogj"],
        min_det=stats["min_det"],
        max_det=stats["max_det"],
        instance=result.instance,
        timings=dict(stages.seconds),
    )
    if timer is not None:
        for name, seconds in stages.seconds.items():
            timer.add(name, seconds)
    warning = report.folding_warning()
    if warning:
        logger.warning(f"{fixed} <- {moving}: {warning}")
    return report


@contextmanager
def _out_of_memory(what: str) -> Iterator[None]:
    """Turn running out of memory (numpy's ``MemoryError``, torch's allocator errors) into a ``MemoryError`` that
    names the work and the ways out."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        allocator = isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error)
        if not isinstance(error, MemoryError) and not allocator:
            raise
        raise MemoryError(f"out of memory {what}: {WAYS_OUT}") from error


QC_VOXELS = 192
"""The QC figure is drawn from every n-th voxel, so that at most this many remain along the fixed image's longest
axis (about a panel's 200 pixels): drawing a 512^3 image costs what a 171^3 one does."""


def _write_qc(fixed: Volume, moving: Volume, result: RegistrationResult, jacobian: torch.Tensor, path: Path) -> None:
    """The QC figure on the fixed grid (every n-th voxel, :data:`QC_VOXELS`), shown in the closest RAS orientation
    with true voxel proportions."""
    from monai_mine.visualize import qc_figure

    step = int(np.ceil(max(fixed.grid.shape) / QC_VOXELS))
    every = (slice(None, None, step),) * 3
    grid = Grid(fixed.data[every].shape, fixed.grid.affine @ np.diag([step, step, step, 1.0]))
    moving_on_grid = resample_to_grid(moving.tensor(result.ddf.device).float(), moving.grid, grid)
    arrays = {
        "fixed": fixed.data[every],
        "moving": moving_on_grid[0].cpu().numpy(),
        "warped": result.warped[0][every].cpu().numpy(),
        "jacobian": jacobian[0][every].cpu().numpy(),
    }
    oriented = {name: to_closest_ras(array, grid)[0] for name, array in arrays.items()}
    ddf, spacing = to_closest_ras(result.ddf[(slice(None), *every)].cpu().numpy() / step, grid, vector=True)
    qc_figure(
        oriented["fixed"], oriented["moving"], oriented["warped"], ddf, oriented["jacobian"], path, spacing=spacing
    )
