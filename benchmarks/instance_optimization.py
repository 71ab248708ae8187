# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Instance optimisation on the brain benchmark: accuracy against time, from a network and from the identity.

On each test pair of each track (the benchmark's own pairs, :func:`monai_mine.benchmark.make_pair`), in one run on
one machine: Elastix (the reference), then for each setting the bundle's network refined on the pair
(``register_files`` with ``instance_optimization``, time included) and the identity refined alone (pure
optimisation, no network). A setting is what ``monai-mine register --instance_optimization`` accepts: ``N`` is N
Adam steps on a 32-voxel, then N on a 64-voxel grid (the bundles' default ``instance_optimizer``: 1/4 and 1/2 of a
128^3 pair; 0 = no optimisation); ``A/B/C`` adds a level at full resolution: A, B and C steps at 1/4, 1/2 and 1/1,
learning rates 1, 1 and 0.25 (the unknowns at 1/2 resolution throughout); a preset name (``fast``, ``balanced``,
``accurate``) is its schedule ``A/B/C``, the same as ``register`` runs at 128^3. Every DDF is scored as the
benchmark scores it (mean tissue Dice, displacement error against the true field, folding, time per pair). Writes
``instance_optimization.md`` (the tables, the targets and the command), ``instance_optimization.json`` (every score)
and ``instance_optimization.png`` (Dice against time per pair) to ``--out_dir``::

    python benchmarks/instance_optimization.py --out_dir benchmarks/results --steps 0,25,50,100,200,50/50/10 \\
        --networks mono=vtn_addd,multimodal=vtn_addd
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from monai_mine.benchmark import build_template
from monai_mine.benchmark.evaluation import score_pair
from monai_mine.benchmark.methods import BundleMethod, classical_method, identity_instance_method
from monai_mine.benchmark.pairs import TRACKS, make_pair, pair_seed
from monai_mine.benchmark.report import summarize as report_summary
from monai_mine.benchmark.report import write_json
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text
from monai_mine.registration import InstanceOptimizer
from monai_mine.registration.steps import instance_optimization_schedule

ROOT = Path(__file__).resolve().parent.parent
SCORES = ("dice", "error_mean_vox", "folding_percent", "runtime_s")


def optimizer_for(spec: str, size: int) -> InstanceOptimizer | None:
    """The instance optimiser of a step specification (``"50"``, ``"50/50/10"`` or a preset name such as
    ``"accurate"``, :data:`~monai_mine.registration.steps.PRESETS`) for ``size``^3 pairs; ``None`` for ``"0"``."""
    try:
        schedule = instance_optimization_schedule(spec)
    except ValueError as error:
        raise ValueError(f"--steps entry {spec!r} must read N, A/B/C or a preset: {error}") from None
    if not schedule.full_resolution:
        return InstanceOptimizer(steps=schedule.steps[0]) if schedule.refines else None
    if len(schedule.steps) != 3:
        raise ValueError(
            f"--steps entry {spec!r} must read N, A/B/C or a preset (steps at 1/4, 1/2 and full resolution)."
        )
    levels = (size // 4, size // 2, size)
    return InstanceOptimizer(steps=schedule.steps, levels=levels, learning_rate=(1.0, 1.0, 0.25))


def steps_label(spec: str) -> str:
    """A specification as the tables show it: a preset with its schedule (``"fast (25/25/0)"``)."""
    schedule = instance_optimization_schedule(spec)
    return str(schedule) if schedule.name else spec


def parse_networks(value: str) -> dict[str, tuple[str, Path]]:
    """``track=bundle[:weights]`` entries -> ``{track: (bundle, weights)}`` (default weights: the shipped ones)."""
    networks = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        track, _, rest = entry.partition("=")
        bundle, _, weights = rest.partition(":")
        if track not in TRACKS or not bundle:
            raise ValueError(f"--networks entry {entry!r} must read track=bundle[:weights] with a track in {TRACKS}.")
        path = Path(weights) if weights else shipped_bundle_dir(bundle) / "models" / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--networks: weights {path} for {entry!r} do not exist.")
        networks[track] = (bundle, path)
    return networks


def summarize(records: list[dict]) -> dict:
    """``{track: {method: {score: mean}}}`` in the order of the records, with ``n`` pairs (from the benchmark's own
    statistics, :func:`monai_mine.benchmark.report.summarize`)."""
    return {
        track: {
            method: {"n": stats["dice"]["n"], **{key: stats[key]["mean"] for key in SCORES}}
            for method, stats in methods.items()
        }
        for track, methods in report_summary(records).items()
    }


def table(rows: dict) -> str:
    lines = [
        "| method | steps per level | pairs | Dice | displacement error (vox) | folding (%) | time per pair (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        name, _, steps = method.partition("@")
        steps = steps_label(steps) if steps else "-"
        lines.append(
            f"| {name} | {steps} | {row['n']} | {row['dice']:.3f} | {row['error_mean_vox']:.2f} | "
            f"{row['folding_percent']:.3f} | {row['runtime_s']:.2f} |"
        )
    return "\n".join(lines)


def targets(summary: dict, networks: dict) -> list[str]:
    """The issue's targets, each met or not, with the numbers."""
    lines = []
    for track, rows in summary.items():
        if "elastix" not in rows or track not in networks:
            continue
        elastix = rows["elastix"]
        budget = elastix["runtime_s"] / 10
        bundle = networks[track][0]
        refined = {m: r for m, r in rows.items() if m.startswith(f"{bundle}+io@")}
        fast = {m: r for m, r in refined.items() if r["runtime_s"] <= budget and r["folding_percent"] < 0.1}
        best = max(fast.items(), key=lambda item: item[1]["dice"], default=None)
        if best is None:
            lines.append(f"- {track}: no {bundle}+io setting within 1/10 of Elastix's time ({budget:.1f} s).")
            continue
        method, row = best
        verdict = "met" if row["dice"] >= elastix["dice"] else "missed"
        lines.append(
            f"- {track}: best {method} within 1/10 of Elastix's time ({budget:.1f} s per pair): Dice "
            f"{row['dice']:.3f} in {row['runtime_s']:.2f} s, folding {row['folding_percent']:.3f} %, against "
            f"Elastix {elastix['dice']:.3f} in {elastix['runtime_s']:.1f} s: **{verdict}**."
        )
        for steps in dict.fromkeys(m.split("@")[1] for m in refined):
            network, identity = rows.get(f"{bundle}+io@{steps}"), rows.get(f"identity+io@{steps}")
            if network and identity and steps != "0":
                label = steps_label(steps)
                lines.append(
                    f"  - {label} steps: network start {network['dice']:.3f} in {network['runtime_s']:.2f} s, "
                    f"identity start {identity['dice']:.3f} in {identity['runtime_s']:.2f} s"
                )
    return lines


def plot(summary: dict, path: Path) -> None:
    """Dice against time per pair, one panel per track: a line per start and level layout, Elastix as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(summary), figsize=(6.5 * len(summary), 5.4), squeeze=False)
    for axis, (track, rows) in zip(axes[0], summary.items()):
        starts = list(dict.fromkeys(method.split("+io@")[0] for method in rows if "+io@" in method))
        for colour, start in zip(("tab:blue", "tab:orange", "tab:purple"), starts):
            series = [(m.split("@")[1], r) for m, r in rows.items() if m.startswith(f"{start}+io@")]
            if start == "identity":
                unregistered = dict(series).get("0")
                if unregistered:
                    axis.axhline(unregistered["dice"], color=colour, linestyle=":", label="before registration")
            else:
                axis.plot(dict(series)["0"]["runtime_s"], dict(series)["0"]["dice"], "D", color=colour,
                          label=f"{start} network alone")  # fmt: skip
            for layout, style in (("1/4, 1/2", "-"), ("1/4, 1/2, full", "--")):
                points = [
                    (spec, r)
                    for spec, r in series
                    if spec != "0" and instance_optimization_schedule(spec).full_resolution == (style == "--")
                ]
                if not points:
                    continue
                axis.plot([r["runtime_s"] for _, r in points], [r["dice"] for _, r in points], style, marker="o",
                          color=colour, label=f"{start} start, levels {layout}")  # fmt: skip
                for spec, row in points:
                    axis.annotate(spec, (row["runtime_s"], row["dice"]), textcoords="offset points", xytext=(4, -11),
                                  fontsize=7)  # fmt: skip
        if "elastix" in rows:
            axis.plot(rows["elastix"]["runtime_s"], rows["elastix"]["dice"], "s", color="tab:green", markersize=9,
                      label="Elastix")  # fmt: skip
            axis.axvline(rows["elastix"]["runtime_s"] / 10, color="grey", linestyle=":", label="1/10 of Elastix's time")
        axis.set_xscale("log")
        axis.set_xlabel("time per pair (s, log scale); labels: Adam steps per level")
        axis.set_ylabel("mean tissue Dice")
        axis.set_title(f"track {track}")
        axis.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    figure.tight_layout(rect=(0, 0.14, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="per-pair NIfTI files (default: a temporary folder)")
    parser.add_argument("--tracks", default="mono,multimodal")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--steps", default="0,25,50,100,200,50/50/10", help="N, A/B/C or preset (fast, balanced, accurate) settings"
    )
    parser.add_argument("--networks", default="mono=vtn_addd,multimodal=vtn_addd", help="track=bundle[:weights]")
    parser.add_argument("--references", default="elastix", help="classical methods run beside, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tracks = [track for track in args.tracks.split(",") if track]
    steps = [spec.strip() for spec in args.steps.split(",") if spec.strip()]
    optimizers = {spec: optimizer_for(spec, args.size) for spec in steps}
    networks = parse_networks(args.networks)
    out_dir, start = Path(args.out_dir), time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "monai_mine_instance_optimization"))
    template = build_template(args.size)
    records: list[dict] = []
    for track in tracks:
        methods = {name: classical_method(name) for name in filter(None, args.references.split(","))}
        for spec, optimizer in optimizers.items():
            identity = classical_method("identity") if optimizer is None else identity_instance_method(optimizer)
            methods[f"identity+io@{spec}"] = identity
            if track in networks:
                bundle, weights = networks[track]
                runner = BundleMethod(shipped_bundle_dir(bundle), weights, work, instance_optimization=optimizer or 0)
                methods[f"{bundle}+io@{spec}"] = runner
        for index in range(args.pairs):
            pair = make_pair(template, track, pair_seed(args.seed, track, "test", index))
            for method, run in methods.items():
                scores = score_pair(pair, run(pair))
                records.append({"track": track, "method": method, "pair": index, **scores})
                print(f"{track} pair {index} {method}: Dice {scores['dice']:.3f} in {scores['runtime_s']:.2f} s")
    summary = summarize(records)
    command = shlex.join(
        ["python", "benchmarks/instance_optimization.py", *(argv if argv is not None else sys.argv[1:])]
    )
    content = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "size": args.size,
        "steps": steps,
        "networks": {track: [bundle, os.fspath(path)] for track, (bundle, path) in networks.items()},
        "summary": summary,
        "records": records,
        "elapsed_s": time.perf_counter() - start,
    }
    write_json(out_dir / "instance_optimization.json", content)
    lines = [
        "# Instance optimisation: accuracy against time",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {content['machine']['platform']}, {content['machine']['cpus']} CPUs; {content['date']}; "
        f"{args.size}^3 pairs, {args.pairs} per track, one run. `X+io@N`: start `X` refined with N Adam steps at 1/4, "
        "then N at 1/2 of the image resolution (the 32- and 64-voxel grids of the default `instance_optimizer`; local "
        "correlation + diffusion); `@0`: no optimisation; `@A/B/C`: A, B and C steps at 1/4, 1/2 and full resolution "
        "(learning rates 1, 1, 0.25).",
        "",
        "Targets (issue: best network + instance optimisation >= Elastix's Dice at <= 1/10 of its time, folding "
        "< 0.1 %):",
        "",
        *targets(summary, networks),
        "",
    ]
    for track, rows in summary.items():
        lines += [f"## Track {track}", "", table(rows), ""]
    atomic_write_text(out_dir / "instance_optimization.md", "\n".join(lines))
    plot(summary, out_dir / "instance_optimization.png")
    return content


if __name__ == "__main__":
    main()
