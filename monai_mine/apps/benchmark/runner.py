# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The real-image benchmark end to end: template, pairs, checkpoints, every method on every pair, the report.

Outputs in ``out_dir`` (small files, commit-ready): ``results.md`` (the tables and how they were made),
``results.json`` (settings, machine, training budgets, every score of every pair and the summary),
``boxplots_<track>.png`` and ``pair_<track>.png``. Bulky intermediate files (training pairs, checkpoints, each
pair's NIfTI files for the bundles) go to ``work_dir``. ``results.json`` is rewritten after every pair, so a long
run shows its progress and keeps what it measured if it is stopped.

A ``ground_truth`` row scores the true DDF with the same pipeline: the ceiling that resampling the labels sets
(it is not a method and has no runtime).
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from monai_mine.apps.benchmark.classical import itk_threads
from monai_mine.apps.benchmark.evaluation import score_pair
from monai_mine.apps.benchmark.methods import (
    BUNDLE_METHODS,
    CLASSICAL_METHODS,
    DEFAULT_METHODS,
    INSTANCE_METHODS,
    INSTANCE_SUFFIX,
    BundleMethod,
    MethodRun,
    base_method,
    classical_method,
    identity_instance_method,
)
from monai_mine.apps.benchmark.pairs import TRACKS, make_pair, pair_seed
from monai_mine.apps.benchmark.report import summarize, track_table, write_box_plots, write_json, write_pair_figure
from monai_mine.apps.benchmark.training import train_bundle, write_training_datalist
from monai_mine.apps.template import build_template
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io.atomic import atomic_write_text

__all__ = ["GROUND_TRUTH", "parse_checkpoints", "parse_names", "run_benchmark"]

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground_truth"


def parse_names(value: str | Sequence[str], allowed: Sequence[str], name: str) -> list[str]:
    """A comma-separated string or a sequence of names, checked against ``allowed`` (order kept, no repeats).

    Raises:
        ValueError: naming the argument, on an unknown or repeated name or an empty list.
    """
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    names = [entry for entry in names if entry]
    unknown = [entry for entry in names if entry not in allowed]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"--{name} must list distinct names among {list(allowed)}, got {value!r}.")
    return names


def parse_checkpoints(value: str | Mapping[str, str] | None, tracks: Sequence[str]) -> dict[tuple[str, str], Path]:
    """Checkpoints given as arguments: ``{(bundle, track): path}``.

    Accepts a mapping or a comma-separated string of ``bundle=path`` (every track) and ``bundle/track=path``
    entries, e.g. ``"vtn_addd/mono=a.pt,miregnet=b.pt"``.

    Raises:
        ValueError: on a malformed entry or an unknown bundle or track.
        FileNotFoundError: on a checkpoint file that does not exist.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        entries = {}
        for part in value.split(","):
            key, separator, path = part.partition("=")
            if not separator or not key.strip() or not path.strip():
                raise ValueError(f"--checkpoints entry {part!r} must read bundle=PATH or bundle/track=PATH.")
            entries[key.strip()] = path.strip()
        value = entries
    result = {}
    for key, path in value.items():
        bundle, _, track = str(key).partition("/")
        if bundle not in BUNDLE_METHODS or (track and track not in TRACKS):
            raise ValueError(
                f"--checkpoints key {key!r} must be a bundle among {list(BUNDLE_METHODS)}, optionally followed by "
                f"/track with a track among {list(TRACKS)}."
            )
        if not Path(path).is_file():
            raise FileNotFoundError(f"--checkpoints: checkpoint {path} for {key!r} does not exist.")
        for name in [track] if track else tracks:
            result[(bundle, name)] = Path(path)
    return result


def _machine() -> dict:
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": processor,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "itk_threads": itk_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _write_markdown(out_dir: Path, summary: Mapping, settings: Mapping, training: Mapping) -> Path:
    lines = [
        "# Real-image benchmark: ICBM152 template pairs",
        "",
        f"Command: `{settings['command']}`",
        "",
        f"Date: {settings['date']}; machine: {settings['machine']['cpu']}, {settings['machine']['cores']} cores; "
        f"torch threads {settings['machine']['torch_threads']}, ITK threads {settings['machine']['itk_threads']}; "
        f"load average at the start {settings['machine']['load_average']}.",
        "",
        f"Template {settings['size']}^3 at {settings['spacing_mm']:.2f} mm; {settings['pairs']} test pairs per track "
        f"(seed {settings['seed']}); every cell is mean (std) over the pairs. Dice/IoU/HD95/ASD on the CSF/GM/WM "
        "labels warped with nearest-neighbour sampling; displacement error inside the brain mask; folding and "
        "SDlogJ of the whole DDF; time = wall time of one registration on this machine.",
        "",
    ]
    if training:
        lines += ["Checkpoints of the bundles:", ""]
        for key, entry in training.items():
            if "checkpoint_argument" in entry:
                lines.append(f"- {key}: given as an argument ({entry['checkpoint_argument']})")
            else:
                lines.append(
                    f"- {key}: trained here for a {entry['minutes']} min budget ({entry['seconds']:.0f} s, "
                    f"{entry['iterations']} iterations, epochs {entry['epochs']}) on {entry['training_pairs']} "
                    f"training / {entry['validation_pairs']} validation pairs at {entry['image_size']}^3"
                )
        lines.append("")
    for track in summary:
        lines += [f"## Track {track}", "", track_table(summary, track)]
    return atomic_write_text(out_dir / "results.md", "\n".join(lines))


def run_benchmark(
    out_dir: str | os.PathLike,
    size: int = 128,
    pairs: int = 4,
    tracks: str | Sequence[str] = TRACKS,
    methods: str | Sequence[str] = DEFAULT_METHODS,
    checkpoints: str | Mapping[str, str] | None = None,
    train_minutes: float = 2.0,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    training_pairs: int = 32,
    validation_pairs: int = 4,
    image_size: int = 64,
    instance_optimization: int | str = 50,
    command: str | None = None,
) -> dict:
    """Run the benchmark and write its outputs (see the module docstring).

    Args:
        out_dir: folder for the results (created).
        size: template grid edge (128: 1.5 mm voxels).
        pairs: test pairs per track.
        tracks: ``"mono"``, ``"multimodal"`` or both (comma-separated or a sequence).
        methods: among :data:`~monai_mine.apps.benchmark.methods.CLASSICAL_METHODS`, the bundles and
            :data:`~monai_mine.apps.benchmark.methods.INSTANCE_METHODS` (a bundle's ``+io`` uses its checkpoint);
            default :data:`~monai_mine.apps.benchmark.methods.DEFAULT_METHODS`.
        checkpoints: bundle checkpoints given as arguments (:func:`parse_checkpoints`); a bundle without one is
            trained here on benchmark-style pairs for ``train_minutes`` per track.
        train_minutes: wall-clock training budget per bundle and track.
        seed: the benchmark seed (test, training and validation pairs get disjoint seeds from it).
        work_dir: folder for training data, checkpoints and per-pair files; default ``<out_dir>/work``.
        training_pairs: training pairs per track when a bundle is trained here.
        validation_pairs: validation pairs per track (best-checkpoint selection).
        image_size: the bundles' working grid edge, in training and registration.
        instance_optimization: Adam steps per level of the ``+io`` methods, a preset or a schedule ``A/B/C``
            (:func:`~monai_mine.optimization.schedule.instance_optimization_schedule`).
        command: the command line to record; default ``sys.argv``.

    Returns:
        the content of ``results.json``.

    Raises:
        ValueError: on unknown tracks or methods, fewer than one pair, or a non-positive training budget.
    """
    track_list = parse_names(tracks, TRACKS, "tracks")
    method_list = parse_names(methods, (*CLASSICAL_METHODS, *BUNDLE_METHODS, *INSTANCE_METHODS), "methods")
    given = parse_checkpoints(checkpoints, track_list)
    if int(pairs) < 1:
        raise ValueError(f"--pairs must be at least 1, got {pairs}.")
    from monai_mine.optimization.schedule import instance_optimization_schedule

    schedule = instance_optimization_schedule(instance_optimization)
    if not schedule.refines and any(method in INSTANCE_METHODS for method in method_list):
        raise ValueError(
            f"--instance_optimization must be at least 1 step for +io methods, got {instance_optimization}."
        )
    bundles = list(dict.fromkeys(base_method(m) for m in method_list if base_method(m) in BUNDLE_METHODS))
    if any((bundle, track) not in given for bundle in bundles for track in track_list) and not train_minutes > 0:
        raise ValueError(f"--train_minutes must be positive to train bundles without checkpoints, got {train_minutes}.")
    out_dir = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out_dir / "work"
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    template = build_template(size)
    settings = {
        "command": command or " ".join(["monai-mine", *sys.argv[1:]]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": _machine(),
        "size": int(size),
        "spacing_mm": float(template.spacing[0]),
        "pairs": int(pairs),
        "tracks": track_list,
        "methods": method_list,
        "seed": int(seed),
        "train_minutes": float(train_minutes),
        "image_size": int(image_size),
        "instance_optimization": str(schedule) if schedule.full_resolution else schedule.value,
    }
    records: list[dict] = []
    training: dict[str, dict] = {}

    def save_progress() -> dict:
        content = {
            "settings": settings,
            "training": training,
            "records": records,
            "summary": summarize(records),
            "elapsed_s": time.perf_counter() - start,
        }
        write_json(out_dir / "results.json", content)
        return content

    for track in track_list:
        runners = {name: classical_method(name) for name in method_list if name in CLASSICAL_METHODS}
        if f"identity{INSTANCE_SUFFIX}" in method_list:
            runners[f"identity{INSTANCE_SUFFIX}"] = identity_instance_method(schedule)
        if bundles and any((bundle, track) not in given for bundle in bundles):
            datalist = write_training_datalist(
                template, track, work / "training" / track, training_pairs, validation_pairs, seed
            )
        for bundle in bundles:
            key = f"{bundle}/{track}"
            if (bundle, track) in given:
                checkpoint = given[(bundle, track)]
                training[key] = {"checkpoint_argument": os.fspath(checkpoint)}
            else:
                logger.info(f"training {key} for {train_minutes} min")
                folder = work / "training" / track / bundle
                result = train_bundle(shipped_bundle_dir(bundle), datalist, folder, train_minutes, seed, image_size)
                checkpoint = result.checkpoint
                training[key] = {
                    "minutes": float(train_minutes),
                    "seconds": result.seconds,
                    "epochs": result.epochs,
                    "iterations": result.iterations,
                    "training_pairs": int(training_pairs),
                    "validation_pairs": int(validation_pairs),
                    "image_size": int(image_size),
                }
            for method in (bundle, f"{bundle}{INSTANCE_SUFFIX}"):
                if method in method_list:
                    steps = schedule if method != bundle else 0
                    runners[method] = BundleMethod(
                        shipped_bundle_dir(bundle), checkpoint, work / "pairs", image_size, instance_optimization=steps
                    )
            save_progress()

        for index in range(int(pairs)):
            pair = make_pair(template, track, pair_seed(seed, track, "test", index))
            ddfs = {}
            for method in method_list:
                logger.info(f"{track} pair {index}: {method}")
                run = runners[method](pair)
                records.append({"track": track, "method": method, "pair": index, **score_pair(pair, run)})
                if index == 0:
                    ddfs[method] = run.ddf
            truth = score_pair(pair, MethodRun(pair.ground_truth, float("nan")))
            records.append({"track": track, "method": GROUND_TRUTH, "pair": index, **truth})
            save_progress()
            if index == 0:
                write_pair_figure(pair, ddfs, out_dir / f"pair_{track}.png")
        write_box_plots(records, track, out_dir / f"boxplots_{track}.png", method_list)

    content = save_progress()
    _write_markdown(out_dir, content["summary"], settings, training)
    return content
