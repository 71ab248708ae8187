# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Where a training iteration's time goes, per bundle: data, forward, loss, backward, optimiser, handlers.

Each bundle's own ``configs/train.json`` runs through MONAI's ``ConfigWorkflow`` on benchmark-style pairs
(:func:`monai_mine.apps.benchmark.training.write_training_datalist`, 128^3 data, the 64^3 working grid) with the
overlays the shipped weights were trained with (``configs/augment.json``), for ``--warmup`` + ``--iterations``
iterations without validation. The trainer's own events time each part of an iteration (Ignite's
``GET_BATCH_*``, MONAI's ``IterationEvents``); ``torch.utils.flop_counter`` counts one iteration's floating-point
operations (convolutions and matrix products: the network and the MINE critic) for the achieved FLOP/s; and
``torch.profiler`` gives the operators that take the most time. A phased bundle (MIRegNet: AffineNet, then
DeformNet) is profiled in each phase.

``--code_root`` runs the same measurement on another checkout's package and bundles (e.g. a ``git worktree`` of
an older commit), so that two versions are compared side by side on one machine, in one run::

    git worktree add /tmp/before bc7b84d
    python benchmarks/training_profile.py --out_dir benchmarks/results --compare /tmp/before

writes ``training_profile.{md,json}``: the breakdown per bundle and version, iterations per second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
TRACKS = {"vtn_addd": "mono", "vtn_addd_inv": "mono", "miregnet": "multimodal", "midiceregnet": "multimodal"}
PARTS = ("data", "forward", "loss", "backward", "optimiser", "handlers")
PEAK_GFLOPS = 150.0  # the reference: 2 Zen 3 cores, AVX2 FMA, fp32


def run_profile(args: argparse.Namespace) -> dict:
    """Profile every bundle with the package found first on ``sys.path``; returns ``{label: row}``."""
    import torch
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow
    from monai.engines.utils import IterationEvents

    from monai_mine.apps.benchmark.training import write_training_datalist
    from monai_mine.apps.template import build_template

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    template = build_template(args.size)
    overlay = json.loads((Path(args.code_root) / "configs" / "augment.json").read_text())
    rows = {}
    for bundle in args.bundles.split(","):
        track = TRACKS[bundle]
        datalist = write_training_datalist(template, track, work / "data" / track, args.pairs, 1, 0)
        bundle_dir = Path(args.code_root) / "bundles" / bundle
        config = json.loads((bundle_dir / "configs" / "train.json").read_text())
        phased = "stage_schedule" in config
        length = args.warmup + args.iterations
        overrides = {
            **overlay,
            **json.loads(args.overrides),
            "datalist": os.fspath(datalist),
            "ckpt_dir": os.fspath(work / "run" / bundle / "models"),
            "tensorboard_dir": os.fspath(work / "run" / bundle / "runs"),
            "output_dir": os.fspath(work / "run" / bundle / "eval"),
            "image_size": args.image_size,
            "epoch_length": length,
            "val_interval": 10_000,
            "checkpoint_interval": 10_000,
            "device": args.device,
        }
        if phased:
            overrides.update(affine_epochs=1, deform_epochs=1, critic_warmup_iterations=0)
        else:
            overrides["max_epochs"] = 1
        workflow = ConfigWorkflow(
            config_file=os.fspath(bundle_dir / "configs" / "train.json"),
            meta_file=os.fspath(bundle_dir / "configs" / "metadata.json"),
            logging_file=False,
            workflow_type="train",
            bundle_root=os.fspath(bundle_dir),
            **overrides,
        )
        workflow.initialize()
        trainer = workflow.trainer
        marks: list[tuple[str, float]] = []
        events = {
            "get_batch_started": Events.GET_BATCH_STARTED,
            "get_batch_completed": Events.GET_BATCH_COMPLETED,
            "forward_completed": IterationEvents.FORWARD_COMPLETED,
            "loss_completed": IterationEvents.LOSS_COMPLETED,
            "backward_completed": IterationEvents.BACKWARD_COMPLETED,
            "model_completed": IterationEvents.MODEL_COMPLETED,
        }
        for name, event in events.items():
            trainer.add_event_handler(event, lambda engine, name=name: marks.append((name, time.perf_counter())))
        # per phase: the operator table in its last warm-up iteration, the flop count in its last iteration (both
        # outside the timed mean)
        counts: list[dict] = []
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: counts.append({}))
        in_epoch = lambda index: (index - 1) % length + 1  # noqa: E731
        trainer.add_event_handler(
            Events.ITERATION_STARTED(event_filter=lambda e, i: in_epoch(i) == args.warmup),
            lambda engine: _start_profiler(),
        )
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED(event_filter=lambda e, i: in_epoch(i) == args.warmup),
            lambda engine: _stop_profiler(counts[-1]),
        )
        trainer.add_event_handler(
            Events.ITERATION_STARTED(event_filter=lambda e, i: in_epoch(i) == length), lambda e: _start_flop_count()
        )
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED(event_filter=lambda e, i: in_epoch(i) == length),
            lambda engine: _stop_flop_count(counts[-1]),
        )
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: marks.append(("epoch", 0.0)))
        workflow.run()
        workflow.finalize()
        phases = _split_epochs(marks)
        names = ["affine phase", "deform phase"] if phased else [None]
        for name, phase_marks, count in zip(names, phases, counts):
            label = bundle if name is None else f"{bundle} ({name})"
            row = _summarise(phase_marks, args.warmup)
            row["gflop_per_iteration"] = round(count.get("flops", 0.0) / 1e9, 2)
            compute = row["forward"] + row["loss"] + row["backward"] + row["optimiser"]
            row["gflops_compute"] = round(row["gflop_per_iteration"] / compute, 1)
            row["gflops_step"] = round(row["gflop_per_iteration"] / row["step_s"], 1)
            row["top_operators"] = count.get("operators", [])
            rows[label] = row
            print(label, json.dumps({k: v for k, v in row.items() if k != "top_operators"}), flush=True)
    return rows


_ACTIVE: dict = {}  # the flop counter or profiler running in the current iteration


def _start_flop_count() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    _ACTIVE["counter"] = FlopCounterMode(display=False)
    _ACTIVE["counter"].__enter__()


def _stop_flop_count(count: dict) -> None:
    counter = _ACTIVE.pop("counter")
    counter.__exit__(None, None, None)
    count["flops"] = float(counter.get_total_flops())


def _start_profiler() -> None:
    from torch.profiler import ProfilerActivity, profile

    _ACTIVE["profiler"] = profile(activities=[ProfilerActivity.CPU])
    _ACTIVE["profiler"].__enter__()


def _stop_profiler(count: dict) -> None:
    profiler = _ACTIVE.pop("profiler")
    profiler.__exit__(None, None, None)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events) or 1.0
    count["operators"] = [
        {
            "name": event.key,
            "ms": round(event.self_cpu_time_total / 1e3, 1),
            "share": round(event.self_cpu_time_total / total, 3),
        }
        for event in events[:8]
    ]


def _split_epochs(marks: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    """The event marks of each epoch (phase)."""
    epochs, current = [], []
    for name, stamp in marks:
        if name == "epoch":
            epochs.append(current)
            current = []
        else:
            current.append((name, stamp))
    return epochs


def _summarise(marks: list[tuple[str, float]], warmup: int) -> dict:
    """Mean seconds per iteration of each part, after the warm-up iterations."""
    starts = [index for index, (name, _) in enumerate(marks) if name == "get_batch_started"]
    parts = {part: [] for part in PARTS}
    steps = []
    for number, first in enumerate(starts[:-1]):
        if number < warmup:
            continue
        stamp = dict(marks[first : starts[number + 1] + 1][:-1])
        following = marks[starts[number + 1]][1]
        parts["data"].append(stamp["get_batch_completed"] - stamp["get_batch_started"])
        parts["forward"].append(stamp["forward_completed"] - stamp["get_batch_completed"])
        parts["loss"].append(stamp["loss_completed"] - stamp["forward_completed"])
        parts["backward"].append(stamp["backward_completed"] - stamp["loss_completed"])
        parts["optimiser"].append(stamp["model_completed"] - stamp["backward_completed"])
        parts["handlers"].append(following - stamp["model_completed"])
        steps.append(following - stamp["get_batch_started"])
    row = {part: round(sum(values) / len(values), 4) for part, values in parts.items()}
    row["step_s"] = round(sum(steps) / len(steps), 4)
    row["iterations_per_s"] = round(1.0 / row["step_s"], 3)
    row["iterations"] = len(steps)
    return row


def write_tables(results: dict, out_dir: Path, command: str) -> None:
    """``training_profile.md`` and ``.json``: per version and bundle, the breakdown and the speed-up."""
    lines = [
        "# Training iteration profile",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}. Working grid {results['image_size']}^3, batch as configured (2), "
        f"`configs/augment.json` (a new random deformation per pair and iteration), mean over "
        f"{results['iterations']} iterations after {results['warmup']} warm-up iterations. Seconds per iteration.",
        "",
        "| version | bundle | data | forward | loss | backward | optimiser | handlers | step | it/s | GFLOP/it "
        f"| GFLOP/s (fwd+loss+bwd+opt) | GFLOP/s (step) | step share of {PEAK_GFLOPS:.0f} GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for version, rows in results["versions"].items():
        for label, row in rows.items():
            cells = [row[part] for part in PARTS] + [row["step_s"], row["iterations_per_s"]]
            cells += [row["gflop_per_iteration"], row["gflops_compute"], row["gflops_step"]]
            cells.append(f"{row['gflops_step'] / PEAK_GFLOPS:.0%}")
            lines.append(f"| {version} | {label} | " + " | ".join(str(cell) for cell in cells) + " |")
    if len(results["versions"]) == 2:
        (old, old_rows), (new, new_rows) = results["versions"].items()
        lines += ["", f"Iterations per second, {new} against {old}, same machine, same run:", ""]
        lines += ["| bundle | " + old + " | " + new + " | ratio |", "|---|---|---|---|"]
        for label, row in new_rows.items():
            if label in old_rows:
                before, after = old_rows[label]["iterations_per_s"], row["iterations_per_s"]
                lines.append(f"| {label} | {before} | {after} | {after / before:.2f}x |")
    lines += ["", "Operators that take the most time in one iteration (torch.profiler, self CPU time):", ""]
    for version, rows in results["versions"].items():
        for label, row in rows.items():
            operators = ", ".join(f"{op['name']} {op['ms']} ms ({op['share']:.0%})" for op in row["top_operators"])
            if operators:
                lines.append(f"- {version}, {label}: {operators}")
    lines.append("")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "training_profile.md").write_text("\n".join(lines))
    (out_dir / "training_profile.json").write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", default=",".join(BUNDLES))
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per bundle and phase")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("--size", type=int, default=128, help="template grid edge of the data (voxels)")
    parser.add_argument("--image_size", type=int, default=64, help="working grid edge of the network")
    parser.add_argument("--pairs", type=int, default=4, help="training pairs written")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overrides", default="{}", help="JSON object of further config overrides")
    parser.add_argument("--code_root", default=os.fspath(ROOT), help="checkout whose package and bundles run")
    parser.add_argument("--compare", default=None, help="another checkout to profile beside this one")
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--out_dir", default=None, help="write training_profile.{md,json} here")
    parser.add_argument("--json_out", default=None, help=argparse.SUPPRESS)  # a subprocess' answer
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="training_profile_")
    if args.json_out:  # one version and bundle, in a process of its own
        sys.path.insert(0, os.fspath(Path(args.code_root).resolve()))
        Path(args.json_out).write_text(json.dumps(run_profile(args)))
        return
    roots = [args.compare, args.code_root] if args.compare else [args.code_root]
    versions: dict[str, dict] = {_version(root): {} for root in roots}
    if len(versions) < len(roots):
        parser.error(f"--compare {args.compare} is the same version as {args.code_root}.")
    for bundle in args.bundles.split(","):  # the versions of a bundle one after the other: the same machine state
        for root, version in zip(roots, list(versions)):
            versions[version].update(_profile_in_subprocess(args, root, bundle))
    if args.out_dir:
        import torch

        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} "
            f"threads, torch {torch.__version__}, {args.device}",
            "image_size": args.image_size,
            "iterations": args.iterations,
            "warmup": args.warmup,
            "versions": versions,
        }
        command = " ".join(["python", "benchmarks/training_profile.py", *(sys.argv[1:] if argv is None else argv)])
        write_tables(results, Path(args.out_dir), command)


def _profile_in_subprocess(args: argparse.Namespace, code_root: str, bundle: str) -> dict:
    """The rows of one bundle profiled with the package and bundles of ``code_root``, in a fresh process."""
    answer = Path(args.work_dir) / f"{_version(code_root)}_{bundle}.json"
    command = [sys.executable, __file__, "--code_root", code_root, "--bundles", bundle, "--json_out", os.fspath(answer)]
    for name in ("iterations", "warmup", "size", "image_size", "pairs", "threads", "device", "overrides", "work_dir"):
        command += [f"--{name}", str(getattr(args, name))]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": os.fspath(Path(code_root).resolve())})
    return json.loads(answer.read_text())


def _version(code_root: str) -> str:
    """The checkout's commit (short hash), with ``+`` when its working tree has changes."""
    root = os.fspath(code_root)
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return commit.stdout.strip() + ("+" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
