# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learning curves of a bundle's training: held-out (test split) mean label Dice against iterations and wall time.

Each run trains a copy of a bundle with its own ``train.json`` plus overrides, in a temporary folder, and every
``--every`` epochs registers the test pairs with the network as it is (the bundle's own evaluator on the test
split; the time spent there is not counted as training time). Runs are appended to ``--out`` (JSON), and the
figure and table are redrawn from all runs in it::

    python benchmarks/learning_curves.py --bundle vtn_addd --label "flow init 1e-5 (default)"
    python benchmarks/learning_curves.py --bundle vtn_addd --label "flow init PyTorch (paper)" \
        --overrides '{"flow_init_std": null}'

Writes ``benchmarks/results/learning_curves.json``, ``learning_curves.md`` and ``learning_curves.png``.
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
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text
from monai_mine.metrics import dice_per_label

RESULTS = Path(__file__).resolve().parent / "results"


def _test_dice(evaluator) -> float:
    """Mean over test pairs of the mean label Dice of the warped moving labels (the evaluator's outputs)."""
    scores = []

    def collect(engine):
        for item in engine.state.output:
            dice = dice_per_label(item["warped_label"][None].round().long(), item["fixed_label"][None].round().long())
            scores.append(float(torch.nanmean(dice)))

    handle = evaluator.add_event_handler(Events.ITERATION_COMPLETED, collect)
    evaluator.run()
    handle.remove()
    return sum(scores) / len(scores)


def _identity_dice(dataset) -> float:
    """Mean over the pairs of the mean label Dice of the moving labels as they are (no registration)."""
    scores = []
    for item in dataset:
        dice = dice_per_label(item["moving_label"][None].round().long(), item["fixed_label"][None].round().long())
        scores.append(float(torch.nanmean(dice)))
    return sum(scores) / len(scores)


def train_with_curve(bundle: str, overrides: dict, every: int) -> dict:
    """Train a copy of ``bundle`` with ``overrides``; the test Dice at iteration 0 and every ``every`` epochs."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / bundle
        shutil.copytree(shipped_bundle_dir(bundle), copy, ignore=shutil.ignore_patterns("models", "eval", "runs"))
        files = [str(copy / "configs" / "train.json")]
        workflow = ConfigWorkflow(config_file=files, workflow_type="train", bundle_root=str(copy), **overrides)
        workflow.initialize()
        tester = ConfigParser()
        tester.read_config(files)
        tester.update({"bundle_root": str(copy), **overrides})
        tester.update({"network": workflow.parser.get_parsed_content("network"), "validate#handlers": []})
        tester["validate#dataset#split"] = "test"
        evaluator = tester.get_parsed_content("validate#evaluator")
        identity = _identity_dice(tester.get_parsed_content("validate#dataset"))
        trainer = workflow.parser.get_parsed_content("train#trainer")
        points = [{"iteration": 0, "seconds": 0.0, "test_dice": _test_dice(evaluator)}]
        clock = {"training": 0.0, "since": time.perf_counter()}

        def measure(engine):
            clock["training"] += time.perf_counter() - clock["since"]
            dice = _test_dice(evaluator)
            points.append({"iteration": engine.state.iteration, "seconds": clock["training"], "test_dice": dice})
            print(
                f"iteration {engine.state.iteration}: test Dice {dice:.4f} after {clock['training']:.0f} s", flush=True
            )
            clock["since"] = time.perf_counter()

        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=every), measure)
        clock["since"] = time.perf_counter()
        workflow.run()
        workflow.finalize()
    return {"identity_dice": identity, "points": points}


def _plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for run in runs:
        points = run["points"]
        for axis, key in zip(axes, ("iteration", "seconds")):
            axis.plot([p[key] for p in points], [p["test_dice"] for p in points], marker="o", label=run["label"])
    for axis, name in zip(axes, ("training iterations", "training wall time, s")):
        axis.set_xlabel(name)
        axis.set_ylabel("test mean label Dice")
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    figure.suptitle("Held-out Dice during training (demo data; iteration 0 = untrained network)")
    figure.tight_layout(rect=(0, 0.06 * ((len(runs) + 1) // 2 + 1), 1, 1))
    figure.savefig(path, dpi=110)


def _table(runs: list[dict]) -> str:
    lines = [
        "# Learning curves",
        "",
        "Held-out (test split) mean label Dice during training; written by `benchmarks/learning_curves.py`.",
        "",
        "| run | bundle | overrides | iterations | training s | identity Dice | Dice at 0 | best Dice | final Dice | "
        "machine | command |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in runs:
        points = run["points"]
        lines.append(
            f"| {run['label']} | {run['bundle']} | `{json.dumps(run['overrides'])}` | {points[-1]['iteration']} | "
            f"{points[-1]['seconds']:.0f} | {run['identity_dice']:.3f} | {points[0]['test_dice']:.3f} | "
            f"{max(p['test_dice'] for p in points):.3f} | "
            f"{points[-1]['test_dice']:.3f} | {run['machine']} | `{run['command']}` |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="vtn_addd")
    parser.add_argument("--label", required=True, help="name of this run in the table and figure")
    parser.add_argument("--overrides", default="{}", help="JSON object of config overrides")
    parser.add_argument("--every", type=int, default=2, help="measure every this many epochs")
    parser.add_argument("--out", default=str(RESULTS / "learning_curves.json"))
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides)
    run = train_with_curve(args.bundle, overrides, args.every)
    run.update(
        label=args.label,
        bundle=args.bundle,
        overrides=overrides,
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        command=shlex.join(["python", "benchmarks/learning_curves.py", *(sys.argv[1:] if argv is None else argv)]),
        date=time.strftime("%Y-%m-%d"),
    )
    out = Path(args.out)
    runs = json.loads(out.read_text()) if out.is_file() else []
    runs = [r for r in runs if r["label"] != args.label] + [run]
    atomic_write_text(out, json.dumps(runs, indent=1))
    atomic_write_text(out.with_suffix(".md"), _table(runs))
    _plot(runs, out.with_suffix(".png"))
    print(_table(runs))


if __name__ == "__main__":
    main()
