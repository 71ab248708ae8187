"""benchmarks/instance_optimization.py: a tiny run scores every start at every step count beside Elastix and writes
its table, targets, JSON and figure."""

from __future__ import annotations

import json

import pytest

from tests.helpers import benchmark_script


@pytest.mark.slow
def test_tiny_run_writes_the_trade_off(tmp_path):
    args = ["--out_dir", str(tmp_path / "out"), "--work_dir", str(tmp_path / "work"), "--size", "32"]
    args += ["--pairs", "1", "--tracks", "mono", "--steps", "0,5", "--networks", "mono=vtn_addd"]
    content = benchmark_script("instance_optimization").main(args)
    methods = list(content["summary"]["mono"])
    assert methods == ["elastix", "identity+io@0", "vtn_addd+io@0", "identity+io@5", "vtn_addd+io@5"]
    rows = content["summary"]["mono"]
    assert rows["identity+io@5"]["dice"] > rows["identity+io@0"]["dice"]  # pure optimisation registers
    assert rows["vtn_addd+io@5"]["runtime_s"] > 0 and rows["vtn_addd+io@0"]["runtime_s"] > 0  # timed, not compared
    written = json.loads((tmp_path / "out" / "instance_optimization.json").read_text())
    assert written["steps"] == ["0", "5"] and len(written["records"]) == 5
    table = (tmp_path / "out" / "instance_optimization.md").read_text()
    assert "| vtn_addd+io | 5 | 1 |" in table and "- mono: " in table
    assert (tmp_path / "out" / "instance_optimization.png").stat().st_size > 10_000
    # the report is rewritten from the JSON alone, running nothing, to the same text
    (tmp_path / "out" / "instance_optimization.md").unlink()
    benchmark_script("instance_optimization").main(["--out_dir", str(tmp_path / "out"), "--report_only"])
    assert (tmp_path / "out" / "instance_optimization.md").read_text() == table


def test_arguments_are_checked():
    script = benchmark_script("instance_optimization")
    assert script.optimizer_for("0", 128) is None and script.optimizer_for("25", 128).steps == (25, 25)
    fine = script.optimizer_for("50/40/10", 128)
    assert fine.steps == (50, 40, 10) and fine.levels == (32, 64, 128) and fine.learning_rate == (1.0, 1.0, 0.25)
    with pytest.raises(ValueError, match="must read N, A/B/C or a preset"):
        script.optimizer_for("5/5", 128)
    with pytest.raises(ValueError, match="must read N, A/B/C or a preset"):
        script.optimizer_for("fastest", 128)
    accurate = script.optimizer_for("accurate", 128)  # a preset is its schedule, as register runs it at 128^3
    assert accurate.steps == (50, 50, 20) and accurate.levels == (32, 64, 128) and accurate.learning_rate[2] == 0.25
    assert script.steps_label("fast") == "fast (25/25/0)" and script.steps_label("50/50/10") == "50/50/10"
    with pytest.raises(ValueError, match="must read track=bundle"):
        script.parse_networks("brain=vtn_addd")
    with pytest.raises(FileNotFoundError, match="weights /nowhere.pt"):
        script.parse_networks("mono=vtn_addd:/nowhere.pt")
    starts = script.parse_networks("multimodal=miregnet,multimodal=midiceregnet")["multimodal"]
    assert [name for name, _ in starts] == ["miregnet", "midiceregnet"]  # several starts on one track
    chosen = script.parse_similarities("multimodal=local_correlation+mine", ["mono", "multimodal"])
    assert chosen == {"mono": ["local_correlation"], "multimodal": ["local_correlation", "mine"]}
    with pytest.raises(ValueError, match="must read track=name"):
        script.parse_similarities("multimodal=parzen", ["multimodal"])
    assert script.optimizer_for("fast", 128, "mine").similarity.samples == 16384  # a fresh MINE critic, sampled
    assert script.method_name("miregnet", "mine", "fast") == "miregnet+io:mine@fast"
    assert script.method_name("miregnet", "mine", "0") == script.method_name("miregnet", "local_correlation", "0")
