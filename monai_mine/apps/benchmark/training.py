# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Checkpoints for the benchmark: benchmark-style training pairs written as NIfTI + datalist, and a bundle trained on
them for a wall-clock budget.

The training and validation pairs are made exactly as the test pairs (:func:`~monai_mine.apps.benchmark.pairs.
deform_template`, same bounds, same grid) but with disjoint seeds (:func:`~monai_mine.apps.benchmark.pairs.pair_seed`).
Training runs the bundle's own ``configs/train.json`` through MONAI's ``ConfigWorkflow`` with overrides only for
the data (``datalist``), the output folders, the seed and the length: every epoch is validated (``val_interval``
1; ``models/model.pt`` keeps the best validation Dice) and :class:`TimeBudget` ends training once the budget is
spent. A bundle trained in phases (MIRegNet: AffineNet, then DeformNet) gives each phase an equal share of the
budget unless told other shares, time left over by one phase passes to the next.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ignite.engine import Engine, Events

from monai_mine.apps.benchmark.pairs import deform_template, pair_seed
from monai_mine.apps.template import BrainTemplate
from monai_mine.engines.stage_schedule import StageSchedule
from monai_mine.io.atomic import atomic_write_text
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL

__all__ = ["TimeBudget", "TrainingResult", "train_bundle", "training_chain", "write_training_datalist"]

logger = logging.getLogger(__name__)

_OPEN_ENDED_EPOCHS = 10_000  # the budget, not the epoch count, ends training


def training_chain(record: Mapping, follow: Sequence[str] = ("resumed_from",)) -> list[Mapping]:
    """A training run's records (``benchmarks/train_weights.py``'s ``entry.json``), first to last.

    Each record holds the one it continued: ``resumed_from`` (a ``--resume`` segment of one training) or
    ``initialised_from`` (a new training started from those weights; a path where no record was found).

    Args:
        record: the last run's record.
        follow: the keys that lead to the run before, the first one a record has is followed.
    """
    earlier = next((record[key] for key in follow if key in record), None)
    return [*training_chain(earlier, follow), record] if isinstance(earlier, Mapping) else [record]


def write_training_datalist(
    template: BrainTemplate,
    track: str,
    folder: str | os.PathLike,
    num_training: int = 32,
    num_validation: int = 4,
    seed: int = 0,
) -> Path:
    """Write benchmark-style training and validation pairs of a track as NIfTI files plus ``datalist.json``.

    The fixed image and its labels are the template (written once, ``fixed_image.nii.gz`` and
    ``fixed_label.nii.gz``); each item adds ``moving_image`` and ``moving_label``. An existing ``datalist.json`` with
    the same specification is reused.

    Args:
        template: the benchmark's template.
        track: ``"mono"`` or ``"multimodal"``.
        folder: where to write (created).
        num_training: training pairs.
        num_validation: validation pairs.
        seed: the benchmark seed; pair seeds are :func:`~monai_mine.apps.benchmark.pairs.pair_seed` of the ``training``
            and ``validation`` splits, disjoint from the test pairs'.

    Returns:
        the path of ``datalist.json``.

    Raises:
        ValueError: on fewer than one pair in a split or an unknown track.
    """
    if num_training < 1 or num_validation < 1:
        raise ValueError(f"need at least one training and one validation pair, got {num_training}, {num_validation}.")
    folder = Path(folder)
    datalist_path = folder / "datalist.json"
    spec = {
        "track": track,
        "size": int(template.t1.shape[0]),
        "seed": int(seed),
        "training": int(num_training),
        "validation": int(num_validation),
    }
    if datalist_path.is_file() and json.loads(datalist_path.read_text()).get("spec") == spec:
        return datalist_path
    save_nifti(template.t1, folder / "fixed_image.nii.gz", template.affine)
    save_nifti(template.labels, folder / "fixed_label.nii.gz", template.affine)
    datalist: dict = {"spec": spec}
    for split, count in (("training", num_training), ("validation", num_validation)):
        items = []
        for index in range(count):
            _, moving, moving_label = deform_template(template, track, pair_seed(seed, track, split, index))
            name = f"{split}_{index:03d}"
            save_nifti(moving, folder / f"{name}_moving_image.nii.gz", template.affine)
            save_nifti(moving_label, folder / f"{name}_moving_label.nii.gz", template.affine)
            items.append(
                {
                    FIXED_IMAGE: "fixed_image.nii.gz",
                    MOVING_IMAGE: f"{name}_moving_image.nii.gz",
                    FIXED_LABEL: "fixed_label.nii.gz",
                    MOVING_LABEL: f"{name}_moving_label.nii.gz",
                }
            )
        datalist[split] = items
    atomic_write_text(datalist_path, json.dumps(datalist, indent=2))
    return datalist_path


class TimeBudget:
    """Ends a training once a wall-clock budget is spent, the last epoch cut short and still validated.

    After each iteration, if one more iteration and a validation (timed at the previous epoch's end; 0 before the
    first) would pass the deadline, the epoch is ended there (``Engine.terminate_epoch``: its ``EPOCH_COMPLETED``
    handlers, validation included, still run) and training stops after it. With a
    :class:`~monai_mine.engines.StageSchedule` the budget is split over its phases in proportion to ``shares``
    (default: their configured epochs), each phase ending at its cumulative share (its epoch count in the schedule
    set to what it ran, so the next phase starts at the next epoch); every phase runs at least one iteration.
    """

    def __init__(
        self, seconds: float, schedule: StageSchedule | None = None, shares: Sequence[float] | None = None
    ) -> None:
        """
        Args:
            seconds: the budget, wall-clock seconds (positive), counted from the trainer's start.
            schedule: the trainer's stage schedule, if the bundle trains in phases.
            shares: the phases' relative shares of the budget, one positive number per phase of ``schedule``.

        Raises:
            ValueError: on a budget that is not positive, or shares without a schedule, of another length than
                its phases, or not positive.
        """
        if not seconds > 0:
            raise ValueError(f"the training budget must be positive seconds, got {seconds}.")
        self.seconds = float(seconds)
        self.schedule = schedule
        if shares is None:
            shares = [phase["epochs"] for phase in schedule.phases] if schedule is not None else [1.0]
        elif schedule is None or len(shares) != len(schedule.phases) or not all(share > 0 for share in shares):
            phases = "no phases" if schedule is None else f"{len(schedule.phases)} phase(s)"
            raise ValueError(f"phase shares must be one positive number per phase ({phases}), got {list(shares)}.")
        self.weights = [float(share) for share in shares]
        self.start = 0.0
        self.last = 0.0
        self.validation_s = 0.0
        self.ending = False
        self.elapsed = 0.0

    def attach(self, engine: Engine) -> None:
        """Attach to the trainer after its other handlers, so that an epoch's end includes its validation."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self.start = time.perf_counter()

    def _epoch_started(self, engine: Engine) -> None:
        self.last = time.perf_counter()

    def _deadline(self) -> float:
        """Seconds from the start at which the current phase (or the whole training) must end."""
        if self.schedule is None:
            return self.seconds
        phase = self.schedule.current_phase
        return self.seconds * sum(self.weights[: phase + 1]) / sum(self.weights)

    def _iteration_completed(self, engine: Engine) -> None:
        now = time.perf_counter()
        step, self.last = now - self.last, now
        if not self.ending and now - self.start + step + self.validation_s > self._deadline():
            self.ending = True
            engine.terminate_epoch()

    def _epoch_completed(self, engine: Engine) -> None:
        self.validation_s = time.perf_counter() - self.last  # the epoch-end handlers that ran before this one
        if not self.ending:
            return
        self.ending = False
        if self.schedule is None:
            engine.state.max_epochs = engine.state.epoch
            return
        phase = self.schedule.current_phase
        done_before = sum(entry["epochs"] for entry in self.schedule.phases[:phase])
        self.schedule.phases[phase]["epochs"] = engine.state.epoch - done_before
        # the trainer's length follows the schedule: the end of training after the last phase
        engine.state.max_epochs = (
            self.schedule.total_epochs if phase < len(self.schedule.phases) - 1 else engine.state.epoch
        )
        logger.info(f"time budget: phase {phase} ends after {self.schedule.phases[phase]['epochs']} epoch(s)")

    def _completed(self, engine: Engine) -> None:
        self.elapsed = time.perf_counter() - self.start


@dataclass
class TrainingResult:
    """A checkpoint trained by :func:`train_bundle`.

    Attributes:
        checkpoint: ``models/model.pt`` (network weights, best validation epoch).
        epochs: epochs run since the first segment (per phase for a phased bundle; the last epoch of each may be
            cut short).
        iterations: training iterations run by this call.
        seconds: wall time of the training run (data caching excluded).
    """

    checkpoint: Path
    epochs: list[int]
    iterations: int
    seconds: float


def train_bundle(
    bundle_dir: str | os.PathLike,
    datalist: str | os.PathLike,
    out_dir: str | os.PathLike,
    minutes: float,
    seed: int = 0,
    image_size: int = 64,
    overrides: Mapping[str, object] | None = None,
    resume: bool = False,
    phase_shares: Sequence[float] | None = None,
) -> TrainingResult:
    """Train a bundle on a datalist for a wall-clock budget with its own ``configs/train.json``.

    The full training state (network, optimiser, scheduler, best validation value, trainer position) is saved to
    ``out_dir/models/checkpoint.pt`` at every epoch's end and at the end; ``resume`` continues from it for another
    budget (a segment of a longer training, or a run that was killed).

    Args:
        bundle_dir: the bundle's folder, e.g. ``bundles/vtn_addd``.
        datalist: the datalist JSON (:func:`write_training_datalist`).
        out_dir: receives ``models/`` (``model.pt``, ``checkpoint.pt``), ``runs/`` (TensorBoard) and ``eval/``; the
            bundle's own folders are not touched.
        minutes: the training budget (see :class:`TimeBudget`).
        seed: the training seed.
        image_size: the working grid edge (the bundles' default is 64).
        overrides: further config overrides (ids to values, e.g. an overlay's content such as
            ``configs/augment.json``); the data, folders, seed and length above take precedence.
        resume: continue the training saved in ``out_dir/models/checkpoint.pt``.
        phase_shares: for a bundle trained in phases, their relative shares of the budget (default: equal).

    Returns:
        the :class:`TrainingResult` of this call (a resumed training counts only the iterations it adds).

    Raises:
        FileNotFoundError: when the bundle's configs or the datalist do not exist, or ``resume`` finds no
            checkpoint.
        ValueError: on ``phase_shares`` that do not fit the bundle's phases (see :class:`TimeBudget`).
    """
    from monai.bundle import ConfigWorkflow

    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    config = bundle_dir / "configs" / "train.json"
    for path in (config, Path(datalist)):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist.")
    checkpoint = out_dir / "models" / "checkpoint.pt"
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: no training checkpoint at {checkpoint}.")
    overrides = {
        **(overrides or {}),
        "datalist": os.fspath(Path(datalist).resolve()),
        "ckpt_dir": os.fspath(out_dir / "models"),
        "tensorboard_dir": os.fspath(out_dir / "runs"),
        "output_dir": os.fspath(out_dir / "eval"),
        "seed": int(seed),
        "image_size": int(image_size),
        "val_interval": 1,
        "checkpoint_interval": _OPEN_ENDED_EPOCHS,
        "resume": bool(resume),
    }
    phased = "stage_schedule" in json.loads(config.read_text())
    if phased:
        overrides.update(affine_epochs=_OPEN_ENDED_EPOCHS, deform_epochs=_OPEN_ENDED_EPOCHS)
    else:
        overrides["max_epochs"] = _OPEN_ENDED_EPOCHS
    workflow = ConfigWorkflow(
        config_file=os.fspath(config),
        meta_file=os.fspath(bundle_dir / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type="train",
        bundle_root=os.fspath(bundle_dir),
        **overrides,
    )
    workflow.initialize()  # loads the checkpoint when resuming
    resumed_at = int(workflow.trainer.state.iteration)
    schedule = workflow.parser.get_parsed_content("stage_schedule") if phased else None
    budget = TimeBudget(60.0 * float(minutes), schedule, phase_shares)
    budget.attach(workflow.trainer)
    workflow.run()
    workflow.finalize()
    epochs = [phase["epochs"] for phase in schedule.phases] if schedule else [workflow.trainer.state.epoch]
    iterations = int(workflow.trainer.state.iteration) - resumed_at
    return TrainingResult(out_dir / "models" / "model.pt", epochs, iterations, budget.elapsed)
