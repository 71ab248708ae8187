# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What one speed run measures: its rows (networks, bundles, classical methods, sizes, modes) and how rows of two
runs are merged (``--update``).

A row is a dict: the spec a worker measures (``kind``, ``device``, ``size``, ...) and, once measured, its results
(``latency_s``, ``peak_memory_bytes``, ...) or an ``error``.
"""

from __future__ import annotations

import argparse

import torch

from monai_mine.apps.benchmark.speed.measuring import GIB

__all__ = [
    "BUNDLES",
    "CLASSICAL",
    "LARGE_SIZE_NETWORKS",
    "MODES",
    "NETWORKS",
    "extrapolated_memory_gib",
    "merge_rows",
    "plan_rows",
    "row_key",
]

NETWORKS = {"vtn_addd": "VTN-ADDD (+inv)", "miregnet": "MIRegNet / MIDiceRegNet"}
"""The networks of the inference rows and their labels (VTN-ADDD serves vtn_addd and vtn_addd_inv)."""

BUNDLES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
"""The bundles of the training rows."""

CLASSICAL = {
    "ants_defaults": "ANTs SyN, antspyx defaults",
    "ants_vtn_paper": "ANTs SyN, VTN paper's command",
    "elastix": "Elastix affine + B-spline",
}
"""The classical methods and their labels."""

MODES = ("eager", "fast", "fast_amp", "fast_graph")
"""Inference modes: float32 ``no_grad``; FastRegistration float32, with autocast, as a CUDA graph (CUDA only)."""

LARGE_SIZE_NETWORKS = ("miregnet",)  # sizes above 128 are the MIRegNet paper's (320^3); VTN was 128^3


def plan_rows(args: argparse.Namespace) -> list[dict]:
    """The rows of one run, in the order they are measured (classical methods last: the longest)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    common = {"repeats": args.repeats, "warmup": args.warmup, "threads": args.threads, "width": args.width}
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
    if "register" in getattr(args, "kinds", ()):
        # the network alone, with and without the QC figure, and the fast preset
        for steps, qc in ((0, True), (0, False), ("fast", True)):
            rows.append(
                {"kind": "register", "device": "cpu", "bundle": "vtn_addd", "size": args.classical_size}
                | {"instance_optimization": steps, "qc": qc, "repeats": 1, "warmup": 0}
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


def row_key(row: dict) -> tuple:
    """What a row measures (not how often): rows with equal keys replace each other in ``--update``."""
    keys = ("kind", "device", "network", "bundle", "method", "size", "mode", "amp", "checkpointing", "channels_last")
    keys += ("instance_optimization",)
    return (*(row.get(key) for key in keys), row.get("qc", True))  # rows from before the QC switch drew the figure


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with each row re-measured in ``new`` replaced in place; rows new to the table appended."""
    fresh = {row_key(row): row for row in new}
    merged = [fresh.pop(row_key(row), row) for row in old]
    return merged + list(fresh.values())
