# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Speed and memory of the bundle networks against ANTs and Elastix, measured in one run.

``monai-mine bench-speed`` and ``python benchmarks/speed.py`` run :func:`main`: plan the rows, measure each in a
worker subprocess, print the table and write ``speed.json`` and ``speed.md`` (``--update`` merges the re-measured
rows into an earlier run's). See :mod:`monai_mine.apps.benchmark.speed` for the rows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from monai_mine.apps.benchmark.speed.measuring import available_memory_gib, load_average
from monai_mine.apps.benchmark.speed.reporting import kept_sections, report, speed_table
from monai_mine.apps.benchmark.speed.rows import (
    BUNDLES,
    CLASSICAL,
    MODES,
    NETWORKS,
    extrapolated_memory_gib,
    merge_rows,
    plan_rows,
)
from monai_mine.apps.benchmark.speed.workers import WORKERS, run_row, worker

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options of one run, checked, with the CPU/CUDA defaults of ``--max-batch`` and ``--memory-gib`` filled in."""
    parser = argparse.ArgumentParser(prog="monai-mine bench-speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 320], help="cubic sizes (default 128 320)")
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--bundles", nargs="*", choices=list(BUNDLES), default=list(BUNDLES), help="training rows")
    parser.add_argument(
        "--amp", nargs="+", choices=["off", "on"], default=["off", "on"], help="training rows with AMP off / on"
    )
    parser.add_argument("--classical", nargs="*", choices=list(CLASSICAL), default=list(CLASSICAL))
    parser.add_argument("--classical-size", type=int, default=128, help="size of the classical pair (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5; training at most 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--max-batch", type=int, default=None, help="largest throughput batch (CPU 2, CUDA 64)")
    parser.add_argument("--memory-gib", type=float, default=None, help="CPU memory budget (default 3/4 available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default torch's)")
    parser.add_argument("--width", type=int, default=16, help="network width (16: the papers'; smoke tests use 4)")
    parser.add_argument("--kinds", nargs="+", choices=list(WORKERS), default=list(WORKERS), help="row kinds to run")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace the re-measured rows in the existing speed.json and keep its other rows (and its command)",
    )
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA rows even when a GPU is present")
    parser.add_argument("--out-dir", default="benchmarks/results", help="where speed.json and speed.md go")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    for size in args.sizes + [args.classical_size]:
        if size < 32 or size % 32:
            parser.error(f"sizes must be multiples of 32 (the networks' stride; VTN needs 64), got {size}")
    if args.update and not (Path(args.out_dir) / "speed.json").is_file():
        parser.error(f"--update needs an earlier run's {Path(args.out_dir) / 'speed.json'}; it is missing")
    args.amp = [value == "on" for value in dict.fromkeys(args.amp)]
    if args.max_batch is None:
        args.max_batch = 64 if torch.cuda.is_available() and not args.cpu_only else 2
    if args.memory_gib is None:
        args.memory_gib = available_memory_gib() * 0.75
    return args


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Run the benchmark; print the table; write ``speed.json`` and ``speed.md``. Returns the rows."""
    from monai_mine.bundle import shipped_bundle_dir
    from monai_mine.io.atomic import atomic_write_text

    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return []
    command = " ".join(["monai-mine bench-speed", *(argv if argv is not None else sys.argv[1:])])
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_before, clock = load_average(), time.perf_counter()
    out = Path(args.out_dir)
    previous = json.loads((out / "speed.json").read_text()) if args.update else None
    rows: list[dict] = []
    for spec in plan_rows(args):
        if spec["kind"] not in args.kinds:
            continue
        if spec["kind"] == "inference" and spec["network"] == "vtn_addd" and spec["size"] % 64:
            continue  # the paper-size VTN needs sizes divisible by 64
        needed = extrapolated_memory_gib(rows, spec)
        if needed is not None and needed > spec["memory_gib"]:
            rows.append(
                {**spec, "error": f"skipped: needs about {needed:.0f} GiB (extrapolated) > {spec['memory_gib']:.0f}"}
            )
            continue
        if spec["kind"] == "train":
            spec["bundle_root"] = os.fspath(shipped_bundle_dir(spec["bundle"]))  # workers run in a temporary folder
        print(f"measuring {json.dumps(spec)} ...", file=sys.stderr, flush=True)
        rows.append(run_row(spec))
    seconds, load_after, update = time.perf_counter() - clock, load_average(), ""
    if previous is not None:  # the table stays the first run's, with these rows re-measured
        update = (
            f"; its {', '.join(sorted({row['kind'] for row in rows}))} rows re-measured by `{command}` on {started}"
        )
        update += f" ({seconds / 60:.1f} min, load before {load_before}, after {load_after})"
        rows, command, started = merge_rows(previous["rows"], rows), previous["command"], previous["date"]
        update = previous.get("update", "") + update
        seconds, load_before, load_after = previous["seconds"], previous["load_before"], previous["load_after"]
    earlier = out / "speed.md"
    kept = kept_sections(earlier.read_text()) if earlier.is_file() else ""
    text = report(rows, command, started, load_before, load_after, seconds, update, kept)
    record = {"command": command, "date": started, "seconds": seconds, "load_before": load_before}
    record |= {"load_after": load_after, "update": update, "rows": rows}
    atomic_write_text(out / "speed.json", json.dumps(record, indent=1))
    atomic_write_text(out / "speed.md", text)
    print(speed_table(rows))
    print(f"\nwrote {out / 'speed.md'} and {out / 'speed.json'}", file=sys.stderr)
    return rows
