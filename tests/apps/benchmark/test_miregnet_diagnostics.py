"""benchmarks/miregnet_diagnostics.py: a tiny run trains each chosen variant on the same draws and writes
both tables."""

from __future__ import annotations

import json

from tests.helpers import benchmark_script


def test_tiny_run_writes_both_tables(tmp_path):
    script = benchmark_script("miregnet_diagnostics", register=True)
    epe, mine_contrast, deform = script.VARIANTS[0], script.VARIANTS[5], script.VARIANTS[9]
    assert (epe.loss, mine_contrast.loss, mine_contrast.contrast) == ("epe", "mine", True)
    assert (deform.network, deform.smoothness) == ("deform", 1.0)
    script.main(["--out_dir", str(tmp_path), "--steps", "3", "--critic_steps", "2", "--variants", "0,5,9"])
    written = json.loads((tmp_path / "miregnet_diagnostics.json").read_text())
    first, second, third = written["variants"]
    assert [result["name"] for result in written["variants"]] == [epe.name, mine_contrast.name, deform.name]
    assert first["identity_error"] == second["identity_error"] and first["identity_error"][0] > 0  # same draws
    assert 0 < third["identity_error"][0] != first["identity_error"][0]  # the DeformNet's pairs: deformations
    assert all(len(result["error"]) == 1 and result["error"][0] > 0 for result in written["variants"])
    assert [critic["standardize"] for critic in written["critic"]] == [True, False]
    table = (tmp_path / "miregnet_diagnostics.md").read_text()
    assert "| variant | steps 1-3 | identity |" in table
    assert f"| {mine_contrast.name} | " in table and "| standardised | " in table
