# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The speed benchmark's workers: each measures one row (inference, training step or classical registration) in a
fresh subprocess, so that the peak memory it reports is its own.

:func:`run_row` starts ``python -m monai_mine.apps.benchmark.speed --worker SPEC``, which calls :func:`worker` and
prints the measured row as one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import monai_mine
from monai_mine.apps.benchmark.speed.measuring import GIB, peak_memory_bytes, peak_rss_bytes, throughput, timed
from monai_mine.apps.benchmark.speed.rows import NETWORKS

__all__ = [
    "WORKERS",
    "benchmark_pair",
    "build_network",
    "bundle_training_parts",
    "classical_row",
    "inference_row",
    "run_row",
    "smooth_pair",
    "train_row",
    "worker",
]


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
            amp_dtype=torch.get_autocast_dtype(device.type) if mode == "fast_amp" else None,  # bf16 CPU, f16 CUDA
            cuda_graph=mode == "fast_graph",
        )
    image = smooth_pair(spec["size"]).to(device)
    baseline = peak_memory_bytes(device)
    times = timed(lambda: predict(image), device, spec["repeats"], spec["warmup"])
    peak = peak_memory_bytes(device)
    latency = statistics.median(times)
    row = {**spec, "latency_s": latency, "times_s": times, "baseline_memory_bytes": baseline, "peak_memory_bytes": peak}
    pairs = lambda batch: smooth_pair(spec["size"], batch)  # noqa: E731
    row.update(throughput(predict, pairs, spec, device, baseline, peak, 1.0 / latency))
    return row


def bundle_training_parts(spec: dict) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    """The network, objective and optimiser of bundle ``spec["bundle"]``, read from its ``configs/train.json`` by the
    one bundle reader (:func:`monai_mine.bundle.read_bundle_config`).

    The network is built at the papers' widths (``spec["width"]``; VTN at depth 6) with activation checkpointing as
    ``spec["checkpointing"]`` says; the objective is moved to ``spec["device"]``.
    """
    from monai_mine.bundle import read_bundle_config, shipped_bundle_dir

    device = torch.device(spec["device"])
    overrides = {
        "device": f"$torch.device('{device}')",
        "network_channels": spec["width"],  # 16: the papers' widths, build_vtn("ADDD") and build_miregnet()
        "activation_checkpointing": spec["checkpointing"],
    }
    if spec["bundle"].startswith("vtn"):
        overrides["network_depth"] = 6
    parser = read_bundle_config(spec.get("bundle_root") or shipped_bundle_dir(spec["bundle"]), overrides=overrides)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network")
    objective = parser.get_parsed_content("loss").to(device)
    optimizer = parser.get_parsed_content("optimizer")
    return network, objective, optimizer


def train_row(spec: dict) -> dict:
    """One training iteration of a bundle (its network, objective and optimiser) at the paper's network size."""
    from monai_mine.engines import RegistrationTrainer

    device = torch.device(spec["device"])
    network, objective, optimizer = bundle_training_parts(spec)
    if spec.get("channels_last"):
        network = network.to(memory_format=torch.channels_last_3d)  # convolutions then keep activations channel-last
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
        from monai_mine.apps.benchmark.pairs import make_pair
        from monai_mine.apps.template import build_template

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
    from monai_mine.apps.benchmark.classical import ants_syn, elastix_affine_bspline, itk_threads

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


def _stage_table(text: str) -> dict[str, float]:
    """The ``stage  seconds  share`` rows that ``monai-mine register --timings`` prints."""
    stages, inside = {}, False
    for line in text.splitlines():
        if line.startswith("stage") and "seconds" in line:
            inside = True
        elif inside and line.strip():
            name, _, rest = line.partition("  ")
            rest = rest.split()
            if name.strip() != "total" and rest:
                stages[name.strip()] = float(rest[0])
    return stages


def register_row(spec: dict) -> dict:
    """``monai-mine register`` of the benchmark pair with a shipped bundle (the network alone, or
    ``instance_optimization``; without the QC figure if ``qc`` is false) as a user runs it: wall time from process
    start to exit and its stages (``--timings``), beside ``python -c "import torch, monai"``; then in this process a
    second call on a loaded bundle (``register_files`` with a ``TrainedModel``), the first call there untimed
    (warm-up)."""
    from monai_mine.apps.registration import register_files
    from monai_mine.bundle import load_trained_model, shipped_bundle_dir
    from monai_mine.io import save_nifti
    from monai_mine.timing import StageTimer

    fixed, moving, spacing, description = benchmark_pair(spec["size"])
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)).numpy()
    bundle = shipped_bundle_dir(spec["bundle"])
    steps = str(spec.get("instance_optimization", 0))
    qc = bool(spec.get("qc", True))
    with tempfile.TemporaryDirectory(prefix="monai_mine_register_") as folder:
        paths = {name: Path(folder) / f"{name}.nii.gz" for name in ("fixed", "moving")}
        save_nifti(fixed, paths["fixed"], affine)
        save_nifti(moving, paths["moving"], affine)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, monai"], check=True)
        import_s = time.perf_counter() - start
        command = [sys.executable, "-m", "monai_mine", "register", "--fixed", str(paths["fixed"]), "--moving"]
        command += [str(paths["moving"]), "--bundle", str(bundle), "--out", str(Path(folder) / "cli")]
        command += ["--instance_optimization", steps, "--timings", "--qc", str(qc).lower()]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        wall_s = time.perf_counter() - start
        model = load_trained_model(bundle)
        warm = Path(folder) / "warm"
        register_files(paths["fixed"], paths["moving"], model, warm, instance_optimization=steps, qc=qc)
        timer = StageTimer()
        start = time.perf_counter()
        register_files(paths["fixed"], paths["moving"], model, Path(folder) / "second", instance_optimization=steps,
                       timer=timer, qc=qc)  # fmt: skip
        second_s = time.perf_counter() - start
        many = int(spec.get("many_pairs", MANY_PAIRS))
        many_s = _many_pairs_wall_s(paths, bundle, steps, qc, Path(folder), many)
    return {
        **spec,
        "latency_s": wall_s,
        "import_torch_monai_s": import_s,
        "stages": _stage_table(result.stdout),
        "second_call_s": second_s,
        "second_call_stages": dict(timer.seconds),
        "pair": description,
        "many_pairs": many,
        "many_pairs_s": many_s,
        "peak_memory_bytes": peak_rss_bytes(),
    }


MANY_PAIRS = 8
"""Pairs of the register row's many-pairs run (unless its spec says ``many_pairs``): one ``monai-mine register``
over a folder of moving images."""


def _many_pairs_wall_s(paths: dict[str, Path], bundle: Path, steps: str, qc: bool, folder: Path, pairs: int) -> float:
    """Wall time of one ``monai-mine register --fixed <image> --moving <folder>`` process over ``pairs`` copies of
    the moving image (one model load, every output read and written), from process start to exit."""
    movings = folder / "movings"
    movings.mkdir()
    for index in range(pairs):
        shutil.copyfile(paths["moving"], movings / f"moving_{index}.nii.gz")
    command = [sys.executable, "-m", "monai_mine", "register", "--fixed", str(paths["fixed"]), "--moving"]
    command += [str(movings), "--bundle", str(bundle), "--out", str(folder / "many"), "--instance_optimization", steps]
    command += ["--qc", str(qc).lower()]
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


WORKERS = {"inference": inference_row, "train": train_row, "classical": classical_row, "register": register_row}
"""The worker of each row kind."""


def worker(spec: dict) -> dict:
    """Measure one row in this process; network rows on CPU may map at most ``memory_gib`` + 6 GiB (runtime)."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if spec["device"] == "cpu" and spec["kind"] in ("inference", "train") and hasattr(resource, "RLIMIT_AS"):
        # a row that would exhaust the shared machine fails with a MemoryError instead of waking the OOM killer
        limit = int((spec["memory_gib"] + 6) * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return {**WORKERS[spec["kind"]](spec), "torch_threads": torch.get_num_threads()}


def run_row(spec: dict) -> dict:
    """Measure one row in a fresh subprocess (``python -m monai_mine.apps.benchmark.speed --worker SPEC``)."""
    command = [sys.executable, "-m", "monai_mine.apps.benchmark.speed", "--worker", json.dumps(spec)]
    source = str(Path(monai_mine.__file__).resolve().parents[1])  # the folder holding this monai_mine, installed or not
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": path}
    with tempfile.TemporaryDirectory(prefix="monai_mine_speed_") as folder:  # toolkits' stray files land there
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=folder)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return {**spec, "error": f"failed: {last}"}
    return json.loads(result.stdout.strip().splitlines()[-1])
