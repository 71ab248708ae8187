# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Evaluator handlers that write results per pair: NIfTI outputs (inference) and metric tables (evaluation)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_mine.io.atomic import atomic_folder, atomic_write_text
from monai_mine.io.formats import strip_suffix
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import LABEL_KEYS
from monai_mine.metrics import dice_per_label, registration_metrics

__all__ = ["RegistrationMetricsWriter", "RegistrationWriter", "pair_name", "voxel_spacing"]

OUTPUTS = ("warped", "ddf", "warped_label")


def _stem(image: torch.Tensor, fallback: str) -> str:
    source = str((getattr(image, "meta", None) or {}).get("filename_or_obj", "") or "")
    return strip_suffix(os.path.basename(source)) or fallback


def pair_name(item: dict, index: int) -> str:
    """``<moving file stem>_to_<fixed file stem>``, or ``pair<index>`` without file names."""
    moving, fixed = _stem(item["moving"], ""), _stem(item["fixed"], "")
    return f"{moving}_to_{fixed}" if moving and fixed else f"pair{index}"


def _affine(image: torch.Tensor) -> np.ndarray:
    affine = (getattr(image, "meta", None) or {}).get("affine")
    return np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).cpu(), dtype=np.float64)


def voxel_spacing(image: torch.Tensor) -> tuple[float, float, float]:
    """Voxel size in mm from a MetaTensor's affine (column norms); 1 mm without meta data."""
    return tuple(float(value) for value in np.linalg.norm(_affine(image)[:3, :3], axis=0))


class RegistrationWriter:
    """Writes, per pair, the warped moving image, the DDF (X, Y, Z, 3, voxels) and the warped moving labels as
    NIfTI with the fixed image's affine, named ``<moving>_to_<fixed>_<output>.nii.gz``.

    The folder is whole or absent: a run writes into a hidden folder beside ``output_dir``, which replaces
    ``output_dir`` as a whole when the run completes (an earlier run's results included); a failed run removes it,
    a killed one leaves at most that hidden folder. A folder holding other files than this writer's is refused.
    List it before handlers that re-raise an engine's exception (``StatsHandler``): Ignite stops at the first
    exception handler that raises, and this one cleans up, then raises.
    """

    def __init__(self, output_dir: str | os.PathLike, outputs: Sequence[str] = OUTPUTS) -> None:
        """
        Args:
            output_dir: the folder to write (created, or replaced as a whole).
            outputs: any of ``"warped"``, ``"ddf"``, ``"warped_label"`` (skipped for pairs without labels).
        """
        unknown = sorted(set(outputs) - set(OUTPUTS))
        if unknown:
            raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}.")
        self.output_dir = Path(output_dir)
        self.outputs = tuple(outputs)
        self.written: list[Path] = []
        self.pairs_written = 0
        self._run = ExitStack()
        self._staging: Path | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.finish)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.abort)

    @staticmethod
    def is_output_name(name: str) -> bool:
        """Whether a file name is one this writer writes."""
        return name.endswith(tuple(f"_{output}.nii.gz" for output in OUTPUTS))

    def reset(self, engine: Engine | None = None) -> None:
        """Start a run: a new hidden staging folder beside ``output_dir`` (an unfinished run's is dropped)."""
        self._discard()
        self.written.clear()
        self.pairs_written = 0
        self._staging = self._run.enter_context(atomic_folder(self.output_dir, True, self.is_output_name))

    def __call__(self, engine: Engine) -> None:
        if self._staging is None:
            self.reset()
        for item in engine.state.output:
            name, affine = pair_name(item, self.pairs_written), _affine(item["fixed"])
            self.pairs_written += 1
            arrays = {"warped": item["warped"], "ddf": item["pred"], "warped_label": item.get("warped_label")}
            for output in self.outputs:
                if arrays[output] is None:
                    continue
                data = arrays[output].detach().cpu()
                if output == "warped_label":
                    data = data.round().to(torch.int32)
                file_name = f"{name}_{output}.nii.gz"
                try:
                    save_nifti(data, self._staging / file_name, affine)
                except OSError as error:  # name the file the user will look for, not the staging copy
                    if error.errno is None:
                        raise
                    reason = f"(in folder {self.output_dir}): {os.strerror(error.errno)}"
                    raise OSError(error.errno, f"cannot write {self.output_dir / file_name} {reason}") from error
                self.written.append(self.output_dir / file_name)

    def finish(self, engine: Engine | None = None) -> None:
        """End a run: the staging folder becomes ``output_dir``."""
        self._staging = None
        self._run.close()

    def abort(self, engine: Engine, error: BaseException) -> None:
        """A failed run: the staging folder is removed, ``output_dir`` stays as it was, the error goes on."""
        self._discard()
        raise error

    def _discard(self) -> None:
        """Remove an unfinished run's staging folder (never rename it into place)."""
        if self._staging is None:
            return
        self._staging = None
        abandoned = RuntimeError("the run did not complete")
        try:
            self._run.__exit__(RuntimeError, abandoned, None)
        except RuntimeError as error:
            if error is not abandoned:
                raise
        self._run = ExitStack()


class RegistrationMetricsWriter:
    """Computes per-pair registration metrics and writes ``metrics.csv`` (one row per pair) and
    ``metrics_summary.json`` (mean, std, median, min, max per metric) at the end, both atomically.

    Per pair: ``dice_before`` (identity transform), ``dice``, ``iou``, ``hd95``, ``asd`` (mm, from the fixed
    image's voxel size), per-label Dice, ``folding_percent``, ``sdlogj``, ``min_det``, ``max_det`` and
    ``runtime_s`` (network time).

    Not MONAI's ``MetricsSaver``: that writes Ignite metrics (``engine.state.metric_details``), one
    ``<metric>_raw.csv`` per metric with ``class<i>`` columns rounded to 4 decimals, in place; this table's values
    are computed here per pair by :func:`~monai_mine.metrics.registration_metrics`, one row per pair named
    ``<moving>_to_<fixed>``, and a failed write keeps the previous table.
    """

    def __init__(self, output_dir: str | os.PathLike, csv_name: str = "metrics.csv") -> None:
        self.output_dir = Path(output_dir)
        self.csv_name = csv_name
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            row = {"pair": pair_name(item, len(self.rows)), "runtime_s": float(item["runtime"])}
            labels = {key: item.get(key) for key in (*LABEL_KEYS, "warped_label")}
            ddf = torch.as_tensor(item["pred"])[None].float()
            if all(value is not None for value in labels.values()):
                moving, fixed, warped = (torch.as_tensor(labels[key])[None].round().long() for key in labels)
                row["dice_before"] = float(torch.nanmean(dice_per_label(moving, fixed)))
                metrics = registration_metrics(ddf, warped, fixed, spacing=voxel_spacing(item["fixed"]))[0]
            else:
                metrics = registration_metrics(ddf)[0]
            row.update({key: float(value) for key, value in metrics.items()})
            self.rows.append(row)

    def write(self, engine: Engine | None = None) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.output_dir / self.csv_name, table.getvalue())
        summary = {"num_pairs": len(self.rows), "metrics": {}}
        for column in columns[1:]:
            values = np.array([row[column] for row in self.rows if column in row], dtype=np.float64)
            finite = values[np.isfinite(values)]
            summary["metrics"][column] = {
                "mean": float(finite.mean()) if finite.size else math.nan,
                "std": float(finite.std()) if finite.size else math.nan,
                "median": float(np.median(finite)) if finite.size else math.nan,
                "min": float(finite.min()) if finite.size else math.nan,
                "max": float(finite.max()) if finite.size else math.nan,
                "count": int(finite.size),
            }
        summary_path = self.output_dir / (Path(self.csv_name).stem + "_summary.json")
        atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
