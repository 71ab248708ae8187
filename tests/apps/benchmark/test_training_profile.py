"""benchmarks/training_profile.py: the parts of a training iteration timed by the trainer's events, with FLOPs."""

from __future__ import annotations

import json

import pytest

from tests.helpers import benchmark_script


def test_summarise_splits_each_iteration_at_the_trainer_events():
    names = ["get_batch_started", "get_batch_completed", "forward_completed", "loss_completed"]
    names += ["backward_completed", "model_completed"]
    marks = []
    for start in (0.0, 10.0, 20.0):  # three iterations of 10 s: data 1, forward 2, loss 3, backward 1, opt 1
        marks += list(zip(names, [start, start + 1, start + 3, start + 6, start + 7, start + 8]))
    row = benchmark_script("training_profile")._summarise(marks, warmup=1)
    assert row["iterations"] == 1  # the first is warm-up, the last has no following start
    assert (row["data"], row["forward"], row["loss"], row["backward"], row["optimiser"]) == (1, 2, 3, 1, 1)
    assert row["handlers"] == 2 and row["step_s"] == 10 and row["iterations_per_s"] == 0.1


@pytest.mark.slow
def test_a_tiny_profile_writes_its_table(tmp_path):
    arguments = ["--bundles", "vtn_addd", "--size", "32", "--image_size", "32", "--iterations", "2", "--warmup", "1"]
    arguments += ["--pairs", "2", "--work_dir", str(tmp_path / "work"), "--out_dir", str(tmp_path / "out")]
    arguments += ["--overrides", json.dumps({"network_channels": 4})]
    benchmark_script("training_profile").main(arguments)
    results = json.loads((tmp_path / "out" / "training_profile.json").read_text())
    (rows,) = results["versions"].values()
    row = rows["vtn_addd"]
    assert row["iterations"] == 1 and row["gflop_per_iteration"] > 0 and row["step_s"] > 0
    assert row["top_operators"] and "| vtn_addd |" in (tmp_path / "out" / "training_profile.md").read_text()
