# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Train the weights a bundle ships (``bundles/<bundle>/models/model.pt``) on the brain benchmark's distribution.

The data is the ICBM152 template (fixed) and copies of it under random affine + smooth transforms (moving), made
exactly as the benchmark's pairs but with seeds disjoint from its test pairs
(:func:`monai_mine.apps.benchmark.write_training_datalist`), at 128^3 (1.5 mm); the bundle's own ``train.json`` runs
on them with the overlays given (by default ``configs/augment.json``: every iteration warps the moving image
once more by a new random transform, so no pair repeats), for a wall-clock budget, keeping the weights of the
best validation Dice. The weights and their model record (``model.pt``, ``model_config.json``) replace the
bundle's, and the run is recorded in ``benchmarks/results/shipped_weights.json`` (command, machine, data,
iterations, wall time, validation Dice and its curve) for the bundle's model card, the curves drawn in
``benchmarks/results/shipped_weights.png``; the same record is written to ``<work_dir>/entry.json`` (also with
``--no_install``, for comparisons such as ``benchmarks/training_comparison.py``)::

    python benchmarks/train_weights.py --bundle vtn_addd --track mono --minutes 45
    python benchmarks/train_weights.py --bundle miregnet --track multimodal --minutes 45 \\
        --overlays configs/augment.json,configs/augment_contrast.json

A long training runs in segments: ``--resume`` continues the training saved in ``--work_dir`` (network, optimiser,
scheduler, best validation value, position) for another ``--minutes``, and the segment's record keeps the one
before it (``resumed_from``); a segment killed midway resumes from its last epoch::

    python benchmarks/train_weights.py --bundle vtn_addd --track mono --minutes 60 --work_dir runs/vtn --no_install
    python benchmarks/train_weights.py --bundle vtn_addd --track mono --minutes 60 --work_dir runs/vtn --resume
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from monai_mine.apps.benchmark.training import train_bundle, training_chain, write_training_datalist
from monai_mine.apps.template import build_template
from monai_mine.bundle import read_weights, shipped_bundle_dir
from monai_mine.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "shipped_weights.json"


def read_overlays(paths: list[str]) -> dict:
    """The overrides of overlay files (JSON objects of config ids), later files winning."""
    overrides: dict = {}
    for path in paths:
        content = json.loads((ROOT / path).read_text() if not Path(path).is_file() else Path(path).read_text())
        if not isinstance(content, dict):
            raise ValueError(f"overlay {path} must hold a JSON object of config ids, got {type(content).__name__}.")
        overrides.update(content)
    return overrides


def best_validation_score(models: Path) -> float | None:
    """The validation Dice the saved weights reached, from their model record."""
    record = json.loads((models / "model_config.json").read_text())
    return record["training"].get("validation", {}).get("val_score")


def event_files(runs: Path) -> set[Path]:
    """The TensorBoard event files in ``runs`` (each training run, or segment of one, writes its own)."""
    return set(runs.glob("events.out.tfevents.*"))


def validation_curve(files: set[Path]) -> list[dict]:
    """Validation Dice of a run against training iterations and wall time, from its TensorBoard event files.

    Each validation (``val_score``) is placed at the last training iteration logged before it; seconds count from
    the first logged iteration.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list] = {}
    for events in sorted(files):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in ("loss", "val_score"):
            if tag in accumulator.Tags()["scalars"]:
                scalars.setdefault(tag, []).extend(accumulator.Scalars(tag))
    losses = sorted(scalars.get("loss", []), key=lambda event: event.wall_time)
    if not losses:
        return []
    start = losses[0].wall_time
    curve = []
    for event in sorted(scalars.get("val_score", []), key=lambda event: event.wall_time):
        before = [loss.step for loss in losses if loss.wall_time <= event.wall_time]
        curve.append(
            {"iteration": max(before, default=0), "seconds": round(event.wall_time - start, 1), "dice": event.value}
        )
    return curve


def plot_curves(runs: dict, path: Path) -> None:
    """Validation Dice against training minutes, one line per shipped model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, run in sorted(runs.items()):
        minutes, dice = [], []
        for stage in training_chain(run, ("initialised_from", "resumed_from")):
            offset = minutes[-1] if minutes else 0.0
            minutes += [offset + point["seconds"] / 60 for point in stage.get("validation_curve", [])]
            dice += [point["dice"] for point in stage.get("validation_curve", [])]
        if minutes:
            axis.plot(minutes, dice, label=f"{name} ({run['track']})")
    axis.set_xlabel("training wall time (min)")
    axis.set_ylabel("validation mean label Dice")
    axis.set_title("Shipped weights: training on the brain benchmark distribution")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def start_from(bundle_dir: Path, weights: Path) -> list[str]:
    """The bundle's ``initialize`` expressions followed by loading ``weights`` into its network (read as weights
    only: no code from the file runs); a copy is taken first, so the run may replace the file."""
    read_weights(weights)  # refuse an unreadable file before any data is made
    copy = Path(tempfile.mkdtemp(prefix="init_weights_")) / "model.pt"
    shutil.copyfile(weights, copy)
    config = json.loads((bundle_dir / "configs" / "train.json").read_text())
    load = f"$@network.load_state_dict(monai_mine.bundle.read_weights({os.fspath(copy)!r}))"
    return [*config["initialize"], load]


def earlier_run(weights: Path) -> dict | None:
    """The record of the run that made ``weights``: a bundle's shipped weights' entry in ``shipped_weights.json``
    (any bundle's: MIDiceRegNet may start from MIRegNet's), or the ``entry.json`` of the work folder the weights
    were trained in (``<work_dir>/run/models/model.pt``)."""
    weights = weights.resolve()
    runs = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name, run in runs.items():
        if weights == (shipped_bundle_dir(name) / "models" / "model.pt").resolve():
            return run
    record = weights.parent.parent.parent / "entry.json"
    return json.loads(record.read_text()) if record.is_file() else None


def install(models: Path, bundle_dir: Path) -> None:
    """Copy ``model.pt`` and ``model_config.json`` into the bundle's ``models/``, each replaced atomically."""
    read_weights(models / "model.pt")  # a complete, loadable file before anything is replaced
    target = bundle_dir / "models"
    target.mkdir(exist_ok=True)
    for name in ("model.pt", "model_config.json"):
        temporary = target / f".{name}.incoming"
        shutil.copyfile(models / name, temporary)
        os.replace(temporary, target / name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle folder name under bundles/")
    parser.add_argument("--track", default="mono", choices=("mono", "multimodal"))
    parser.add_argument("--minutes", type=float, default=45.0, help="training budget, wall-clock minutes")
    parser.add_argument("--size", type=int, default=128, help="template grid edge of the data (voxels)")
    parser.add_argument("--image_size", type=int, default=64, help="working grid edge of the network")
    parser.add_argument("--training_pairs", type=int, default=64)
    parser.add_argument("--validation_pairs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlays", default="configs/augment.json", help="comma-separated overlay files")
    parser.add_argument("--overrides", default="{}", help="JSON object of further config overrides")
    parser.add_argument(
        "--phase_shares",
        default=None,
        help="comma-separated shares of the budget per training phase (MIRegNet: AffineNet,DeformNet; default equal)",
    )
    parser.add_argument("--init_weights", default=None, help="start from these weights (e.g. the shipped ones)")
    parser.add_argument("--work_dir", default=None, help="data and training outputs (default: a temporary folder)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the training saved in --work_dir (its run/models/checkpoint.pt) for another --minutes",
    )
    parser.add_argument("--no_install", action="store_true", help="leave the bundle's models/ as it is")
    args = parser.parse_args(argv)

    overlays = [entry for entry in args.overlays.split(",") if entry]
    overrides = {**read_overlays(overlays), **json.loads(args.overrides)}
    bundle_dir = shipped_bundle_dir(args.bundle)
    if args.init_weights:
        overrides["initialize"] = start_from(bundle_dir, Path(args.init_weights))
    if args.resume and (args.work_dir is None or args.init_weights):
        parser.error("--resume continues the training in --work_dir: give --work_dir, and no --init_weights.")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix=f"train_weights_{args.bundle}_"))
    previous = None
    if args.resume:
        if not (work / "entry.json").is_file():
            parser.error(f"--resume: {work / 'entry.json'} does not exist; did a segment run in this work folder?")
        previous = json.loads((work / "entry.json").read_text())
    events_before = event_files(work / "run" / "runs")
    start = time.perf_counter()
    template = build_template(args.size)
    datalist = write_training_datalist(
        template, args.track, work / "data" / args.track, args.training_pairs, args.validation_pairs, args.seed
    )
    data_s = time.perf_counter() - start
    shares = [float(share) for share in args.phase_shares.split(",")] if args.phase_shares else None
    result = train_bundle(
        bundle_dir, datalist, work / "run", args.minutes, args.seed, args.image_size, overrides, args.resume, shares
    )
    models = result.checkpoint.parent
    entry = {
        "bundle": args.bundle,
        "track": args.track,
        "command": shlex.join(["python", "benchmarks/train_weights.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),  # CPU-hours = training_s * threads / 3600 on a CPU
        "data": f"ICBM152 {args.size}^3 under random transforms, {args.training_pairs} training / "
        f"{args.validation_pairs} validation pairs (seed {args.seed}, disjoint from the benchmark's test pairs)",
        "overlays": overlays,
        "overlay_content": read_overlays(overlays),  # as run: a later edit of an overlay file does not rewrite history
        "overrides": json.loads(args.overrides),
        "image_size": args.image_size,
        "epochs": result.epochs,
        "iterations": result.iterations,
        "training_s": round(result.seconds, 1),
        "data_s": round(data_s, 1),
        "best_validation_dice": best_validation_score(models),
        "validation_curve": validation_curve(event_files(work / "run" / "runs") - events_before),
        "weights_mb": round((models / "model.pt").stat().st_size / 1e6, 2),
    }
    if args.init_weights:
        entry["initialised_from"] = earlier_run(Path(args.init_weights)) or args.init_weights
    if previous is not None:
        entry["resumed_from"] = previous
    print(json.dumps(entry, indent=1))
    atomic_write_text(work / "entry.json", json.dumps(entry, indent=1) + "\n")  # the run's record beside its outputs
    if args.no_install:
        return
    install(models, bundle_dir)
    runs = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}  # as it is now: other runs may have ended
    runs[args.bundle] = entry
    atomic_write_text(RESULTS, json.dumps(runs, indent=1) + "\n")
    plot_curves(runs, RESULTS.with_suffix(".png"))


if __name__ == "__main__":
    main()
