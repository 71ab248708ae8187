"""benchmarks/train_weights.py: a tiny run installs weights with their record, records the run, and a continued run
starts from the installed weights and keeps the first run in its record."""

from __future__ import annotations

import json

import pytest
import torch

from monai_mine.apps.benchmark.training import training_chain
from monai_mine.bundle import load_trained_model, read_weights
from tests.helpers import benchmark_script, copy_bundle

TINY = ["--size", "16", "--image_size", "16", "--training_pairs", "2", "--validation_pairs", "1", "--minutes", "0.05"]


@pytest.mark.slow
def test_tiny_run_installs_weights_and_records_the_run(tmp_path, monkeypatch):
    script = benchmark_script("train_weights")
    bundle = copy_bundle("vtn_addd", tmp_path / "bundles" / "vtn_addd")
    monkeypatch.setattr(script, "shipped_bundle_dir", lambda name: tmp_path / "bundles" / name)
    monkeypatch.setattr(script, "RESULTS", tmp_path / "shipped_weights.json")
    overrides = ["--overrides", json.dumps({"network_channels": 4})]
    script.main(["--bundle", "vtn_addd", "--work_dir", str(tmp_path / "first"), *TINY, *overrides])

    runs = json.loads((tmp_path / "shipped_weights.json").read_text())
    first = runs["vtn_addd"]
    assert first["track"] == "mono" and first["iterations"] >= 1 and first["overlays"] == ["configs/augment.json"]
    assert first["validation_curve"] and 0 <= first["best_validation_dice"] <= 1
    assert (tmp_path / "shipped_weights.png").is_file()
    model = load_trained_model(bundle)  # the installed weights with their record: 4 channels, 16^3
    assert model.image_size == 16 and model.record.config["network_channels"] == 4

    installed = read_weights(bundle / "models" / "model.pt")
    continued = ["--bundle", "vtn_addd", "--work_dir", str(tmp_path / "second"), *TINY, *overrides]
    script.main([*continued, "--init_weights", str(bundle / "models" / "model.pt")])
    second = json.loads((tmp_path / "shipped_weights.json").read_text())["vtn_addd"]
    assert second["initialised_from"] == first
    stages = training_chain(second, ["initialised_from"])
    assert [stage["command"] for stage in stages] == [first["command"], second["command"]]
    after = read_weights(bundle / "models" / "model.pt")
    assert any(not torch.equal(installed[name], after[name]) for name in installed)  # trained on, then installed

    assert json.loads((tmp_path / "first" / "entry.json").read_text()) == first  # the record beside the outputs
    from_folder = ["--bundle", "vtn_addd", "--work_dir", str(tmp_path / "third"), *TINY, *overrides, "--no_install"]
    script.main([*from_folder, "--init_weights", str(tmp_path / "first" / "run" / "models" / "model.pt")])
    third = json.loads((tmp_path / "third" / "entry.json").read_text())
    assert third["initialised_from"] == first  # found through the work folder's entry.json
    assert json.loads((tmp_path / "shipped_weights.json").read_text())["vtn_addd"] == second  # nothing installed


@pytest.mark.slow
def test_a_resumed_segment_continues_the_checkpoint_and_keeps_the_segment_before(tmp_path, monkeypatch):
    script = benchmark_script("train_weights")
    monkeypatch.setattr(script, "RESULTS", tmp_path / "shipped_weights.json")
    common = ["--bundle", "vtn_addd", "--work_dir", str(tmp_path / "run"), *TINY, "--no_install"]
    common += ["--overrides", json.dumps({"network_channels": 4})]
    script.main(common)
    first = json.loads((tmp_path / "run" / "entry.json").read_text())
    checkpoint = read_weights(tmp_path / "run" / "run" / "models" / "checkpoint.pt")
    script.main([*common, "--resume"])
    second = json.loads((tmp_path / "run" / "entry.json").read_text())
    assert second["resumed_from"] == first and second["command"].endswith("--resume")
    assert second["iterations"] >= 1 and second["validation_curve"]  # this segment's own iterations and curve
    resumed = read_weights(tmp_path / "run" / "run" / "models" / "checkpoint.pt")
    assert resumed["trainer"]["iteration"] == checkpoint["trainer"]["iteration"] + second["iterations"]
    assert [stage["command"] for stage in training_chain(second)] == [first["command"], second["command"]]
    with pytest.raises(SystemExit):  # nothing to resume in a new folder
        script.main(["--bundle", "vtn_addd", "--work_dir", str(tmp_path / "new"), *TINY, "--resume"])
