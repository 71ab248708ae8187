# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""CPU forward time and peak memory of the default registration networks.

Measures, for batch 1 at ``size^3``: the default VTN ADDD cascade (``build_vtn()``), the default MIRegNet
(``build_miregnet()``) and one default VTN dense subnetwork (``VTNDenseNet()``). Each model runs in a fresh
subprocess (this script re-invoked with ``--worker --model NAME``) so that the peak resident set size, read with
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, belongs to that model alone. The forward time is the median of
``--repeats`` timed ``torch.no_grad()`` forwards after one untimed warm-up forward.

Usage::

    python benchmarks/network_speed.py --size 128 --repeats 3
    python benchmarks/network_speed.py --size 64 --models vtn_dense miregnet --threads 2

The output is a Markdown table: model, parameters, input, median forward time, RSS after building the model
(with the input allocated; the process peak so far) and peak RSS during the forwards, preceded by the torch
version, thread count and CPU model.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "vtn_addd": "VTN ADDD (build_vtn())",
    "miregnet": "MIRegNet (build_miregnet())",
    "vtn_dense": "VTNDenseNet()",
}


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def build(name: str):
    try:
        import monai_mine  # noqa: F401
    except ImportError:  # running from a source checkout without installing the package
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from monai_mine.networks import VTNDenseNet, build_miregnet, build_vtn

    return {"vtn_addd": build_vtn, "miregnet": build_miregnet, "vtn_dense": VTNDenseNet}[name]()


def worker(name: str, size: int, repeats: int, threads: int | None) -> dict:
    """Build one model, time its forward and report its memory; runs in its own process."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name).eval()
    stride = model.total_stride
    if size % stride:
        raise SystemExit(f"{name}: --size {size} is not divisible by the model's total stride {stride}.")
    image = torch.rand(1, 2, size, size, size)
    baseline = max_rss_bytes()
    times = []
    with torch.no_grad():
        model(image)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            ddf = model(image)
            times.append(time.perf_counter() - start)
    assert ddf.shape == (1, 3, size, size, size), ddf.shape
    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "input": [1, 2, size, size, size],
        "times_s": times,
        "median_s": statistics.median(times),
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": max_rss_bytes(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def run_worker(name: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--model",
        name,
        "--size",
        str(args.size),
        "--repeats",
        str(args.repeats),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker for {name} failed (exit {result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    gib = 1024**3
    lines = [
        "| model | params (M) | input | forward time s (median) | RSS after build GiB | peak RSS GiB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {MODELS[r['model']]} | {r['params'] / 1e6:.2f} | {'x'.join(map(str, r['input']))} "
            f"| {r['median_s']:.2f} | {r['baseline_rss_bytes'] / gib:.2f} | {r['peak_rss_bytes'] / gib:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="cubic input size (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per model (default 3)")
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models to measure (default all)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default torch's)")
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    if args.worker:
        print(json.dumps(worker(args.model, args.size, args.repeats, args.threads)))
        return

    results = []
    for name in args.models:
        print(f"measuring {MODELS[name]} at {args.size}^3 ...", file=sys.stderr, flush=True)
        results.append(run_worker(name, args))
    print(
        f"CPU: {cpu_model()}; torch {results[0]['torch']}, {results[0]['threads']} threads; batch 1, "
        f"no_grad, median of {args.repeats} forwards after 1 warm-up; peak RSS = ru_maxrss of a fresh process "
        "per model\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
