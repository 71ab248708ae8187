"""The speed benchmark's smoke run: a tiny configuration end to end (table, JSON, report), no timing assertions."""

from __future__ import annotations

import json

import pytest

from monai_mine.benchmark import speed

SMOKE = [
    "--sizes", "64", "--width", "4", "--networks", "miregnet", "--modes", "fast", "--bundles", "miregnet",
    "--amp", "on", "--classical", "ants_defaults", "--classical-size", "32", "--repeats", "1", "--warmup", "0",
    "--cpu-only",
]  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_table_json_and_report(tmp_path, capsys):
    rows = speed.main([*SMOKE, "--out-dir", str(tmp_path)])
    kinds = [(row["kind"], row.get("mode") or row.get("bundle") or row.get("method")) for row in rows]
    assert kinds == [
        ("inference", "fast"),
        ("train", "miregnet"),
        ("ablation", None),
        ("classical", "ants_defaults"),
    ]
    assert not [row["error"] for row in rows if "error" in row]
    inference, train, ablation, classical = rows
    assert inference["latency_s"] > 0 and inference["pairs_per_s"] > 0 and inference["peak_memory_bytes"] > 0
    assert 1 <= inference["throughput_batch"] <= inference["max_batch"]
    assert train["amp"] and not train["checkpointing"] and train["width"] == 4
    assert train["iteration_s"] > 0 and train["peak_memory_bytes"] >= train["baseline_memory_bytes"]
    variants = ablation["variants"]
    assert len(variants) == 7 and all(len(v["times_s"]) == 1 for v in variants.values())
    diffs = [v["max_abs_ddf_diff"] for v in variants.values()]
    assert diffs[0] == 0 and max(diffs[1:-1]) < 1e-4  # float32 changes keep the DDF; the last is bfloat16
    assert classical["latency_s"] > 0 and classical["size"] == 32

    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["rows"] == rows and stored["command"].startswith("monai-mine bench-speed --sizes 64")
    report = (tmp_path / "speed.md").read_text()
    table = capsys.readouterr().out
    assert speed.markdown_table(rows) in report and speed.markdown_table(rows) in table
    assert table.splitlines()[0].startswith("| what | device | size | batch-1 latency s")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 3  # header and 3 rows
    assert "## Targets (issue 6)" in report and "**not measured**, no GPU in this run" in report
    assert "Load average" in report and "## Effect of each inference change (CPU)" in report

    # --update re-measures the chosen rows and keeps the others (and the first run's command)
    update = ["--kinds", "train", "--bundles", "miregnet", "vtn_addd", "--update", "--out-dir", str(tmp_path)]
    merged = speed.main([*SMOKE, *update])
    assert [speed.row_key(row) for row in merged[:4]] == [speed.row_key(row) for row in rows]
    assert len(merged) == 5 and (merged[4]["kind"], merged[4]["bundle"]) == ("train", "vtn_addd")
    assert not [row["error"] for row in merged if "error" in row]
    assert merged[0] == inference and merged[2:4] == [ablation, classical] and merged[1] != train
    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["command"].startswith("monai-mine bench-speed --sizes 64") and "--update" in stored["update"]
    assert "its train rows re-measured by `monai-mine bench-speed" in (tmp_path / "speed.md").read_text()


def test_memory_extrapolation_skips_rows_that_would_not_fit():
    measured = {"kind": "train", "device": "cpu", "bundle": "miregnet", "amp": False, "checkpointing": True}
    rows = [measured | {"size": 128, "baseline_memory_bytes": 2 * speed.GIB, "peak_memory_bytes": 3 * speed.GIB}]
    spec = measured | {"size": 256, "memory_gib": 16.0}
    assert speed.extrapolated_memory_gib(rows, spec) == pytest.approx(2 + 8)  # the growth scales with the volume
    assert speed.extrapolated_memory_gib(rows, spec | {"amp": True}) is None  # no comparable row
    assert speed.extrapolated_memory_gib(rows, spec | {"device": "cuda"}) is None


def test_bad_options_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        speed.main(["--sizes", "48"])
    assert "sizes must be multiples of 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        speed.main(["--repeats", "0"])
    assert "--repeats must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        speed.main(["--update", "--out-dir", str(tmp_path)])
    assert "--update needs an earlier run's" in capsys.readouterr().err
