"""The speed benchmark's smoke run: a tiny configuration end to end (table, JSON, report), no timing assertions."""

from __future__ import annotations

import json

import pytest

from monai_mine.apps.benchmark.speed import main
from monai_mine.apps.benchmark.speed.measuring import GIB
from monai_mine.apps.benchmark.speed.reporting import KEPT_HEADING, kept_sections, report, speed_table
from monai_mine.apps.benchmark.speed.rows import extrapolated_memory_gib, merge_rows, row_key

SMOKE = [
    "--sizes", "64", "--width", "4", "--networks", "miregnet", "--modes", "fast", "--bundles", "miregnet",
    "--amp", "on", "--classical", "ants_defaults", "--classical-size", "32", "--repeats", "1", "--warmup", "0",
    "--cpu-only", "--kinds", "inference", "train", "classical",
]  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_table_json_and_report(tmp_path, capsys):
    rows = main([*SMOKE, "--out-dir", str(tmp_path)])
    kinds = [(row["kind"], row.get("mode") or row.get("bundle") or row.get("method")) for row in rows]
    assert kinds == [("inference", "fast"), ("train", "miregnet"), ("classical", "ants_defaults")]
    assert not [row["error"] for row in rows if "error" in row]
    inference, train, classical = rows
    assert inference["latency_s"] > 0 and inference["pairs_per_s"] > 0 and inference["peak_memory_bytes"] > 0
    assert 1 <= inference["throughput_batch"] <= inference["max_batch"]
    assert train["amp"] and not train["checkpointing"] and train["width"] == 4
    assert train["iteration_s"] > 0 and train["peak_memory_bytes"] >= train["baseline_memory_bytes"]
    assert classical["latency_s"] > 0 and classical["size"] == 32

    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["rows"] == rows and stored["command"].startswith("monai-mine bench-speed --sizes 64")
    text = (tmp_path / "speed.md").read_text()
    table = capsys.readouterr().out
    assert speed_table(rows) in text and speed_table(rows) in table
    assert table.splitlines()[0].startswith("| what | device | size | batch-1 latency s")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 3  # header and 3 rows
    assert "## Targets (issue 6)" in text and "**not measured**, no GPU in this run" in text
    assert "Load average" in text and "Effect of each inference change" not in text

    # --update re-measures the chosen rows and keeps the others (and the first run's command)
    update = ["--kinds", "train", "--bundles", "miregnet", "vtn_addd", "--update", "--out-dir", str(tmp_path)]
    merged = main([*SMOKE, *update])
    assert [row_key(row) for row in merged[:3]] == [row_key(row) for row in rows]
    assert len(merged) == 4 and (merged[3]["kind"], merged[3]["bundle"]) == ("train", "vtn_addd")
    assert not [row["error"] for row in merged if "error" in row]
    assert merged[0] == inference and merged[2] == classical and merged[1] != train
    register = {"kind": "register", "device": "cpu", "bundle": "vtn_addd", "size": 128}
    alone, refined = register | {"instance_optimization": 0}, register | {"instance_optimization": "fast"}
    assert merge_rows([alone], [refined]) == [alone, refined]  # the network alone and a preset are two rows
    no_figure = alone | {"qc": False}
    assert merge_rows([alone, no_figure], [alone | {"qc": True}]) == [alone | {"qc": True}, no_figure]
    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["command"].startswith("monai-mine bench-speed --sizes 64") and "--update" in stored["update"]
    assert "its train rows re-measured by `monai-mine bench-speed" in (tmp_path / "speed.md").read_text()


def test_an_earlier_runs_ablation_rows_are_kept_and_shown_as_such():
    """speed.json files from before the ablation was dropped still render, their ablation rows marked as earlier."""
    inference = {"kind": "inference", "device": "cpu", "network": "vtn_addd", "size": 128, "mode": "eager"}
    inference |= {"latency_s": 1.5, "pairs_per_s": 0.7, "throughput_batch": 2, "peak_memory_bytes": GIB}
    variants = {
        "before": {"median_s": 2.0, "max_abs_ddf_diff": 0.0},
        "+ inference_mode": {"median_s": 1.0, "max_abs_ddf_diff": 2.5e-4},
    }
    ablation = {"kind": "ablation", "device": "cpu", "network": "vtn_addd", "size": 128, "repeats": 3}
    ablation |= {"reference_max_abs_ddf": 13.67, "variants": variants}
    remeasured = inference | {"latency_s": 1.2}
    rows = merge_rows([inference, ablation], [remeasured])  # --update keeps the earlier ablation rows
    assert rows == [remeasured, ablation]
    assert len(speed_table(rows).splitlines()) == 3  # header, alignment and the inference row
    text = report(rows, "monai-mine bench-speed", "2026-01-01", "1.0", "1.0", 60.0)
    assert "## Effect of each inference change (CPU), from an earlier run" in text
    assert "| change | time s | speed-up vs before | max abs DDF difference from before (voxels) |" in text
    assert "| + inference_mode | 1.000 | 2.00x | 2.50e-04 |" in text
    measured_by_hand = f"{KEPT_HEADING} on a CT pair\n\n| code | peak |\n|---|---|\n| after | 4.7 GB |\n"
    kept = kept_sections(text + "\n" + measured_by_hand)  # the earlier file with a hand-measured section
    rewritten = report(rows, "monai-mine bench-speed", "2026-01-02", "1.0", "1.0", 60.0, "", kept)
    assert rewritten.startswith("# Speed and memory") and rewritten.endswith(measured_by_hand)
    assert rewritten.count(KEPT_HEADING) == 1 and kept_sections(text) == ""


def test_memory_extrapolation_skips_rows_that_would_not_fit():
    measured = {"kind": "train", "device": "cpu", "bundle": "miregnet", "amp": False, "checkpointing": True}
    rows = [measured | {"size": 128, "baseline_memory_bytes": 2 * GIB, "peak_memory_bytes": 3 * GIB}]
    spec = measured | {"size": 256, "memory_gib": 16.0}
    assert extrapolated_memory_gib(rows, spec) == pytest.approx(2 + 8)  # the growth scales with the volume
    assert extrapolated_memory_gib(rows, spec | {"amp": True}) is None  # no comparable row
    assert extrapolated_memory_gib(rows, spec | {"device": "cuda"}) is None


def test_bad_options_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--sizes", "48"])
    assert "sizes must be multiples of 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--repeats", "0"])
    assert "--repeats must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--update", "--out-dir", str(tmp_path)])
    assert "--update needs an earlier run's" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--kinds", "ablation"])
    assert "invalid choice: 'ablation'" in capsys.readouterr().err


def test_register_row_breaks_the_wall_time_down_by_stage():
    from monai_mine.apps.benchmark.speed.reporting import register_tables
    from monai_mine.apps.benchmark.speed.workers import register_row

    spec = {"kind": "register", "device": "cpu", "bundle": "vtn_addd", "size": 32, "instance_optimization": 0}
    spec |= {"qc": False}
    row = register_row(spec | {"repeats": 1, "warmup": 0, "many_pairs": 2})
    assert row["latency_s"] > 0 and row["import_torch_monai_s"] > 0 and row["second_call_s"] > 0
    assert row["many_pairs"] == 2 and row["many_pairs_s"] > 0  # one process over a folder of two moving images
    assert {"start-up (interpreter, command line)", "imports (torch, MONAI, monai_mine)", "network", "writing"} <= set(
        row["stages"]
    )
    assert "config parsing" not in row["second_call_stages"] and "network" in row["second_call_stages"]
    assert "QC figure" not in row["stages"] and "QC figure" not in row["second_call_stages"]  # --qc false
    table = register_tables([row])
    assert "## monai-mine register: wall time by stage" in table and "| network |" in table and "| total |" in table
    assert "monai-mine register, vtn_addd, instance optimisation 0, --qc false" in table
    assert "One process over a folder of 2 such pairs took" in table
