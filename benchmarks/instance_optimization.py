# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Instance optimisation on the brain benchmark: accuracy against time, from a network and from the identity.

On each test pair of each track (the benchmark's own pairs, :func:`monai_mine.apps.benchmark.make_pair`), in one run on
one machine: Elastix (the reference), then for each setting the bundle's network refined on the pair
(``register_files`` with ``instance_optimization``, time included) and the identity refined alone (pure
optimisation, no network). A setting is what ``monai-mine register --instance_optimization`` accepts: ``N`` is N
Adam steps on a 32-voxel, then N on a 64-voxel grid (the bundles' default ``instance_optimizer``: 1/4 and 1/2 of a
128^3 pair; 0 = no optimisation); ``A/B/C`` adds a level at full resolution: A, B and C steps at 1/4, 1/2 and 1/1,
learning rates 1, 1 and 0.25 (the unknowns at 1/2 resolution throughout); a preset name (``fast``, ``balanced``,
``accurate``) is its schedule ``A/B/C``, the same as ``register`` runs at 128^3. Every DDF is scored as the
benchmark scores it (mean tissue Dice, displacement error against the true field, folding, time per pair). Each
track may have several network starts (``--networks multimodal=miregnet,multimodal=midiceregnet``) and several
similarities (``--similarities multimodal=local_correlation+mutual_information+mine``, names of
:data:`~monai_mine.optimization.instance.SIMILARITIES`; rows ``X+io:<similarity>@N`` for all but local
correlation, the bundles' default, which keeps ``X+io@N``). Writes
``instance_optimization.md`` (the tables, the targets and the command), ``instance_optimization.json`` (every score)
and ``instance_optimization.png`` (Dice against time per pair) to ``--out_dir``::

    python benchmarks/instance_optimization.py --out_dir benchmarks/results --steps 0,25,50,100,200,50/50/10 \\
        --networks mono=vtn_addd,multimodal=vtn_addd
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from monai_mine.apps.benchmark.evaluation import score_pair
from monai_mine.apps.benchmark.methods import BundleMethod, classical_method, identity_instance_method
from monai_mine.apps.benchmark.pairs import TRACKS, make_pair, pair_seed
from monai_mine.apps.benchmark.report import summarize as report_summary
from monai_mine.apps.benchmark.report import write_json
from monai_mine.apps.template import build_template
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text
from monai_mine.optimization import InstanceOptimizer
from monai_mine.optimization.instance import SIMILARITIES
from monai_mine.optimization.schedule import instance_optimization_schedule

ROOT = Path(__file__).resolve().parent.parent
SCORES = ("dice", "error_mean_vox", "folding_percent", "runtime_s")
DEFAULT_SIMILARITY = "local_correlation"
"""The bundles' instance-optimisation similarity; its rows keep the plain name ``X+io@N``."""


def optimizer_for(spec: str, size: int, similarity: str = DEFAULT_SIMILARITY) -> InstanceOptimizer | None:
    """A fresh instance optimiser of a step specification (``"50"``, ``"50/50/10"`` or a preset name such as
    ``"accurate"``, :data:`~monai_mine.optimization.PRESETS`) with ``similarity`` for ``size``^3 pairs; ``None``
    for ``"0"``. Fresh: a similarity that trains along (``"mine"``'s critic) starts untrained for each method."""
    try:
        schedule = instance_optimization_schedule(spec)
    except ValueError as error:
        raise ValueError(f"--steps entry {spec!r} must read N, A/B/C or a preset: {error}") from None
    if not schedule.full_resolution:
        return InstanceOptimizer(steps=schedule.steps[0], similarity=similarity) if schedule.refines else None
    if len(schedule.steps) != 3:
        raise ValueError(
            f"--steps entry {spec!r} must read N, A/B/C or a preset (steps at 1/4, 1/2 and full resolution)."
        )
    levels = (size // 4, size // 2, size)
    return InstanceOptimizer(steps=schedule.steps, levels=levels, learning_rate=(1.0, 1.0, 0.25), similarity=similarity)


def steps_label(spec: str) -> str:
    """A specification as the tables show it: a preset with its schedule (``"fast (25/25/0)"``)."""
    schedule = instance_optimization_schedule(spec)
    return str(schedule) if schedule.name else spec


def method_name(start: str, similarity: str, spec: str) -> str:
    """``"vtn_addd+io@50"``; a similarity other than the default is named: ``"miregnet+io:mine@fast"``."""
    refined = "io" if similarity == DEFAULT_SIMILARITY or spec == "0" else f"io:{similarity}"
    return f"{start}+{refined}@{spec}"


def parse_similarities(value: str, tracks: list[str]) -> dict[str, list[str]]:
    """``track=name+name`` entries -> ``{track: [names]}``; a track not named gets the default (local correlation)."""
    similarities = {track: [DEFAULT_SIMILARITY] for track in tracks}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        track, _, names = entry.partition("=")
        chosen = [name for name in names.split("+") if name]
        if track not in TRACKS or not chosen or any(name not in SIMILARITIES for name in chosen):
            raise ValueError(
                f"--similarities entry {entry!r} must read track=name[+name...] with a track in {TRACKS} and names "
                f"in {SIMILARITIES}."
            )
        similarities[track] = chosen
    return similarities


def parse_networks(value: str) -> dict[str, list[tuple[str, Path]]]:
    """``track=bundle[:weights]`` entries -> ``{track: [(bundle, weights), ...]}`` in their order (default weights:
    the shipped ones); a track may have several."""
    networks: dict[str, list[tuple[str, Path]]] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        track, _, rest = entry.partition("=")
        bundle, _, weights = rest.partition(":")
        if track not in TRACKS or not bundle:
            raise ValueError(f"--networks entry {entry!r} must read track=bundle[:weights] with a track in {TRACKS}.")
        path = Path(weights) if weights else shipped_bundle_dir(bundle) / "models" / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--networks: weights {path} for {entry!r} do not exist.")
        networks.setdefault(track, []).append((bundle, path))
    return networks


def summarize(records: list[dict]) -> dict:
    """``{track: {method: {score: mean}}}`` in the order of the records, with ``n`` pairs (from the benchmark's own
    statistics, :func:`monai_mine.apps.benchmark.report.summarize`)."""
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


TIME_FRACTIONS = {"mono": 10, "multimodal": 4}
"""Issue 28's time budget per track: a preset reaches Elastix's Dice within 1/N of its time (mono 1/10, multimodal
1/4)."""


def time_fraction(track: str) -> int:
    return TIME_FRACTIONS.get(track, 10)


def targets(summary: dict, networks: dict) -> list[str]:
    """The issue's target per track, met or not, with the numbers; then each network start's settings beside the
    identity start's with the same similarity."""
    lines = []
    for track, rows in summary.items():
        if "elastix" not in rows or track not in networks:
            continue
        elastix = rows["elastix"]
        fraction = time_fraction(track)
        budget = elastix["runtime_s"] / fraction
        refined = {m: r for m, r in rows.items() if "+io" in m and not m.startswith("identity+")}
        fast = {m: r for m, r in refined.items() if r["runtime_s"] <= budget and r["folding_percent"] < 0.1}
        best = max(fast.items(), key=lambda item: item[1]["dice"], default=None)
        if best is None:
            lines.append(f"- {track}: no network start within 1/{fraction} of Elastix's time ({budget:.1f} s).")
        else:
            method, row = best
            verdict = "met" if row["dice"] >= elastix["dice"] else "missed"
            lines.append(
                f"- {track}: best {method} within 1/{fraction} of Elastix's time ({budget:.1f} s per pair): Dice "
                f"{row['dice']:.3f} in {row['runtime_s']:.2f} s, folding {row['folding_percent']:.3f} %, against "
                f"Elastix {elastix['dice']:.3f} in {elastix['runtime_s']:.1f} s: **{verdict}**."
            )
        for method, network in refined.items():
            prefix, _, spec = method.partition("@")
            if spec == "0":
                continue
            identity = rows.get(f"identity+{prefix.partition('+')[2]}@{spec}")
            line = (
                f"  - {prefix} {steps_label(spec)}: {network['dice']:.3f} in {network['runtime_s']:.2f} s, folding "
                f"{network['folding_percent']:.3f} %"
            )
            if identity:
                line += f"; identity start {identity['dice']:.3f} in {identity['runtime_s']:.2f} s"
            lines.append(line)
    return lines


def plot(summary: dict, path: Path) -> None:
    """Dice against time per pair, one panel per track: a line per start, similarity and level layout, each
    network alone and Elastix as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(summary), figsize=(6.5 * len(summary), 5.8), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for axis, (track, rows) in zip(axes[0], summary.items()):
        refined = [method for method in rows if "+io" in method]
        if "identity+io@0" in rows:
            axis.axhline(rows["identity+io@0"]["dice"], color="grey", linestyle=":", label="before registration")
        prefixes = list(dict.fromkeys(method.partition("@")[0] for method in refined if not method.endswith("@0")))
        for colour, prefix in zip(colours, prefixes):
            start = prefix.partition("+")[0]
            alone = rows.get(f"{start}+io@0")
            if start != "identity" and alone and prefix.endswith("+io"):
                axis.plot(alone["runtime_s"], alone["dice"], "D", color=colour, label=f"{start} network alone")
            series = [(m.partition("@")[2], rows[m]) for m in refined if m.partition("@")[0] == prefix]
            for layout, style in (("1/4, 1/2", "-"), ("1/4, 1/2, full", "--")):
                points = [
                    (spec, r)
                    for spec, r in series
                    if spec != "0" and instance_optimization_schedule(spec).full_resolution == (style == "--")
                ]
                if not points:
                    continue
                axis.plot([r["runtime_s"] for _, r in points], [r["dice"] for _, r in points], style, marker="o",
                          color=colour, label=f"{prefix}, levels {layout}")  # fmt: skip
                for spec, row in points:
                    axis.annotate(spec, (row["runtime_s"], row["dice"]), textcoords="offset points", xytext=(4, -11),
                                  fontsize=7)  # fmt: skip
        if "elastix" in rows:
            axis.plot(rows["elastix"]["runtime_s"], rows["elastix"]["dice"], "s", color="black", markersize=9,
                      label="Elastix")  # fmt: skip
            budget = rows["elastix"]["runtime_s"] / time_fraction(track)
            axis.axvline(budget, color="grey", linestyle="-.", label=f"1/{time_fraction(track)} of Elastix's time")
        axis.set_xscale("log")
        axis.set_xlabel("time per pair (s, log scale); labels: Adam steps per level")
        axis.set_ylabel("mean tissue Dice")
        axis.set_title(f"track {track}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
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
    parser.add_argument(
        "--networks", default="mono=vtn_addd,multimodal=vtn_addd", help="track=bundle[:weights], comma-separated"
    )
    parser.add_argument(
        "--similarities", default="", help=f"track=name[+name...], names in {SIMILARITIES} (default local_correlation)"
    )
    parser.add_argument("--references", default="elastix", help="classical methods run beside, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--report_only", action="store_true", help="rewrite the .md and .png from --out_dir's .json, running nothing"
    )
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.report_only:
        content = json.loads((out_dir / "instance_optimization.json").read_text())
        write_report(content, out_dir)
        return content
    tracks = [track for track in args.tracks.split(",") if track]
    steps = [spec.strip() for spec in args.steps.split(",") if spec.strip()]
    for spec in steps:
        optimizer_for(spec, args.size)  # refuse a bad entry before anything runs
    networks = parse_networks(args.networks)
    similarities = parse_similarities(args.similarities, tracks)
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "monai_mine_instance_optimization"))
    template = build_template(args.size)
    records: list[dict] = []
    for track in tracks:
        methods = {name: classical_method(name) for name in filter(None, args.references.split(","))}
        for spec in steps:
            for similarity in similarities[track] if spec != "0" else [DEFAULT_SIMILARITY]:
                for origin, weights in [("identity", None), *networks.get(track, [])]:
                    optimizer = optimizer_for(spec, args.size, similarity)
                    if origin != "identity":
                        bundle = shipped_bundle_dir(origin)
                        run = BundleMethod(bundle, weights, work, instance_optimization=optimizer or 0)
                    elif optimizer is None:
                        run = classical_method("identity")
                    else:
                        run = identity_instance_method(optimizer)
                    methods[method_name(origin, similarity, spec)] = run
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
        "networks": {track: [[name, os.fspath(path)] for name, path in found] for track, found in networks.items()},
        "similarities": similarities,
        "summary": summary,
        "records": records,
        "elapsed_s": time.perf_counter() - start,
    }
    write_json(out_dir / "instance_optimization.json", content)
    write_report(content, out_dir)
    return content


def write_report(content: dict, out_dir: Path) -> None:
    """``instance_optimization.md`` and ``.png`` from the run's record (what ``instance_optimization.json`` holds)."""
    summary = content["summary"]
    pairs = len({record["pair"] for record in content["records"]})
    lines = [
        "# Instance optimisation: accuracy against time",
        "",
        f"Command: `{content['command']}`",
        "",
        f"Machine: {content['machine']['platform']}, {content['machine']['cpus']} CPUs; {content['date']}; "
        f"{content['size']}^3 pairs, {pairs} per track, one run. `X+io@N`: start `X` refined with N Adam steps at 1/4, "
        "then N at 1/2 of the image resolution (the 32- and 64-voxel grids of the default `instance_optimizer`; local "
        "correlation + diffusion); `X+io:<similarity>@N`: the same with another similarity (`mutual_information`: "
        "MONAI's global Parzen MI; `mine`: MINE with a fresh critic trained along); `@0`: no optimisation; `@A/B/C`: "
        "A, B and C steps at 1/4, 1/2 and full resolution (learning rates 1, 1, 0.25).",
        "",
        "Targets (issue 28: best network + instance optimisation >= Elastix's Dice at <= 1/10 of its time on the mono "
        "track, <= 1/4 on the multimodal track, folding < 0.1 %):",
        "",
        *targets(summary, content["networks"]),
        "",
    ]
    for track, rows in summary.items():
        lines += [f"## Track {track}", "", table(rows), ""]
    atomic_write_text(out_dir / "instance_optimization.md", "\n".join(lines))
    plot(summary, out_dir / "instance_optimization.png")


if __name__ == "__main__":
    main()
