# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The commands users type: ``python -m monai.bundle run training ...`` and ``torchrun ... multi_gpu_train.json``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers import QUICK


def _command_env(demo_cache) -> dict[str, str]:
    return {**os.environ, "MONAI_MINE_DATA": str(demo_cache), "OMP_NUM_THREADS": "1"}


def _checkout_command(*extra: str) -> list[str]:
    """The training command of README.md, typed at the root of a checkout (``extra`` appended)."""
    return [
        sys.executable, "-m", "monai.bundle", "run", "training",
        "--config_file", "['bundles/vtn_addd/configs/train.json','configs/quick.json']",
        "--meta_file", "bundles/vtn_addd/configs/metadata.json",
        "--logging_file", "bundles/vtn_addd/configs/logging.conf",
        *extra,
    ]  # fmt: skip


def test_training_command_without_bundle_root_stops_before_writing(tmp_path, bundle_copy, demo_cache):
    """From a checkout's root, the configs' ``"bundle_root": "."`` is not the bundle: the run stops in
    ``initialize``, naming the folder and what to pass, and writes nothing (no models/, eval/ or runs/ at the root)."""
    bundle_copy("vtn_addd")
    shutil.copytree(QUICK.parent, tmp_path / "configs")
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run(
        _checkout_command(), cwd=tmp_path, env=_command_env(demo_cache), capture_output=True, text=True
    )
    assert result.returncode != 0
    log = result.stdout + result.stderr
    folder = tmp_path.resolve()
    assert f"bundle_root '.' ({folder}) is not a bundle folder: it has no configs/metadata.json" in log, log[-3000:]
    assert "Pass --bundle_root <the folder of the bundle whose configs you run>" in log
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.slow
def test_literal_training_command_from_a_checkout(tmp_path, bundle_copy, demo_cache):
    """Run from a folder laid out like the repository, as README.md says: ``--bundle_root bundles/vtn_addd``."""
    bundle = bundle_copy("vtn_addd")
    shutil.copytree(QUICK.parent, tmp_path / "configs")
    command = _checkout_command("--bundle_root", "bundles/vtn_addd")
    result = subprocess.run(command, cwd=tmp_path, env=_command_env(demo_cache), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    for term in ("cc_affine", "orthogonality", "determinant", "tv_dense1", "cc_dense3", "val_score"):
        assert term in log, f"{term} not logged"
    assert re.search(r"test pairs \(4\): mean label Dice 0\.\d{3} after registration, 0\.688 before", log), log[-2000:]
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "models" / "checkpoint.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vtn_addd_inv", "miregnet"])
def test_multi_gpu_overlay_runs_two_cpu_processes(name, tmp_path, bundle_copy, demo_cache):
    """``torchrun --nproc_per_node=2`` with the gloo backend: both ranks train; rank 0 writes the checkpoint."""
    bundle = bundle_copy(name)
    configs = bundle / "configs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "monai.bundle", "run", "training",
        "--config_file", str([str(configs / "train.json"), str(configs / "multi_gpu_train.json"), str(QUICK)]),
        "--meta_file", str(configs / "metadata.json"),
        "--logging_file", str(configs / "logging.conf"),
        "--bundle_root", str(bundle),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=_command_env(demo_cache), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = torch.load(bundle / "models" / "checkpoint.pt", weights_only=False)
    assert checkpoint["trainer"]["iteration"] == 4
    assert not any(key.startswith("module.") for key in checkpoint["network"]), "DDP wrapper leaked into the weights"
