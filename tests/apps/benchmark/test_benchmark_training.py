# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The wall-clock training budget (alone and over the phases of a stage schedule) and the training datalist."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest
from ignite.engine import Engine

from monai_mine.apps.benchmark.training import TimeBudget, write_training_datalist
from monai_mine.data import load_registration_datalist
from monai_mine.engines import StageSchedule
from monai_mine.networks import build_miregnet

STEP_S = 0.02


def sleeping_engine(max_epochs: int) -> tuple[Engine, list[int]]:
    """An engine whose iterations sleep STEP_S; records the epoch of every iteration."""
    epochs = []

    def step(engine, batch):
        time.sleep(STEP_S)
        epochs.append(engine.state.epoch)

    engine = Engine(step)
    engine.state.max_epochs = max_epochs
    return engine, epochs


def test_budget_stops_within_the_deadline():
    engine, epochs = sleeping_engine(1000)
    budget = TimeBudget(0.3)
    budget.attach(engine)
    engine.run(range(4), max_epochs=1000)
    assert budget.elapsed <= 0.3 + 2 * STEP_S + 0.05  # never more than about one step over
    assert 5 <= len(epochs) <= 0.3 / STEP_S + 1
    assert engine.state.epoch == engine.state.max_epochs == epochs[-1]


def test_budget_splits_over_the_phases_of_a_schedule():
    network = build_miregnet()
    schedule = StageSchedule(network, [{"train": [0], "epochs": 1000}, {"train": [1], "epochs": 1000}])
    engine, epochs = sleeping_engine(2000)
    engine.state.max_epochs = 2000
    schedule.attach(engine)
    budget = TimeBudget(0.4, schedule)
    budget.attach(engine)
    engine.run(range(3), max_epochs=2000)
    affine_epochs, deform_epochs = (phase["epochs"] for phase in schedule.phases)
    assert affine_epochs >= 1 and deform_epochs >= 1
    assert engine.state.epoch == affine_epochs + deform_epochs
    # each phase got about half of the budget: iterations in each phase, split near the middle
    in_affine = sum(epoch <= affine_epochs for epoch in epochs)
    assert 0.25 < in_affine / len(epochs) < 0.75
    assert budget.elapsed <= 0.4 + 2 * STEP_S + 0.05


def test_budget_split_follows_the_phase_shares():
    network = build_miregnet()
    schedule = StageSchedule(network, [{"train": [0], "epochs": 1000}, {"train": [1], "epochs": 1000}])
    engine, epochs = sleeping_engine(2000)
    schedule.attach(engine)
    budget = TimeBudget(0.5, schedule, shares=[1, 4])
    budget.attach(engine)
    engine.run(range(3), max_epochs=2000)
    affine_epochs = schedule.phases[0]["epochs"]
    # the AffineNet phase got about a fifth of the budget
    assert 0.08 < sum(epoch <= affine_epochs for epoch in epochs) / len(epochs) < 0.35


def test_phase_shares_must_fit_the_phases():
    schedule = StageSchedule(build_miregnet(), [{"train": [0], "epochs": 1}, {"train": [1], "epochs": 1}])
    with pytest.raises(ValueError, match=r"one positive number per phase \(2 phase\(s\)\), got \[1\]"):
        TimeBudget(1.0, schedule, shares=[1])
    with pytest.raises(ValueError, match=r"\(no phases\), got \[1, 1\]"):
        TimeBudget(1.0, shares=[1, 1])
    with pytest.raises(ValueError, match="positive number"):
        TimeBudget(1.0, schedule, shares=[1, 0])


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="budget must be positive"):
        TimeBudget(0.0)


def test_training_datalist(template, tmp_path):
    path = write_training_datalist(template, "multimodal", tmp_path / "data", num_training=2, num_validation=1, seed=3)
    pairs = load_registration_datalist(path, "training", require_labels=True)
    assert len(pairs) == 2 and len(load_registration_datalist(path, "validation")) == 1
    assert pairs[0]["fixed_image"] == pairs[1]["fixed_image"]  # the template, written once
    moving = nib.load(pairs[0]["moving_image"])
    np.testing.assert_allclose(moving.affine, template.affine)
    assert moving.shape == template.t1.shape
    assert json.loads(path.read_text())["spec"]["track"] == "multimodal"
    modified = path.stat().st_mtime_ns
    assert write_training_datalist(template, "multimodal", tmp_path / "data", 2, 1, seed=3) == path
    assert path.stat().st_mtime_ns == modified  # reused, not rewritten
