# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learning works: brief trainings raise the mean Dice on held-out demo pairs clearly above the identity's.

Measured on this project's CI-like machine (2 cores), on the 4 test pairs:

- VTN-ADDD with its default demo settings (mono pairs, 64^3): mean Dice 0.688 (identity) -> 0.906 in 219 s (0.738
  with the paper's flow-layer initialisation, the default before 2026-12-01).
- MIRegNet's AffineNet phase on the contrast pairs at 32^3, with the position-aware AffineNet
  (``affine_pooling`` ``"moments"``), VTN's orthogonality + determinant terms at 0.1 against MI's preference for
  volume changes, and a 40-iteration critic warm-up: 0.433 -> 0.535 and 0.592 in two runs of 60 epochs
  (720 iterations, 81 s), at the AffineNet learning rate 1e-3 of the time (1e-4 since 2026-12-06). With the
  bundle's default mean pooling the AffineNet learns one transform for all pairs and does not beat the identity.

Each test asserts less than half of the measured gain, so it stays robust to seeds and thread scheduling.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_workflow

# (bundle, overrides of train.json (here: its defaults, spelled out), asserted Dice gain over identity)
BRIEF_TRAININGS = [
    pytest.param(
        "vtn_addd",
        {"network_channels": 8, "network_depth": 3, "max_epochs": 20, "val_interval": 5, "learning_rate": 0.001},
        0.1,  # measured 0.218; the paper's initialisation gave 0.050, which this would catch
        id="vtn_addd-mono",
    ),
    pytest.param(
        "miregnet",
        {
            "image_size": 32,
            "network_def#affine_strides": [2, 2, 2, 1, 2, 1, 1, 1],  # total stride 16: 2^3 voxels at 32^3
            "affine_pooling": "moments",
            "affine_regularization": 0.1,
            "critic_warmup_iterations": 40,
            "affine_epochs": 60,
            "max_epochs": 60,
            "stage_schedule#phases": [{"train": [0], "epochs": 60}],  # the AffineNet phase alone
            "val_interval": 10,
        },
        0.04,
        id="miregnet-contrast",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, gain", BRIEF_TRAININGS)
def test_brief_training_beats_the_identity_on_held_out_pairs(name, overrides, gain, bundle_copy):
    bundle = bundle_copy(name)
    settings = {**overrides, "checkpoint_interval": 0}
    run_workflow(bundle, ("train.json",), "train", quick=False, **settings)
    run_workflow(bundle, ("train.json", "evaluate.json"), "eval", quick=False, **settings)
    metrics = json.loads((bundle / "eval" / "metrics_summary.json").read_text())["metrics"]
    before, after = metrics["dice_before"]["mean"], metrics["dice"]["mean"]
    assert after > before + gain, f"{name}: mean Dice {before:.3f} (identity) -> {after:.3f} after training"
    assert metrics["folding_percent"]["mean"] < 1.0
