"""benchmarks/learning_curves.py: a tiny run writes its curve, table and figure, and a second run is added."""

from __future__ import annotations

import json

from tests.helpers import benchmark_script

TINY = {"network_channels": 4, "max_epochs": 2, "epoch_length": 2, "image_size": 32, "val_interval": 2}


def test_tiny_runs_write_curves_table_and_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("MONAI_MINE_DATA", str(tmp_path / "data"))
    script, out = benchmark_script("learning_curves"), tmp_path / "curves.json"
    for label in ("first", "second"):
        script.main(["--label", label, "--overrides", json.dumps(TINY), "--every", "1", "--out", str(out)])
    runs = json.loads(out.read_text())
    assert [run["label"] for run in runs] == ["first", "second"]
    points = runs[0]["points"]
    assert [p["iteration"] for p in points] == [0, 2, 4]
    assert all(0 <= p["test_dice"] <= 1 for p in points) and points[-1]["seconds"] > 0
    assert abs(points[0]["test_dice"] - runs[0]["identity_dice"]) < 0.01  # untrained network: near the identity
    table = out.with_suffix(".md").read_text()
    assert "| first | vtn_addd |" in table and "| second | vtn_addd |" in table
    assert out.with_suffix(".png").stat().st_size > 10_000
