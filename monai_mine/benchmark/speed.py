# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Speed and memory of the bundle networks against ANTs and Elastix, measured in one run.

Rows (each measured in a fresh subprocess, so that its peak memory is its own):

- ``inference``: per-pair latency at batch 1 and throughput at the largest batch that fits (batches 1, 2, 4, ...
  up to ``--max-batch``; on CUDA until out of memory, on CPU while the extrapolated peak stays under
  ``--memory-gib``) of ``build_vtn("ADDD")`` (the network of the ``vtn_addd`` and ``vtn_addd_inv`` bundles, at the
  paper's size) and ``build_miregnet()`` (``miregnet`` and ``midiceregnet``), run ``eager`` (float32, ``no_grad``)
  and through :class:`~monai_mine.inference.FastRegistration` (``fast``: channels-last float32; ``fast_amp``:
  with autocast, bfloat16 on CPU and float16 on CUDA; on CUDA also ``fast_graph``: a replayed CUDA graph);
- ``train``: one iteration of the bundle's own training step (its network, objective and optimiser from
  ``train.json``, run by :class:`~monai_mine.engines.RegistrationTrainer`) with AMP off and on, and with activation
  checkpointing where the row asks for it;
- ``classical``: ANTs SyN (antspyx defaults and the VTN paper's command) and Elastix affine + B-spline on one pair
  (the ICBM152 template pair of :mod:`monai_mine.benchmark.pairs` when nilearn is installed, else a smooth
  synthetic pair);
- ``ablation`` (CPU): the effect of each inference change on one pair, measured interleaved in one process, with
  the largest DDF difference from the float32 eager result of the code before the changes.

Times are the median of ``--repeats`` runs after ``--warmup`` untimed runs (CUDA events on GPU). Peak memory is
``torch.cuda.max_memory_allocated`` on GPU and the worker process's peak resident set size on CPU (it includes
the Python, torch and MONAI runtime, about 0.5 GiB). The run prints one Markdown table and writes ``speed.json``
and ``speed.md`` (device, command line, date, load, the table and the targets of issue 6) to ``--out-dir``.

Usage::

    python benchmarks/speed.py                                   # the full run (about 40 min on 2 CPU cores)
    monai-mine bench-speed --sizes 32 --repeats 1 --classical ants_defaults --out-dir /tmp/speed   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch

__all__ = ["CLASSICAL", "NETWORKS", "BUNDLES", "main", "plan_rows", "run_row", "markdown_table"]

NETWORKS = {"vtn_addd": "VTN-ADDD (+inv)", "miregnet": "MIRegNet / MIDiceRegNet"}
BUNDLES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
CLASSICAL = {
    "ants_defaults": "ANTs SyN, antspyx defaults",
    "ants_vtn_paper": "ANTs SyN, VTN paper's command",
    "elastix": "Elastix affine + B-spline",
}
LARGE_SIZE_NETWORKS = ("miregnet",)  # sizes above 128 are the MIRegNet paper's (320^3); VTN was 128^3
GIB = 1024**3


# ---------------------------------------------------------------------------------------------------- helpers
def cpu_name() -> str:
    """The CPU model (``lscpu``'s "Model name") and its core count."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def peak_memory_bytes(device: torch.device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones (CUDA events on GPU)."""
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            start_time = time.perf_counter()
            function()
            times.append(time.perf_counter() - start_time)
    return times


def smooth_pair(size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A smooth random pair (batch, 2, size, size, size) in [0, 1]: blurred noise, then normalised."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 2, *(max(size // 8, 2),) * 3, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)
    low = image.amin(dim=(2, 3, 4), keepdim=True)
    return (image - low) / (image.amax(dim=(2, 3, 4), keepdim=True) - low + 1e-6)


def build_network(name: str, width: int = 16) -> torch.nn.Module:
    """The bundle network ``name``; ``width`` 16 is its paper's size (``build_vtn("ADDD")``, ``build_miregnet()``).

    Other widths scale every layer as the bundles' ``network_channels`` does (smoke tests use 4).
    """
    from monai_mine.networks import build_miregnet, build_vtn

    if name not in NETWORKS:
        raise ValueError(f"network must be one of {sorted(NETWORKS)}, got {name!r}.")
    torch.manual_seed(0)
    if name == "vtn_addd":
        return build_vtn("ADDD", channels=width)
    affine = tuple(width * m for m in (1, 2, 4, 4, 8, 8, 16, 16))
    return build_miregnet(affine_channels=affine, deform_channels=tuple(width * m for m in (1, 2, 4, 8, 8)))


def amp_dtype_for(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.bfloat16


# ---------------------------------------------------------------------------------------------------- workers
def inference_row(spec: dict) -> dict:
    """Latency at batch 1, throughput at the largest batch that fits, and peak memory of one network and mode."""
    from monai_mine.inference import FastRegistration

    device = torch.device(spec["device"])
    network = build_network(spec["network"], spec["width"])
    mode = spec["mode"]
    if mode == "eager":
        network = network.to(device).eval()

        def predict(image: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return network(image)

    else:
        predict = FastRegistration(
            network,
            device=device,
            amp_dtype=amp_dtype_for(device) if mode == "fast_amp" else None,
            cuda_graph=mode == "fast_graph",
        )
    image = smooth_pair(spec["size"]).to(device)
    baseline = peak_memory_bytes(device)
    times = timed(lambda: predict(image), device, spec["repeats"], spec["warmup"])
    peak = peak_memory_bytes(device)
    latency = statistics.median(times)
    row = {**spec, "latency_s": latency, "times_s": times, "baseline_memory_bytes": baseline, "peak_memory_bytes": peak}
    row.update(throughput(predict, spec, device, baseline, peak, 1.0 / latency))
    return row


def throughput(
    predict: Callable, spec: dict, device: torch.device, baseline: int, peak_batch1: int, rate_batch1: float
) -> dict:
    """Pairs per second at batches 1, 2, 4, ... up to ``max_batch``, stopping before memory runs out."""
    best = {"throughput_batch": 1, "pairs_per_s": rate_batch1}
    per_pair = max(peak_batch1 - baseline, 1)
    limit = spec["memory_gib"] * GIB
    batch = 2
    while batch <= spec["max_batch"]:
        if device.type != "cuda" and baseline + per_pair * batch > limit:
            break
        image = smooth_pair(spec["size"], batch).to(device)
        try:
            times = timed(lambda: predict(image), device, min(spec["repeats"], 3), 1)
        except torch.cuda.OutOfMemoryError:
            break
        rate = batch / statistics.median(times)
        if rate > best["pairs_per_s"]:
            best = {"throughput_batch": batch, "pairs_per_s": rate}
        per_pair = max((peak_memory_bytes(device) - baseline) // batch, per_pair)
        del image
        batch *= 2
    best["max_batch_tried"] = batch // 2
    return best


def train_row(spec: dict) -> dict:
    """One training iteration of a bundle (its network, objective and optimiser) at the paper's network size."""
    from monai.bundle import ConfigParser

    from monai_mine import find_bundle_root
    from monai_mine.engines import RegistrationTrainer

    device = torch.device(spec["device"])
    bundle = spec["bundle"]
    parser = ConfigParser()
    bundle_root = spec.get("bundle_root") or find_bundle_root(bundle)  # main() resolves it from the user's cwd
    parser.read_config(os.path.join(bundle_root, "configs", "train.json"))
    parser["device"] = f"$torch.device('{device}')"
    parser["network_channels"] = spec["width"]  # 16: the papers' widths, build_vtn("ADDD") and build_miregnet()
    if bundle.startswith("vtn"):
        parser["network_depth"] = 6
    parser["activation_checkpointing"] = spec["checkpointing"]
    torch.manual_seed(0)
    network = parser.get_parsed_content("network")
    if spec.get("channels_last"):
        network = network.to(memory_format=torch.channels_last_3d)  # convolutions then keep activations channel-last
    objective = parser.get_parsed_content("loss").to(device)
    optimizer = parser.get_parsed_content("optimizer")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    pair = smooth_pair(spec["size"], spec["batch"])
    labels = (pair * 3).round().long().clamp(0, 3)  # 4 labels (0 background), for the Dice term
    batch = {
        "moving_image": pair[:, :1],
        "fixed_image": pair[:, 1:],
        "moving_label": labels[:, :1],
        "fixed_label": labels[:, 1:],
    }
    trainer = RegistrationTrainer(
        device=device,
        max_epochs=1,
        train_data_loader=[batch],
        network=network,
        optimizer=optimizer,
        objective=objective,
        amp=spec["amp"],
    )
    baseline = peak_memory_bytes(device)
    times = timed(lambda: trainer._iteration(trainer, batch), device, spec["repeats"], spec["warmup"])
    median = statistics.median(times)
    return {
        **spec,
        "iteration_s": median,
        "times_s": times,
        "pairs_per_s": spec["batch"] * (2 if objective.needs_reverse else 1) / median,
        "baseline_memory_bytes": baseline,
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def benchmark_pair(size: int) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float, float], str]:
    """(fixed, moving) (X, Y, Z) arrays, spacing and a description: the template pair, or a smooth synthetic one."""
    try:
        from monai_mine.benchmark.pairs import make_pair
        from monai_mine.benchmark.template import build_template

        pair = make_pair(build_template(size), "mono", seed=0)
        return pair.fixed, pair.moving, pair.spacing, f"ICBM152 template pair (mono, seed 0), {size}^3"
    except ImportError:
        from monai_mine.flows import warp

        image = smooth_pair(size)
        generator = torch.Generator().manual_seed(1)
        coarse = torch.randn(1, 3, 4, 4, 4, generator=generator) * size / 32
        ddf = torch.nn.functional.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)
        moving = warp(image[:, :1], ddf)
        spacing = (192.0 / size,) * 3
        return image[0, 0].numpy(), moving[0, 0].numpy(), spacing, f"smooth synthetic pair, {size}^3"


def classical_row(spec: dict) -> dict:
    """Wall time of one classical registration of the benchmark pair (median of ``repeats``, no warm-up)."""
    from monai_mine.benchmark.classical import ants_syn, elastix_affine_bspline, itk_threads

    fixed, moving, spacing, description = benchmark_pair(spec["size"])
    method = spec["method"]
    if method == "elastix":
        run = lambda: elastix_affine_bspline(fixed, moving, spacing)  # noqa: E731
    else:
        preset = "defaults" if method == "ants_defaults" else "vtn_paper"
        run = lambda: ants_syn(fixed, moving, spacing, preset=preset)  # noqa: E731
    times = timed(run, torch.device("cpu"), spec["repeats"], 0)
    return {
        **spec,
        "latency_s": statistics.median(times),
        "times_s": times,
        "pair": description,
        "threads": itk_threads(),
        "peak_memory_bytes": peak_rss_bytes(),
    }


# ------------------------------------------------------------------------------------------ ablation (CPU)
def _monai_warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"):
    """``monai_mine.flows.warp`` before the speed work: a fresh MONAI ``Warp`` per call."""
    from monai.networks.blocks import Warp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warper = Warp(mode=mode, padding_mode=padding_mode)
    if image.is_floating_point():
        return warper(image, ddf.to(image.dtype))
    return warper(image.to(ddf.dtype), ddf).round().to(image.dtype)


def _einsum_affine_to_ddf(matrix: torch.Tensor, translation: torch.Tensor, spatial_shape: Sequence[int]):
    """``monai_mine.flows.affine_to_ddf`` before the speed work: a full coordinate grid and an einsum."""
    from monai_mine.flows import identity_grid

    grid = identity_grid(spatial_shape, device=matrix.device, dtype=matrix.dtype)
    return torch.einsum("bij,jxyz->bixyz", matrix, grid) + translation[:, :, None, None, None]


def _einsum_compose_affine_ddf(matrix: torch.Tensor, translation: torch.Tensor, ddf: torch.Tensor):
    """``monai_mine.flows.compose_affine_ddf`` before the speed work."""
    return (
        ddf + torch.einsum("bij,bjxyz->bixyz", matrix, ddf) + _einsum_affine_to_ddf(matrix, translation, ddf.shape[2:])
    )


def previous_flows() -> ExitStack:
    """A context in which the cascade runs the flow code as it was before the speed work (for the ablation)."""
    from monai_mine import flows
    from monai_mine.networks import cascade

    stack = ExitStack()
    stack.enter_context(mock.patch.object(flows, "warp", _monai_warp))
    stack.enter_context(mock.patch.object(cascade, "warp", _monai_warp))
    stack.enter_context(mock.patch.object(cascade, "affine_to_ddf", _einsum_affine_to_ddf))
    stack.enter_context(mock.patch.object(cascade, "compose_affine_ddf", _einsum_compose_affine_ddf))
    return stack


def ablation_row(spec: dict) -> dict:
    """Each inference change alone and stacked, interleaved round by round, with its DDF difference."""
    from monai_mine.inference import FastRegistration

    network = build_network(spec["network"], spec["width"]).eval()
    image = smooth_pair(spec["size"])
    moving, fixed = image[:, :1], image[:, 1:]
    threads = torch.get_num_threads()

    def before():
        with torch.no_grad(), previous_flows():
            return network.stages(moving, fixed)[-1].composed_flow

    def new_flows():
        with torch.no_grad():
            return network.stages(moving, fixed)[-1].composed_flow

    def skip_last_warp():
        with torch.no_grad():
            return network(image)

    def inference_mode():
        with torch.inference_mode():
            return network(image)

    fast = FastRegistration(copy.deepcopy(network))
    fast_amp = FastRegistration(copy.deepcopy(network), amp_dtype="bfloat16")

    def one_thread():
        torch.set_num_threads(1)
        try:
            return fast(image)
        finally:
            torch.set_num_threads(threads)

    variants = {
        "before (no_grad, MONAI Warp per call, einsum affine flows, last warp)": before,
        "+ single-pass sampling grid, broadcast affine flows": new_flows,
        "+ no resampling after the last stage": skip_last_warp,
        "+ inference_mode": inference_mode,
        "+ channels_last_3d weights (FastRegistration)": lambda: fast(image),
        f"FastRegistration with {threads} -> 1 thread": one_thread,
        "FastRegistration + bfloat16 autocast": lambda: fast_amp(image),
    }
    reference = before()
    scale = float(reference.abs().max())
    rows = {
        name: {"times_s": [], "max_abs_ddf_diff": float((run() - reference).abs().max())}
        for name, run in variants.items()
    }
    for _ in range(spec["repeats"]):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            rows[name]["times_s"].append(time.perf_counter() - start)
    for values in rows.values():
        values["median_s"] = statistics.median(values["times_s"])
    return {**spec, "threads": threads, "reference_max_abs_ddf": scale, "variants": rows}


WORKERS = {"inference": inference_row, "train": train_row, "classical": classical_row, "ablation": ablation_row}


def run_row(spec: dict) -> dict:
    """Measure one row in a fresh subprocess (``python -m monai_mine.benchmark.speed --worker SPEC``)."""
    command = [sys.executable, "-m", "monai_mine.benchmark.speed", "--worker", json.dumps(spec)]
    source = str(Path(__file__).resolve().parents[2])  # the folder holding this monai_mine, installed or not
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": path}
    with tempfile.TemporaryDirectory(prefix="monai_mine_speed_") as folder:  # toolkits' stray files land there
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=folder)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return {**spec, "error": f"failed: {last}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker(spec: dict) -> dict:
    """Measure one row in this process; network rows on CPU may map at most ``memory_gib`` + 6 GiB (runtime)."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if spec["device"] == "cpu" and spec["kind"] in ("inference", "train") and hasattr(resource, "RLIMIT_AS"):
        # a row that would exhaust the shared machine fails with a MemoryError instead of waking the OOM killer
        limit = int((spec["memory_gib"] + 6) * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return {**WORKERS[spec["kind"]](spec), "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------------------- the run
def available_memory_gib() -> float:
    """``MemAvailable`` of /proc/meminfo in GiB (Linux), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def plan_rows(args: argparse.Namespace) -> list[dict]:
    """The rows of one run, in the order they are measured (classical methods last: the longest)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    common = {"repeats": args.repeats, "warmup": args.warmup, "threads": args.threads, "width": args.width}
    small = [size for size in args.sizes if size <= 128]
    rows: list[dict] = []
    for device in devices:
        modes = [mode for mode in args.modes if mode != "fast_graph" or device == "cuda"]
        for size in args.sizes:
            for network in args.networks:
                if size > 128 and network not in LARGE_SIZE_NETWORKS:
                    continue
                for mode in modes:
                    rows.append(
                        {"kind": "inference", "device": device, "network": network, "size": size, "mode": mode}
                        | {"max_batch": args.max_batch if size <= 128 else 1, "memory_gib": args.memory_gib}
                        | common
                        | {"repeats": args.repeats if size <= 128 else min(args.repeats, 2)}
                    )
            for bundle in args.bundles:
                large = size > 128
                if large and bundle != "miregnet":
                    continue
                variants = [(amp, large) for amp in args.amp if device == "cuda" or not large or not amp]
                variants = [(amp, checkpointing, False) for amp, checkpointing in variants]
                if bundle in ("vtn_addd", "miregnet") and not large and False in args.amp:
                    variants.append((False, True, False))  # the memory that checkpointing saves
                if device == "cuda" and True in args.amp:
                    variants.append((True, large, True))  # AMP with channels-last weights and activations
                for amp, checkpointing, channels_last in variants:
                    rows.append(
                        {"kind": "train", "device": device, "bundle": bundle, "size": size, "batch": 1}
                        | {"amp": amp, "checkpointing": checkpointing, "channels_last": channels_last}
                        | {"memory_gib": args.memory_gib}
                        | common
                        | {"repeats": min(args.repeats, 2 if size <= 128 else 1)}
                    )
        if device == "cpu" and args.ablation and small:
            for network in args.networks:
                rows.append(
                    {"kind": "ablation", "device": "cpu", "network": network, "size": small[0]}
                    | common
                    | {"repeats": min(args.repeats, 3)}
                )
    for method in args.classical:
        rows.append(
            {"kind": "classical", "method": method, "size": args.classical_size, "repeats": 1, "warmup": 0}
            | {"device": "cpu"}
        )
    return rows


def extrapolated_memory_gib(rows: list[dict], spec: dict) -> float | None:
    """CPU memory a row will need, from the same row measured at a smaller size (memory grows with the volume)."""
    if spec["device"] != "cpu" or spec["kind"] not in ("inference", "train"):
        return None
    keys = ("kind", "network", "mode", "bundle", "amp", "checkpointing")
    smaller = [
        row
        for row in rows
        if "error" not in row
        and row["device"] == "cpu"
        and row["size"] < spec["size"]
        and all(row.get(key) == spec.get(key) for key in keys)
    ]
    if not smaller:
        return None
    row = max(smaller, key=lambda row: row["size"])
    growth = (row["peak_memory_bytes"] - row["baseline_memory_bytes"]) * (spec["size"] / row["size"]) ** 3
    return (row["baseline_memory_bytes"] + growth) / GIB


def _gib(value: float | None) -> str:
    return "" if value is None else f"{value / GIB:.2f}"


def row_label(row: dict) -> str:
    width = "" if row.get("width", 16) == 16 else f", width {row['width']}"
    if row["kind"] == "inference":
        return f"{NETWORKS[row['network']]} inference, {row['mode']}{width}"
    if row["kind"] == "ablation":
        return f"{NETWORKS[row['network']]}{width}"
    if row["kind"] == "train":
        switches = (
            ("AMP", row["amp"]),
            ("checkpointing", row["checkpointing"]),
            ("channels-last", row.get("channels_last")),
        )
        extras = [name for name, on in switches if on]
        return f"{row['bundle']} training step{width}" + (f" ({', '.join(extras)})" if extras else "")
    return CLASSICAL[row["method"]]


def markdown_table(rows: list[dict]) -> str:
    """The main table: one line per inference, training or classical row."""
    lines = [
        "| what | device | size | batch-1 latency s | throughput pairs/s (batch) | train iteration s (pairs/s) "
        "| peak memory GiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["kind"] == "ablation":
            continue
        cells = [row_label(row), row["device"], f"{row['size']}^3", "", "", "", ""]
        if "error" in row:
            cells[3] = row["error"][:100]
        elif row["kind"] == "inference":
            cells[3] = f"{row['latency_s']:.3f}"
            cells[4] = f"{row['pairs_per_s']:.2f} ({row['throughput_batch']})"
            cells[6] = _gib(row["peak_memory_bytes"])
        elif row["kind"] == "train":
            cells[5] = f"{row['iteration_s']:.2f} ({row['pairs_per_s']:.2f})"
            cells[6] = _gib(row["peak_memory_bytes"])
        else:
            cells[3] = f"{row['latency_s']:.1f}"
            cells[6] = _gib(row["peak_memory_bytes"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_tables(rows: list[dict]) -> str:
    parts = []
    for row in rows:
        if row["kind"] != "ablation":
            continue
        if "error" in row:
            parts.append(f"{NETWORKS[row['network']]}, {row['size']}^3: failed: {row['error']}")
            continue
        before = next(iter(row["variants"].values()))["median_s"]
        lines = [
            f"{row_label(row)}, batch 1, {row['size']}^3, CPU, median of {row['repeats']} interleaved "
            f"rounds (largest |DDF| {row['reference_max_abs_ddf']:.2f} voxels):",
            "",
            "| change | time s | speed-up vs before | max abs DDF difference from before (voxels) |",
            "|---|---:|---:|---:|",
        ]
        for name, values in row["variants"].items():
            lines.append(
                f"| {name} | {values['median_s']:.3f} | {before / values['median_s']:.2f}x "
                f"| {values['max_abs_ddf_diff']:.2e} |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if "error" not in row and all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def targets(rows: list[dict]) -> str:
    """Issue 6's targets, each met or not, from the measured rows."""
    lines = []
    for mode in ("eager", "fast"):
        vtn = _find(rows, kind="inference", device="cpu", network="vtn_addd", size=128, mode=mode, width=16)
        if vtn is None:
            continue
        for method, factor in (("ants_vtn_paper", 100), ("elastix", 10)):
            classical = _find(rows, kind="classical", method=method, size=128)
            if classical is None:
                lines.append(f"- CPU, VTN-ADDD 128^3 ({mode}) vs {CLASSICAL[method]}: not measured in this run.")
                continue
            ratio = classical["latency_s"] / vtn["latency_s"]
            verdict = "met" if ratio >= factor else "NOT met"
            lines.append(
                f"- CPU, VTN-ADDD 128^3 inference ({mode}, {vtn['latency_s']:.2f} s) >= {factor}x faster than "
                f"{CLASSICAL[method]} ({classical['latency_s']:.1f} s): {ratio:.0f}x, **{verdict}**."
            )
    gpu = [row for row in rows if row["device"] == "cuda" and "error" not in row and row.get("width") == 16]
    if not gpu:
        lines.append(
            "- GPU targets (VTN-ADDD 128^3 < 10 ms per pair at batch 1, MIRegNet 320^3 < 1 s, VTN-ADDD training "
            "pairs/s with AMP on and off): **not measured**, no GPU in this run."
        )
    else:
        vtn = [r for r in gpu if r["kind"] == "inference" and r["network"] == "vtn_addd" and r["size"] == 128]
        mir = [r for r in gpu if r["kind"] == "inference" and r["network"] == "miregnet" and r["size"] == 320]
        for rows_, limit, name in ((vtn, 0.010, "VTN-ADDD 128^3"), (mir, 1.0, "MIRegNet 320^3")):
            if rows_:
                best = min(rows_, key=lambda r: r["latency_s"])
                verdict = "met" if best["latency_s"] < limit else "NOT met"
                lines.append(
                    f"- GPU, {name} inference < {limit * 1000:g} ms: {best['latency_s'] * 1000:.1f} ms "
                    f"({best['mode']}), **{verdict}**."
                )
        for amp in (False, True):
            train = _find(rows, kind="train", device="cuda", bundle="vtn_addd", size=128, amp=amp, checkpointing=False)
            if train:
                lines.append(
                    f"- GPU, VTN-ADDD 128^3 training, AMP {'on' if amp else 'off'}: {train['pairs_per_s']:.1f} pairs/s."
                )
    return "\n".join(lines)


def load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def row_key(row: dict) -> tuple:
    """What a row measures (not how often): rows with equal keys replace each other in ``--update``."""
    keys = ("kind", "device", "network", "bundle", "method", "size", "mode", "amp", "checkpointing", "channels_last")
    return tuple(row.get(key) for key in keys)


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with each row re-measured in ``new`` replaced in place; rows new to the table appended."""
    fresh = {row_key(row): row for row in new}
    merged = [fresh.pop(row_key(row), row) for row in old]
    return merged + list(fresh.values())


def report(
    rows: list[dict],
    command: str,
    started: str,
    load_before: str,
    load_after: str,
    seconds: float,
    update: str = "",
) -> str:
    devices = sorted({row["device"] for row in rows})
    names = "; ".join(f"{device}: {device_name(torch.device(device))}" for device in devices)
    threads = sorted({row.get("torch_threads") for row in rows if row.get("torch_threads")})
    itk = sorted({row.get("threads") for row in rows if row["kind"] == "classical" and "threads" in row})
    return f"""# Speed and memory

- Command: `{command}`
- Date: {started} (run took {seconds / 60:.1f} min){update}
- Device: {names}
- Software: torch {torch.__version__}, torch threads {threads}, ITK threads (ANTs, Elastix) {itk}, Python
  {platform.python_version()}
- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after}. The machine's cores are shared,
  so a load above the core count inflates the times of every row alike.

Times are medians after warm-up (classical methods: one run each, no warm-up). Peak memory on CPU is the peak
resident set size of the measuring process (it includes about 0.5 GiB of Python, torch and MONAI runtime); on GPU
`torch.cuda.max_memory_allocated`. Inference modes: `eager` = float32 `network(image)` under `no_grad`; `fast` =
`monai_mine.inference.FastRegistration` (inference_mode, channels_last_3d, float32); `fast_amp` = the same under
autocast (bfloat16 on CPU, float16 on CUDA); `fast_graph` = float32 replayed as a CUDA graph. Training rows run the
bundle's own network, objective and optimiser (train.json with the papers' network widths) through
`RegistrationTrainer` at batch 1 (vtn_addd_inv runs forward and reverse pairs: 2 pairs per iteration).

{markdown_table(rows)}

## Targets (issue 6)

{targets(rows)}

## Effect of each inference change (CPU)

{ablation_tables(rows) or "Not measured in this run (--no-ablation)."}
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="monai-mine bench-speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 320], help="cubic sizes (default 128 320)")
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "fast", "fast_amp", "fast_graph"],
        default=["eager", "fast", "fast_amp", "fast_graph"],
    )
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
    parser.add_argument("--no-ablation", dest="ablation", action="store_false", help="skip the CPU ablation rows")
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
    from monai_mine import find_bundle_root
    from monai_mine.data.atomic import atomic_write_text

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
            spec["bundle_root"] = find_bundle_root(spec["bundle"])  # workers run in a temporary folder
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
    text = report(rows, command, started, load_before, load_after, seconds, update)
    record = {"command": command, "date": started, "seconds": seconds, "load_before": load_before}
    record |= {"load_after": load_after, "update": update, "rows": rows}
    atomic_write_text(out / "speed.json", json.dumps(record, indent=1))
    atomic_write_text(out / "speed.md", text)
    print(markdown_table(rows))
    print(f"\nwrote {out / 'speed.md'} and {out / 'speed.json'}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
