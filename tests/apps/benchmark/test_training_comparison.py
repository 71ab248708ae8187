"""benchmarks/training_comparison.py: variants trained once each, scored on test pairs beside the identity, a run
already made reused, bad variants refused."""

from __future__ import annotations

import json

import pytest

from tests.helpers import benchmark_script

TINY = ["--size", "16", "--image_size", "16", "--training_pairs", "2", "--validation_pairs", "1", "--pairs", "1"]


@pytest.mark.slow
def test_each_variant_trains_once_and_is_scored_beside_the_identity(tmp_path):
    script = benchmark_script("training_comparison")
    variants = json.dumps({"narrow": {"network_channels": 4}, "slow": {"network_channels": 4, "learning_rate": 1e-05}})
    command = ["--name", "tiny", "--bundle", "vtn_addd", "--variants", variants, "--minutes", "0.05", *TINY]
    command += ["--variant_overlays", json.dumps({"slow": ""})]  # "slow" without the default augmentation
    content = script.main([*command, "--work_dir", str(tmp_path / "work"), "--out_dir", str(tmp_path / "out")])
    assert list(content["summary"]) == ["identity", "narrow", "slow"]
    assert all(content["runs"][name]["iterations"] >= 1 for name in ("narrow", "slow"))
    assert (
        content["runs"]["narrow"]["overlays"] == ["configs/augment.json"] and content["runs"]["slow"]["overlays"] == []
    )
    table = (tmp_path / "out" / "tiny.md").read_text()
    assert (
        '| narrow | `configs/augment.json` | `{"network_channels": 4}` |' in table
        and (tmp_path / "out" / "tiny.png").is_file()
    )
    record = tmp_path / "work" / "narrow" / "entry.json"
    before = record.stat().st_mtime_ns
    again = script.main([*command, "--work_dir", str(tmp_path / "work"), "--out_dir", str(tmp_path / "again")])
    assert record.stat().st_mtime_ns == before  # not trained again
    assert again["runs"] == content["runs"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "must be a JSON object of variant name -> config overrides"),
        ('{"a/b": {}}', r"variant names must be letters, digits and underscores \(folder names\), got \['a/b'\]"),
    ],
)
def test_bad_variants_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        benchmark_script("training_comparison").parse_variants(value)


def test_overlays_of_an_undefined_variant_are_refused(tmp_path):
    command = ["--name", "x", "--bundle", "vtn_addd", "--variants", '{"a": {}}', "--variant_overlays", '{"b": ""}']
    with pytest.raises(ValueError, match=r"--variant_overlays names variants that --variants does not define: \['b'\]"):
        benchmark_script("training_comparison").main([*command, "--work_dir", str(tmp_path)])


def test_variants_are_read_from_json_text_of_any_length_or_from_a_file(tmp_path):
    variants = {
        f"variant_{index}": {"loss_terms#0#loss": {"_target_": "monai.losses.GlobalMutualInformationLoss"}}
        for index in range(4)
    }  # longer than a file name may be
    assert benchmark_script("training_comparison").parse_variants(json.dumps(variants)) == variants
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    assert benchmark_script("training_comparison").parse_variants(str(tmp_path / "variants.json")) == variants
