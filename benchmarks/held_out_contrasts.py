# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MI models on contrasts they were not trained on: the benchmark's multimodal track beside held-out contrasts.

Each contrast has the same test pairs (geometry of the multimodal track's test seeds, 128^3): ``multimodal`` is the
benchmark's own T2-like moving image, the others are :data:`monai_mine.apps.benchmark.contrasts.HELD_OUT_CONTRASTS`.
Every model registers every pair with the network alone (``monai_mine.apps.registration.register_files``, as the
benchmark does); the table gives the mean tissue Dice, its gain over the identity and the folding, and the
figure shows one slice of each contrast::

    python benchmarks/held_out_contrasts.py --out_dir benchmarks/results \\
        --models miregnet=bundles/miregnet/models/model.pt,midiceregnet=bundles/midiceregnet/models/model.pt

A model is ``name=path`` (its bundle is ``name``) or ``name=bundle:path`` for another checkpoint of a bundle, e.g.
``miregnet_gmi=miregnet:/tmp/gmi/run/models/model.pt``. Writes ``held_out_contrasts.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from monai_mine.apps.benchmark.contrasts import HELD_OUT_CONTRASTS, make_contrast_pair
from monai_mine.apps.benchmark.evaluation import score_pair
from monai_mine.apps.benchmark.methods import BundleMethod, classical_method
from monai_mine.apps.benchmark.pairs import make_pair, pair_seed
from monai_mine.apps.template import build_template
from monai_mine.bundle import shipped_bundle_dir
from monai_mine.io import atomic_write_text

CONTRASTS = ("multimodal", *HELD_OUT_CONTRASTS)
DEFAULT_MODELS = "miregnet=bundles/miregnet/models/model.pt,midiceregnet=bundles/midiceregnet/models/model.pt"


def parse_models(value: str) -> dict[str, tuple[str, Path]]:
    """``name=path`` or ``name=bundle:path`` entries, comma-separated, as ``{name: (bundle, path)}``."""
    models = {}
    for entry in filter(None, value.split(",")):
        name, separator, target = entry.partition("=")
        if not separator or not name or not target:
            raise ValueError(f"a model is name=path or name=bundle:path, got {entry!r}.")
        bundle, _, path = target.rpartition(":") if ":" in target else (name, "", target)
        models[name] = (bundle, Path(path))
    return models


def contrast_pairs(template, contrast: str, count: int, seed: int) -> list:
    """The test pairs of a contrast: the multimodal track's seeds, the moving image in that contrast."""
    seeds = [pair_seed(seed, "multimodal", "test", index) for index in range(count)]
    if contrast == "multimodal":
        return [make_pair(template, "multimodal", pair_seed_) for pair_seed_ in seeds]
    return [make_contrast_pair(template, contrast, pair_seed_) for pair_seed_ in seeds]


def plot_contrasts(pairs: dict[str, list], path: Path) -> None:
    """The fixed T1 and the first moving image of each contrast, one axial slice each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(pairs.values()))[0]
    images = {"fixed (T1)": first.fixed} | {f"moving: {name}": group[0].moving for name, group in pairs.items()}
    figure, axes = plt.subplots(1, len(images), figsize=(3 * len(images), 3.2))
    for axis, (title, image) in zip(axes, images.items()):
        axis.imshow(np.rot90(image[:, :, image.shape[2] // 2]), cmap="gray", vmin=0, vmax=1)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_tables(results: dict, out_dir: Path) -> None:
    """``held_out_contrasts.md`` and ``.json`` from the per-pair scores."""
    contrasts = results["contrasts"]
    header = "| model | " + " | ".join(f"{name} Dice (gain)" for name in contrasts) + " | folding % (max) |"
    lines = [
        "# MI models on held-out contrasts",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{results['pairs']} test pairs per contrast ({results['size']}^3, the multimodal track's test seeds; only "
        "the moving image's contrast differs), network alone. Mean tissue Dice (CSF, GM, WM), in brackets the gain "
        "over the identity. `multimodal` is the benchmark's own track (the training pairing); the others are "
        "held out (`monai_mine/apps/benchmark/contrasts.py`).",
        "",
        header,
        "|---|" + "---|" * (len(contrasts) + 1),
    ]
    identity = results["summary"]["identity"]
    for model, row in results["summary"].items():
        cells = []
        for contrast in contrasts:
            gain = row[contrast]["dice"] - identity[contrast]["dice"]
            cells.append(f"{row[contrast]['dice']:.3f}" + ("" if model == "identity" else f" ({gain:+.3f})"))
        folding = max(row[contrast]["folding_percent_max"] for contrast in contrasts)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {folding:.3f} |")
    lines += ["", "![contrasts](held_out_contrasts.png)", ""]
    atomic_write_text(out_dir / "held_out_contrasts.md", "\n".join(lines))
    atomic_write_text(out_dir / "held_out_contrasts.json", json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="name=path or name=bundle:path, comma-separated")
    parser.add_argument("--size", type=int, default=128, help="template grid edge (voxels)")
    parser.add_argument("--pairs", type=int, default=4, help="test pairs per contrast")
    parser.add_argument("--seed", type=int, default=0, help="the benchmark seed")
    parser.add_argument("--contrasts", default=",".join(CONTRASTS))
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="held_out_contrasts_"))
    template = build_template(args.size)
    contrasts = [name for name in args.contrasts.split(",") if name]
    unknown = sorted(set(contrasts) - set(CONTRASTS))
    if unknown:
        parser.error(f"unknown contrasts {unknown}; choose from {list(CONTRASTS)}.")
    pairs = {contrast: contrast_pairs(template, contrast, args.pairs, args.seed) for contrast in contrasts}
    models = parse_models(args.models)
    methods = {"identity": classical_method("identity")}
    for name, (bundle, path) in models.items():
        methods[name] = BundleMethod(shipped_bundle_dir(bundle), path, work / name)

    scores: dict[str, dict[str, list]] = {name: {contrast: [] for contrast in contrasts} for name in methods}
    for contrast, group in pairs.items():
        for pair in group:
            for name, method in methods.items():
                score = score_pair(pair, method(pair))
                scores[name][contrast].append({key: score[key] for key in ("dice", "folding_percent", "runtime_s")})
                print(f"{contrast} seed {pair.seed} {name}: Dice {score['dice']:.3f}", flush=True)
    summary = {
        name: {
            contrast: {
                "dice": float(np.mean([entry["dice"] for entry in entries])),
                "folding_percent_max": float(max(entry["folding_percent"] for entry in entries)),
            }
            for contrast, entries in rows.items()
        }
        for name, rows in scores.items()
    }
    command = " ".join(["python", "benchmarks/held_out_contrasts.py", *(sys.argv[1:] if argv is None else argv)])
    results = {
        "command": command,
        "size": args.size,
        "pairs": args.pairs,
        "contrasts": contrasts,
        "models": {name: os.fspath(path) for name, (_, path) in models.items()},
        "summary": summary,
        "scores": scores,
    }
    plot_contrasts(pairs, out_dir / "held_out_contrasts.png")
    write_tables(results, out_dir)
    print((out_dir / "held_out_contrasts.md").read_text())


if __name__ == "__main__":
    main()
