"""benchmarks/training_scaling.py: a run's curve in CPU-hours, its best weights scored on the test pairs."""

from __future__ import annotations

import json

import pytest

from monai_mine.apps.benchmark.training import training_chain
from tests.helpers import benchmark_script


def test_labels_and_cpu_hours_come_from_the_record():
    script = benchmark_script("training_scaling")
    assert script.run_label({"bundle": "vtn_addd", "overrides": {"network_channels": 16}}) == "vtn_addd w16"
    assert script.run_label({"bundle": "miregnet", "overrides": {}}) == "miregnet w8"
    sampled = {"bundle": "miregnet", "overrides": {"mine#samples": 16384}, "initialised_from": {"bundle": "miregnet"}}
    assert script.run_label(sampled) == "miregnet w8 mine#samples=16384 +init"
    assert script.cpu_hours(1800.0, {"threads": 2}) == pytest.approx(1.0)
    # a run continued with --resume: one row, labelled by its first segment, its curves on one CPU-hour axis
    first = {"bundle": "vtn_addd", "overrides": {"network_channels": 16}, "threads": 2, "training_s": 1800.0}
    first["validation_curve"] = [{"seconds": 900.0, "dice": 0.5}]
    second = {"bundle": "vtn_addd", "overrides": {}, "threads": 1, "training_s": 3600.0, "resumed_from": first}
    second["validation_curve"] = [{"seconds": 1800.0, "dice": 0.6}]
    assert training_chain(second) == [first, second] and script.run_label(second) == "vtn_addd w16"
    joined = script.joined_curve(training_chain(second))
    assert joined == [{"cpu_hours": 0.5, "dice": 0.5}, {"cpu_hours": 1.5, "dice": 0.6}]
    assert script.cpu_hours(3600.0, {}) == pytest.approx(1.0)  # an older record: one thread


def test_a_tiny_run_gets_its_row_table_and_figure(tmp_path):
    tiny = ["--size", "16", "--image_size", "16", "--training_pairs", "2", "--validation_pairs", "1"]
    run = tmp_path / "w4"
    benchmark_script("train_weights").main(
        ["--bundle", "vtn_addd", "--minutes", "0.05", "--work_dir", str(run), "--no_install", *tiny]
        + ["--overrides", json.dumps({"network_channels": 4})]
    )
    script = benchmark_script("training_scaling")
    script.main(["--runs", str(run), "--pairs", "1", "--size", "16", "--out_dir", str(tmp_path / "out")])
    rows = json.loads((tmp_path / "out" / "training_scaling.json").read_text())
    row = rows["vtn_addd w4"]
    entry = json.loads((run / "entry.json").read_text())
    assert row["cpu_hours"] == pytest.approx(entry["training_s"] * entry["threads"] / 3600, abs=1e-3)
    assert row["curve"] and 0.0 <= row["test_dice"] <= 1.0 and 0.0 <= row["identity_dice"] <= 1.0
    assert "| vtn_addd w4 | mono |" in (tmp_path / "out" / "training_scaling.md").read_text()
    assert (tmp_path / "out" / "training_scaling.png").stat().st_size > 0
