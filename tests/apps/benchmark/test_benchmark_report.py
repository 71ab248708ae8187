# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Scores, summaries, the Markdown table, JSON and PNG outputs, and the whole benchmark at 48^3 with a bundle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monai_mine.apps.benchmark.evaluation import displacement_error, score_pair
from monai_mine.apps.benchmark.methods import MethodRun, classical_method
from monai_mine.apps.benchmark.report import summarize, track_table, write_box_plots, write_json, write_pair_figure
from monai_mine.apps.benchmark.runner import parse_checkpoints, parse_names, run_benchmark

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_small_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size < 1_000_000


def test_displacement_error_in_voxels_and_mm():
    shape = (4, 5, 6)
    truth = np.zeros((3, *shape))
    ddf = np.zeros((3, *shape))
    ddf[0] = 3.0  # 3 voxels off along axis 0 everywhere
    ddf[2, 0] = 4.0  # and, in the first slab only, 4 voxels along axis 2
    mask = np.ones(shape, dtype=bool)
    mask[1] = False  # a slab with an error of 3 voxels left out
    error = displacement_error(ddf, truth, mask, (2.0, 1.0, 0.5))
    voxels = np.array([5.0] * 30 + [3.0] * 60)  # slab 0: |(3, 0, 4)| = 5; slabs 2 and 3: 3
    millimetres = np.array([math.hypot(6.0, 2.0)] * 30 + [6.0] * 60)
    assert error["error_mean_vox"] == pytest.approx(voxels.mean())
    assert error["error_p95_vox"] == pytest.approx(np.percentile(voxels, 95))
    assert error["error_mean_mm"] == pytest.approx(millimetres.mean())
    with pytest.raises(ValueError, match="mask is empty"):
        displacement_error(ddf, truth, np.zeros(shape, dtype=bool), (1, 1, 1))


def test_identity_and_ground_truth_scores(pairs):
    pair = pairs["mono"]
    identity = score_pair(pair, classical_method("identity")(pair))
    truth = score_pair(pair, MethodRun(pair.ground_truth, 0.0))
    magnitude = np.linalg.norm(pair.ground_truth, axis=0)[pair.mask]
    assert identity["error_mean_vox"] == pytest.approx(magnitude.mean(), rel=1e-5)  # identity misses all of it
    assert identity["folding_percent"] == 0.0 and identity["sdlogj"] == 0.0
    assert truth["error_mean_vox"] == 0.0
    for key in ("dice", "dice_csf", "dice_gm", "dice_wm", "iou"):
        assert truth[key] > identity[key]
    assert truth["hd95"] < identity["hd95"] and truth["asd"] < identity["asd"]


def records():
    rows = []
    for pair, (dice, runtime) in enumerate([(0.8, 1.0), (0.9, 3.0)]):
        rows.append({"track": "mono", "method": "a", "pair": pair, "dice": dice, "runtime_s": runtime})
        rows.append({"track": "mono", "method": "b", "pair": pair, "dice": math.nan, "runtime_s": 2.0})
    return rows


def test_summary_and_table():
    summary = summarize(records())
    assert summary["mono"]["a"]["dice"]["mean"] == pytest.approx(0.85)
    assert summary["mono"]["a"]["dice"]["std"] == pytest.approx(0.05)
    assert summary["mono"]["a"]["runtime_s"]["median"] == pytest.approx(2.0)
    assert summary["mono"]["b"]["dice"]["n"] == 0 and math.isnan(summary["mono"]["b"]["dice"]["mean"])
    table = track_table(summary, "mono")
    assert "| a | 2 | - | - | - | 0.850 (0.050) |" in table
    assert "| b | 2 |" in table and "| 2.0 (0.0) |" in table
    with pytest.raises(KeyError, match="no results for track 'multimodal'"):
        track_table(summary, "multimodal")


def test_json_and_box_plots(tmp_path):
    path = write_json(tmp_path / "r.json", {"summary": summarize(records())})
    assert json.loads(path.read_text())["summary"]["mono"]["b"]["dice"]["mean"] is None  # NaN written as null
    assert is_small_png(write_box_plots(records(), "mono", tmp_path / "box.png", ["a", "b"]))
    with pytest.raises(ValueError, match="no records for track"):
        write_box_plots(records(), "multimodal", tmp_path / "none.png", ["a"])


def test_pair_figure(pairs, tmp_path):
    pair = pairs["multimodal"]
    ddfs = {"identity": np.zeros_like(pair.ground_truth), "truth": pair.ground_truth}
    assert is_small_png(write_pair_figure(pair, ddfs, tmp_path / "pair.png"))


def test_argument_parsing(tmp_path):
    assert parse_names("identity, elastix", ("identity", "elastix"), "methods") == ["identity", "elastix"]
    with pytest.raises(ValueError, match="--methods must list distinct names"):
        parse_names("identity,ants", ("identity", "elastix"), "methods")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    parsed = parse_checkpoints(f"vtn_addd={checkpoint},miregnet/multimodal={checkpoint}", ["mono", "multimodal"])
    assert set(parsed) == {("vtn_addd", "mono"), ("vtn_addd", "multimodal"), ("miregnet", "multimodal")}
    with pytest.raises(ValueError, match="must read bundle=PATH"):
        parse_checkpoints("vtn_addd", ["mono"])
    with pytest.raises(ValueError, match="must be a bundle among"):
        parse_checkpoints({"voxelmorph": str(checkpoint)}, ["mono"])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        parse_checkpoints({"vtn_addd/mono": str(tmp_path / "missing.pt")}, ["mono"])


def test_benchmark_at_48_with_identity_and_a_bundle(tmp_path):
    """The whole benchmark at 48^3: identity and VTN-ADDD trained here for one budget-limited step at 32^3."""
    out = tmp_path / "results"
    content = run_benchmark(
        out,
        size=48,
        pairs=1,
        tracks="mono",
        methods="identity,vtn_addd",
        train_minutes=0.005,
        work_dir=tmp_path / "work",
        training_pairs=2,
        validation_pairs=1,
        image_size=32,
        command="monai-mine benchmark --size 48",
    )
    methods = [record["method"] for record in content["records"]]
    assert methods == ["identity", "vtn_addd", "ground_truth"]
    bundle = content["records"][1]
    assert bundle["runtime_s"] > 0 and all(math.isfinite(bundle[key]) for key in ("dice", "hd95", "error_mean_mm"))
    assert content["training"]["vtn_addd/mono"]["iterations"] >= 1
    assert (tmp_path / "work" / "training" / "mono" / "vtn_addd" / "models" / "model.pt").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["command"] == "monai-mine benchmark --size 48"
    assert saved["summary"]["mono"]["identity"]["dice"]["n"] == 1
    table = (out / "results.md").read_text()
    assert "monai-mine benchmark --size 48" in table and "| vtn_addd | 1 |" in table and "| ground_truth | 1 |" in table
    assert is_small_png(out / "boxplots_mono.png") and is_small_png(out / "pair_mono.png")
