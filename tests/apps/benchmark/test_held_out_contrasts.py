"""Held-out contrasts: renderings no MI bundle trains on, on the multimodal track's exact geometry, and the script
that scores models on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monai_mine.apps.benchmark.contrasts import HELD_OUT_CONTRASTS, held_out_contrast, make_contrast_pair
from monai_mine.apps.benchmark.pairs import make_pair
from tests.helpers import REPOSITORY, benchmark_script


def _tissue_means(template, image):
    return [float(image[template.labels == label].mean()) for label in (1, 2, 3)]  # CSF, GM, WM


def test_power_inverse_is_monotone_decreasing_and_non_monotone_makes_grey_matter_brightest(template):
    csf, gm, wm = _tissue_means(template, held_out_contrast(template, "power_inverse"))
    assert csf > gm > wm
    csf, gm, wm = _tissue_means(template, held_out_contrast(template, "non_monotone"))
    assert gm > wm > csf  # neither the T1 order (WM > GM > CSF) nor its reverse


@pytest.mark.parametrize("kind", HELD_OUT_CONTRASTS)
def test_a_contrast_is_in_the_unit_range_and_dark_outside_the_brain(template, kind):
    image = held_out_contrast(template, kind)
    assert image.dtype == np.float32 and image.shape == template.t1.shape
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert not image[~template.mask].any()
    assert not np.allclose(image, template.t2_like, atol=0.1)  # not the training pairing


def test_a_contrast_pair_has_the_multimodal_pair_geometry(template):
    reference = make_pair(template, "multimodal", seed=5)
    pair = make_contrast_pair(template, "non_monotone", seed=5)
    assert pair.track == "non_monotone"
    np.testing.assert_array_equal(pair.displacement, reference.displacement)
    np.testing.assert_array_equal(pair.moving_label, reference.moving_label)
    np.testing.assert_array_equal(pair.fixed, reference.fixed)
    assert not np.allclose(pair.moving, reference.moving, atol=0.05)


def test_an_unknown_contrast_is_refused_with_the_choices(template):
    with pytest.raises(ValueError, match="power_inverse"):
        held_out_contrast(template, "flair")


def test_models_are_parsed_with_their_bundle():
    script = benchmark_script("held_out_contrasts")
    parsed = script.parse_models("miregnet=a/model.pt,gmi=miregnet:/tmp/b/model.pt")
    assert parsed == {"miregnet": ("miregnet", Path("a/model.pt")), "gmi": ("miregnet", Path("/tmp/b/model.pt"))}
    with pytest.raises(ValueError, match="name=path"):
        script.parse_models("miregnet")


def test_the_script_scores_every_contrast_and_writes_its_table(tmp_path):
    script = benchmark_script("held_out_contrasts")
    models = f"miregnet={REPOSITORY / 'bundles' / 'miregnet' / 'models' / 'model.pt'}"
    script.main(["--size", "32", "--pairs", "1", "--models", models, "--out_dir", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "held_out_contrasts.json").read_text())
    assert results["contrasts"] == ["multimodal", *HELD_OUT_CONTRASTS]
    for model in ("identity", "miregnet"):
        for contrast in results["contrasts"]:
            assert 0.0 <= results["summary"][model][contrast]["dice"] <= 1.0
    table = (tmp_path / "out" / "held_out_contrasts.md").read_text()
    assert "| miregnet |" in table and "non_monotone" in table
    assert (tmp_path / "out" / "held_out_contrasts.png").stat().st_size > 0
