# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What the speed benchmark measures with: timing loops, throughput, peak memory, and the machine it runs on."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from monai_mine.timing import device_clock, synchronize

__all__ = [
    "GIB",
    "available_memory_gib",
    "cpu_name",
    "device_name",
    "load_average",
    "peak_memory_bytes",
    "peak_rss_bytes",
    "throughput",
    "timed",
]

GIB = 1024**3


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


def available_memory_gib() -> float:
    """``MemAvailable`` of /proc/meminfo in GiB (Linux), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or ``"unknown"``."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def peak_memory_bytes(device: torch.device) -> int:
    """``torch.cuda.max_memory_allocated`` on CUDA, else the process's peak resident set size."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()


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
            start_time = device_clock(device)
            function()
            times.append(device_clock(device) - start_time)
    return times


def throughput(
    predict: Callable[[torch.Tensor], object],
    pairs: Callable[[int], torch.Tensor],
    spec: dict,
    device: torch.device,
    baseline: int,
    peak_batch1: int,
    rate_batch1: float,
) -> dict:
    """Pairs per second at batches 1, 2, 4, ... up to ``spec["max_batch"]``, stopping before memory runs out.

    Args:
        predict: runs the network on a batch (B, 2, X, Y, Z).
        pairs: makes a batch of ``B`` pairs (B, 2, X, Y, Z) on the CPU.
        spec: the row (``size``, ``repeats``, ``max_batch``, ``memory_gib``).
        device: where ``predict`` runs.
        baseline: peak memory in bytes before the first call.
        peak_batch1: peak memory in bytes after the batch-1 calls.
        rate_batch1: pairs per second at batch 1.

    Returns:
        ``throughput_batch`` and ``pairs_per_s`` of the fastest batch, and ``max_batch_tried``.
    """
    best = {"throughput_batch": 1, "pairs_per_s": rate_batch1}
    per_pair = max(peak_batch1 - baseline, 1)
    limit = spec["memory_gib"] * GIB
    batch = 2
    while batch <= spec["max_batch"]:
        if device.type != "cuda" and baseline + per_pair * batch > limit:
            break
        image = pairs(batch).to(device)
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
