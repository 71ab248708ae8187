# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""``monai-mine benchmark``: bad arguments end with one line naming the argument, before any work is done; the
``+io`` methods refine their start by instance optimisation."""

from __future__ import annotations

import json

import pytest

from monai_mine.apps.cli import benchmark
from tests.helpers import REPOSITORY


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"tracks": "ct"}, "--tracks must list distinct names among"),
        ({"methods": "identity,voxelmorph"}, "--methods must list distinct names among"),
        ({"pairs": 0}, "--pairs must be at least 1"),
        ({"methods": "vtn_addd", "train_minutes": 0}, "--train_minutes must be positive"),
        ({"checkpoints": "vtn_addd=missing.pt"}, "checkpoint missing.pt for 'vtn_addd' does not exist"),
        ({"methods": "identity+io", "instance_optimization": 0}, "--instance_optimization must be at least 1 step"),
    ],
)
def test_bad_arguments(tmp_path, arguments, match):
    with pytest.raises(SystemExit, match=match):
        benchmark(out_dir=str(tmp_path / "out"), **arguments)
    assert not (tmp_path / "out").exists()


def test_instance_optimization_methods_refine_their_start(tmp_path):
    weights = REPOSITORY / "bundles" / "vtn_addd" / "models" / "model.pt"
    benchmark(
        out_dir=str(tmp_path / "out"),
        size=32,
        pairs=1,
        tracks="mono",
        methods="identity,identity+io,vtn_addd,vtn_addd+io",
        checkpoints=f"vtn_addd={weights}",
        instance_optimization=10,
    )
    content = json.loads((tmp_path / "out" / "results.json").read_text())
    summary = content["summary"]["mono"]
    assert content["settings"]["instance_optimization"] == 10
    assert summary["identity+io"]["dice"]["mean"] > summary["identity"]["dice"]["mean"] + 0.05
    assert summary["vtn_addd+io"]["dice"]["mean"] != summary["vtn_addd"]["dice"]["mean"]
