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
from bundle_workflow import QUICK


def _command_env(demo_cache) -> dict[str, str]:
    return {**os.environ, "MONAI_MINE_DATA": str(demo_cache), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_literal_training_command_from_a_checkout(tmp_path, bundle_copy, demo_cache):
    """Run from a folder laid out like the repository, without --bundle_root: the bundle finds its own folder."""
    bundle = bundle_copy("vtn_addd")
    shutil.copytree(QUICK.parent, tmp_path / "configs")
    command = [
        sys.executable, "-m", "monai.bundle", "run", "training",
        "--config_file", "['bundles/vtn_addd/configs/train.json','configs/quick.json']",
        "--meta_file", "bundles/vtn_addd/configs/metadata.json",
        "--logging_file", "bundles/vtn_addd/configs/logging.conf",
    ]  # fmt: skip
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
