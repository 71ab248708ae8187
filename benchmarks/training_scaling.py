# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Capacity and length: validation and test Dice against CPU-hours for trainings of several network widths.

Each run is a work folder of ``benchmarks/train_weights.py`` (``--no_install``); its ``entry.json`` gives the
validation curve, the wall time and the threads it trained with (CPU-hours = seconds x threads / 3600), and its
best weights (``run/models/model.pt``) are scored on the brain benchmark's test pairs of the run's track (network
alone, as the benchmark does). Two widths trained side by side with one thread each see the same machine::

    OMP_NUM_THREADS=1 python benchmarks/train_weights.py --bundle vtn_addd --minutes 40 --no_install \\
        --work_dir runs/vtn_w8 --overrides '{"network_channels": 8}' &
    OMP_NUM_THREADS=1 python benchmarks/train_weights.py --bundle vtn_addd --minutes 40 --no_install \\
        --work_dir runs/vtn_w16 --overrides '{"network_channels": 16}' &
    wait
    python benchmarks/training_scaling.py --runs runs/vtn_w8,runs/vtn_w16 --out_dir benchmarks/results

A run continued with ``--resume`` is one row: its record holds the segment it continued (``resumed_from``), and the
row adds up the segments' CPU-hours and joins their validation curves.

Writes ``training_scaling.{md,json,png}``; runs already in ``training_scaling.json`` are kept (a later call adds
other bundles' runs, and a run's next segment replaces its row).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from monai_mine.apps.benchmark.evaluation import score_pair
from monai_mine.apps.benchmark.methods import BundleMethod, classical_method
from monai_mine.apps.benchmark.pairs import make_pair, pair_seed
from monai_mine.apps.benchmark.training import training_chain
from monai_mine.apps.template import build_template
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text


def run_label(entry: dict) -> str:
    """``<bundle> w<channels>`` from a run's first record (its overrides, else 8, the default when the studies
    began), followed by its other overrides and ``+init`` for a run that started from earlier weights."""
    entry = training_chain(entry)[0]
    overrides = dict(entry.get("overrides", {}))
    label = f"{entry['bundle']} w{overrides.pop('network_channels', 8)}"
    label += "".join(f" {key}={value}" for key, value in sorted(overrides.items()))
    return label + (" +init" if entry.get("initialised_from") else "")


def cpu_hours(seconds: float, entry: dict) -> float:
    """CPU-hours of ``seconds`` of a run's training (its threads, 1 when it did not record them)."""
    return seconds * int(entry.get("threads", 1)) / 3600.0


def test_dice(entry: dict, weights: Path, pairs: int, size: int, work: Path) -> dict:
    """Mean tissue Dice and folding of the run's best weights and of the identity on its track's test pairs."""
    template = build_template(size)
    track = entry["track"]
    test_pairs = [make_pair(template, track, pair_seed(0, track, "test", index)) for index in range(pairs)]
    network = BundleMethod(shipped_bundle_dir(entry["bundle"]), weights, work)
    identity = classical_method("identity")
    scores = [score_pair(pair, network(pair)) for pair in test_pairs]
    return {
        "test_dice": float(np.mean([score["dice"] for score in scores])),
        "identity_dice": float(np.mean([score_pair(pair, identity(pair))["dice"] for pair in test_pairs])),
        "folding_percent_max": float(max(score["folding_percent"] for score in scores)),
    }


def joined_curve(chain: list[dict]) -> list[dict]:
    """The validation curves of a run's segments on one axis of CPU-hours (each segment's seconds count from its own
    start)."""
    curve, before = [], 0.0
    for segment in chain:
        for point in segment["validation_curve"]:
            curve.append({"cpu_hours": round(before + cpu_hours(point["seconds"], segment), 4), "dice": point["dice"]})
        before += cpu_hours(segment["training_s"], segment)
    return curve


def summarise(folder: Path, pairs: int, size: int) -> dict:
    """One run's row: label, track, CPU-hours, iterations, best validation Dice, its curve and its test Dice."""
    entry = json.loads((folder / "entry.json").read_text())
    chain = training_chain(entry)
    row = {
        "label": run_label(entry),
        "bundle": entry["bundle"],
        "track": entry["track"],
        "command": " then ".join(segment["command"] for segment in chain),
        "threads": int(entry.get("threads", 1)),
        "cpu_hours": round(sum(cpu_hours(segment["training_s"], segment) for segment in chain), 3),
        "iterations": sum(segment["iterations"] for segment in chain),  # each record counts its own segment's
        "best_validation_dice": max(segment["best_validation_dice"] for segment in chain),
        "curve": joined_curve(chain),
    }
    weights = folder / "run" / "models" / "model.pt"
    row.update(test_dice(entry, weights, pairs, size, Path(tempfile.mkdtemp(prefix="scaling_"))))
    return row


def plot(rows: dict, path: Path) -> None:
    """Validation Dice against CPU-hours, one line per run, the test Dice as a marker at the run's end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label, row in sorted(rows.items()):
        hours = [point["cpu_hours"] for point in row["curve"]]
        line = axis.plot(hours, [point["dice"] for point in row["curve"]], label=f"{label} ({row['track']})")[0]
        axis.scatter([row["cpu_hours"]], [row["test_dice"]], color=line.get_color(), marker="*", s=90, zorder=3)
    axis.set_xlabel("training CPU-hours (wall time x threads)")
    axis.set_ylabel("mean tissue Dice (line: validation, star: test)")
    axis.set_title("Network width and training length")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_tables(rows: dict, out_dir: Path, pairs: int, size: int) -> None:
    lines = [
        "# Training scaling: network width and length",
        "",
        f"Validation Dice (the training's own validation pairs) and test Dice (the brain benchmark's {pairs} test "
        f"pairs of the track, {size}^3, network alone) of each run's best weights, against the CPU-hours it "
        "trained (wall time x threads). Commands below each table row.",
        "",
        "| run | track | CPU-hours | iterations | best validation Dice | test Dice | identity | folding % (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in sorted(rows.items()):
        lines.append(
            f"| {label} | {row['track']} | {row['cpu_hours']:.2f} | {row['iterations']} | "
            f"{row['best_validation_dice']:.3f} | {row['test_dice']:.3f} | {row['identity_dice']:.3f} | "
            f"{row['folding_percent_max']:.3f} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"- {label}: `{row['command']}` ({row['threads']} thread(s))" for label, row in sorted(rows.items())]
    lines += ["", "![scaling](training_scaling.png)", ""]
    atomic_write_text(out_dir / "training_scaling.md", "\n".join(lines))
    atomic_write_text(out_dir / "training_scaling.json", json.dumps(rows, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma-separated train_weights.py work folders")
    parser.add_argument("--pairs", type=int, default=4, help="test pairs")
    parser.add_argument("--size", type=int, default=128, help="template grid edge of the test pairs")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = out_dir / "training_scaling.json"
    rows = json.loads(existing.read_text()) if existing.is_file() else {}
    for folder in filter(None, args.runs.split(",")):
        row = summarise(Path(folder), args.pairs, args.size)
        rows[row["label"]] = row
        print(json.dumps({key: value for key, value in row.items() if key != "curve"}), file=sys.stderr)
    write_tables(rows, out_dir, args.pairs, args.size)
    plot(rows, out_dir / "training_scaling.png")
    print((out_dir / "training_scaling.md").read_text())


if __name__ == "__main__":
    main()
