# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Exports of a trained bundle network in each format: agreement with the eager network and CPU latency.

For the shipped VTN-ADDD weights by default (``bundles/vtn_addd/models/model.pt``), in one run: export as
TorchScript (``.ts``), ONNX (``.onnx``, run by ONNX Runtime) and a ``torch.export`` program (``.pt2``) into a
temporary folder (the bundle is left alone), reload each with :func:`monai_mine.bundle.load_exported`, and at each
size (the working size and 128^3) compare its DDF with the eager network's on random pairs (max |difference| in
voxels) and time batch-1 forward passes (median of ``--runs`` after one warm-up; the formats are timed in turns, so
that a change of load on the machine touches them alike). Prints the table and writes ``export_formats.md`` and
``export_formats.json`` to ``--out_dir``::

    python benchmarks/export_formats.py --out_dir benchmarks/results --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from monai_mine.bundle import export_bundle, load_exported, load_trained_model
from monai_mine.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
FORMATS = {"torchscript": ".ts", "onnx": ".onnx", "program": ".pt2"}


def eager_network(bundle: Path, weights: Path | None) -> tuple[Callable, int]:
    """The eager network as the exports see it (inference config, record applied) and its working size."""
    trained = load_trained_model(bundle, weights, config_files=[bundle / "configs" / "inference.json"])

    def run(image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return trained.network(image)

    return run, trained.image_size


def export_all(bundle: Path, weights: Path | None, folder: Path) -> dict[str, dict]:
    """Each format exported into ``folder`` and loaded: ``{format: {"network", "export_s", "file_mb"}}``."""
    exports = {}
    for name, suffix in FORMATS.items():
        start = time.perf_counter()
        path = export_bundle(bundle, name, folder / f"model{suffix}", weights)
        seconds = time.perf_counter() - start
        exports[name] = {
            "network": load_exported(path).network,
            "export_s": seconds,
            "file_mb": path.stat().st_size / 2**20,
        }
    return exports


def compare(runners: dict[str, Callable], size: int, seed: int) -> dict[str, float]:
    """Max |DDF - eager DDF| (voxels) of each runner on one random (1, 2, size^3) pair, and the eager DDF's
    largest displacement."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 2, size, size, size, generator=generator)
    reference = runners["eager"](image)
    result = {name: float((run(image) - reference).abs().max()) for name, run in runners.items() if name != "eager"}
    result["eager_max_abs_ddf"] = float(reference.abs().max())
    return result


def latencies(runners: dict[str, Callable], size: int, runs: int) -> dict[str, list[float]]:
    """Seconds per batch-1 forward pass of each runner: one warm-up each, then ``runs`` rounds of one pass each
    in turn."""
    image = torch.rand(1, 2, size, size, size)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run(image)
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run(image)
            times[name].append(time.perf_counter() - start)
    return times


def table(results: dict) -> str:
    sizes = results["sizes"]
    header = ["format", "file MB", "export s"]
    header += [f"max abs DDF diff {s}^3 (voxels)" for s in sizes] + [f"latency {s}^3 s" for s in sizes]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, row in results["formats"].items():
        cells = [name] + [f"{row[key]:.1f}" if key in row else "" for key in ("file_mb", "export_s")]
        cells += [f"{row['difference'][str(s)]:.1e}" if "difference" in row else "(reference)" for s in sizes]
        cells += [f"{statistics.median(row['latency_s'][str(s)]):.3f}" for s in sizes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: dict) -> str:
    r = results
    sizes = ", ".join(f"{s}^3" for s in r["sizes"])
    largest = ", ".join(f"{s}^3: {v:.2f}" for s, v in r["eager_max_abs_ddf"].items())
    software = f"torch {r['torch']}, onnxruntime {r['onnxruntime']}, onnx {r['onnx']}, Python {r['python']}"
    return f"""# Exports: agreement with the eager network and CPU latency

- Command: `{r["command"]}`
- Date: {r["date"]} (run took {r["run_minutes"]:.1f} min)
- Model: bundle `{r["bundle"]}`, weights `{r["weights"]}` (working size {r["working_size"]}^3)
- Software: {software}; {r["threads"]} threads (torch and ONNX Runtime)
- Device: {r["device"]}
- Load average (1, 5, 15 min) before the run: {r["load_before"]}; after: {r["load_after"]}. The cores
  are shared: a load above the core count inflates every row, and the formats are timed in turns so that it
  touches them alike.

Sizes tried: {sizes}; every format took each (ONNX and `.pt2` have dynamic spatial axes: any multiple of the
network's total stride, at least twice it; TorchScript is traced and runs at any valid size). Differences are the
largest |DDF - eager DDF| over one random pair per size, in voxels (the eager DDF's largest displacement on these
noise pairs: {largest} voxels). Latency is the median of {r["runs"]} batch-1 forward passes after one warm-up
(eager: the network under `torch.inference_mode`; exports: `load_exported(path).network`).

{table(r)}
"""


def processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def measure(args: argparse.Namespace) -> dict:
    bundle = Path(args.bundle)
    weights = Path(args.weights) if args.weights else None
    torch.set_num_threads(args.threads)
    eager, working_size = eager_network(bundle, weights)
    sizes = sorted({working_size, *args.sizes})
    with tempfile.TemporaryDirectory() as folder:
        exports = export_all(bundle, weights, Path(folder))
        runners = {"eager": eager, **{name: entry["network"] for name, entry in exports.items()}}
        rows = {name: {} for name in runners}
        for name, entry in exports.items():
            rows[name].update(export_s=entry["export_s"], file_mb=entry["file_mb"], difference={})
        largest = {}
        for index, size in enumerate(sizes):
            differences = compare(runners, size, seed=index)
            largest[str(size)] = differences.pop("eager_max_abs_ddf")
            for name, value in differences.items():
                rows[name]["difference"][str(size)] = value
            for name, values in latencies(runners, size, args.runs).items():
                rows[name].setdefault("latency_s", {})[str(size)] = values
    return {"formats": rows, "sizes": sizes, "working_size": working_size, "eager_max_abs_ddf": largest}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(ROOT / "bundles" / "vtn_addd"), help="the bundle folder")
    parser.add_argument("--weights", default="", help="weights (default: the bundle's models/model.pt)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128], help="sizes besides the working size")
    parser.add_argument("--runs", type=int, default=5, help="timed passes per format and size")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"), help="where to write the report")
    args = parser.parse_args(argv)
    import onnx
    import onnxruntime

    start, load_before = time.perf_counter(), load_average()
    results = measure(args)
    results.update(
        command=shlex.join(["python", "benchmarks/export_formats.py", *(sys.argv[1:] if argv is None else argv)]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        run_minutes=(time.perf_counter() - start) / 60,
        bundle=os.path.relpath(args.bundle, ROOT),
        weights=os.path.relpath(args.weights, ROOT) if args.weights else "models/model.pt",
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        onnx=onnx.__version__,
        python=platform.python_version(),
        threads=args.threads,
        runs=args.runs,
        device=f"cpu: {processor()}, {os.cpu_count()} cores",
        load_before=load_before,
        load_after=load_average(),
    )
    out = Path(args.out_dir)
    text = report(results)
    atomic_write_text(out / "export_formats.md", text)
    atomic_write_text(out / "export_formats.json", json.dumps(results, indent=2) + "\n")
    print(text)
    return results


if __name__ == "__main__":
    main()
