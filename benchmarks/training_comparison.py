# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Variants of one bundle's training, same data and wall-clock budget, scored on the brain benchmark's test pairs.

Each variant is one run of ``benchmarks/train_weights.py`` (``--no_install``: the shipped weights stay) with its
overrides and the shared overlays (or its own, ``--variant_overlays``), in ``<work_dir>/<variant>``; a variant
whose folder already holds the run's record (``entry.json``) is not trained again, so an interrupted comparison
continues where it stopped. The best
validated weights of each variant then register the benchmark's test pairs of the track
(:class:`~monai_mine.apps.benchmark.methods.BundleMethod`, the code of ``monai-mine register``), beside the identity.
Writes ``<name>.md`` (table and command), ``<name>.json`` (runs, every score) and ``<name>.png`` (validation Dice
against training minutes) to ``--out_dir``. The MIRegNet similarity table (MINE against MONAI's
``GlobalMutualInformationLoss`` and correlation; ``--variant_overlays`` gives a variant its own overlays, e.g.
``'{"mine_supervised": "configs/synthetic_pairs_contrast.json"}'``) is::

    python benchmarks/training_comparison.py --name miregnet_similarities --bundle miregnet --track multimodal \\
        --minutes 15 --overlays configs/augment.json --work_dir /tmp/exp_sim --variants '{"mine": {},
        "gmi": {"loss_terms#0#loss": {"_target_": "monai.losses.GlobalMutualInformationLoss"},
                "critic_warmup_iterations": 0},
        "cc": {"loss_terms#0#loss": {"_target_": "monai_mine.losses.CorrelationCoefficientLoss"},
               "critic_warmup_iterations": 0}}'
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from monai_mine.apps.benchmark.evaluation import score_pair
from monai_mine.apps.benchmark.methods import BundleMethod, classical_method
from monai_mine.apps.benchmark.pairs import make_pair, pair_seed
from monai_mine.apps.benchmark.report import summarize, write_json
from monai_mine.apps.template import build_template
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _train_weights():
    """``benchmarks/train_weights.py`` as a module (loaded once)."""
    spec = importlib.util.spec_from_file_location("train_weights", ROOT / "benchmarks" / "train_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_variants(value: str) -> dict[str, dict]:
    """``{"variant": {config id: value}}`` from a JSON text or a JSON file; names become folder names."""
    text = value if value.lstrip().startswith(("{", "[")) else Path(value).read_text()
    variants = json.loads(text)
    if not isinstance(variants, dict) or not variants or not all(isinstance(v, dict) for v in variants.values()):
        raise ValueError(f"--variants must be a JSON object of variant name -> config overrides, got {value!r}.")
    bad = [name for name in variants if not name.replace("_", "").isalnum()]
    if bad:
        raise ValueError(f"variant names must be letters, digits and underscores (folder names), got {bad}.")
    return variants


def train_variant(args: argparse.Namespace, name: str, overrides: dict, overlays: str) -> dict:
    """The record of the variant's run: read from its folder, or made by training it now."""
    folder = Path(args.work_dir) / name
    record = folder / "entry.json"
    if not record.is_file():
        _train_weights().main(
            [
                *("--bundle", args.bundle, "--track", args.track, "--minutes", str(args.minutes)),
                *("--overlays", overlays, "--overrides", json.dumps(overrides), "--seed", str(args.seed)),
                *("--size", str(args.size), "--image_size", str(args.image_size)),
                *("--training_pairs", str(args.training_pairs), "--validation_pairs", str(args.validation_pairs)),
                *("--work_dir", os.fspath(folder), "--no_install"),
            ]
        )
    return json.loads(record.read_text())


def plot(runs: dict, path: Path, title: str) -> None:
    """Validation Dice against training minutes, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, run in runs.items():
        curve = run.get("validation_curve", [])
        axis.plot([p["seconds"] / 60 for p in curve], [p["dice"] for p in curve], marker=".", label=name)
    axis.set_xlabel("training wall time (min)")
    axis.set_ylabel("validation mean label Dice")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="output file stem, e.g. miregnet_similarities")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--track", default="mono", choices=("mono", "multimodal"))
    parser.add_argument("--variants", required=True, help="JSON (text or file): variant name -> config overrides")
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget of each variant")
    parser.add_argument("--overlays", default="configs/augment.json", help="overlays of every variant")
    parser.add_argument(
        "--variant_overlays", default="{}", help="JSON: variant name -> its overlays instead of --overlays"
    )
    parser.add_argument("--pairs", type=int, default=4, help="test pairs of the track to score")
    parser.add_argument("--size", type=int, default=128, help="edge of the template grid (training and test pairs)")
    parser.add_argument("--image_size", type=int, default=64, help="working grid edge of the network")
    parser.add_argument("--training_pairs", type=int, default=64)
    parser.add_argument("--validation_pairs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default=None, help="one folder per variant (default: a temporary folder)")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    variants = parse_variants(args.variants)
    overlays = {name: args.overlays for name in variants} | json.loads(args.variant_overlays)
    unknown = sorted(set(overlays) - set(variants))
    if unknown:
        raise ValueError(f"--variant_overlays names variants that --variants does not define: {unknown}.")
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix=f"{args.name}_")
    runs = {name: train_variant(args, name, overrides, overlays[name]) for name, overrides in variants.items()}

    template = build_template(args.size)
    bundle_dir = shipped_bundle_dir(args.bundle)
    methods = {"identity": classical_method("identity")}
    for name in runs:
        weights = Path(args.work_dir) / name / "run" / "models" / "model.pt"
        methods[name] = BundleMethod(bundle_dir, weights, Path(args.work_dir) / name / "test_pairs")
    records = []
    for index in range(args.pairs):
        pair = make_pair(template, args.track, pair_seed(args.seed, args.track, "test", index))
        for method, run in methods.items():
            scores = score_pair(pair, run(pair))
            records.append({"track": args.track, "method": method, "pair": index, **scores})
            print(f"{args.track} pair {index} {method}: Dice {scores['dice']:.3f}")
    summary = summarize(records)[args.track]
    command = shlex.join(["python", "benchmarks/training_comparison.py", *(sys.argv[1:] if argv is None else argv)])
    content = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "variants": variants,
        "overlays": overlays,
        "runs": runs,
        "summary": summary,
        "records": records,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{args.name}.json", content)
    lines = [
        f"# {args.bundle} on the {args.track} track: training variants at one budget",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {content['machine']['platform']}, {content['machine']['cpus']} CPUs; {content['date']}. Each "
        f"variant trained for {args.minutes:g} wall-clock minutes on the same data and validation pairs, its "
        f"best validated weights scored on {args.pairs} test pairs at {args.size}^3 (network alone).",
        "",
        "| variant | overlays | overrides | iterations | best validation Dice | test Dice | displacement error (vox) "
        "| folding (%) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, stats in summary.items():
        run = runs.get(method, {})
        overrides = f"`{json.dumps(variants[method])}`" if method in variants else "-"
        validation = run.get("best_validation_dice")
        lines.append(
            f"| {method} | {f'`{overlays[method]}`' if overlays.get(method) else '-'} | {overrides} | "
            f"{run.get('iterations', '-')} | "
            f"{'-' if validation is None else f'{validation:.3f}'} | {stats['dice']['mean']:.3f} | "
            f"{stats['error_mean_vox']['mean']:.2f} | {stats['folding_percent']['mean']:.3f} |"
        )
    atomic_write_text(out_dir / f"{args.name}.md", "\n".join(lines) + "\n")
    plot(runs, out_dir / f"{args.name}.png", f"{args.bundle}, {args.track} track, {args.minutes:g} min per variant")
    return content


if __name__ == "__main__":
    main()
