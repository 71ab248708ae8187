# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A killed training resumes from its checkpoint; bad data and bad options stop with a message naming them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Events

from tests.helpers import error_chain, make_workflow, write_nifti

RESUME_SETTINGS = {"epoch_length": 4, "max_epochs": 2, "checkpoint_interval": 1}


class _SimulatedKill(Exception):
    pass


def test_killed_training_resumes_from_the_saved_iteration(bundle_copy):
    bundle = bundle_copy("vtn_addd")
    checkpoint_path = bundle / "models" / "checkpoint.pt"

    first = make_workflow(bundle, ("train.json",), "train", **RESUME_SETTINGS)
    first.initialize()
    trainer = first.parser.get_parsed_content("train#trainer")

    def kill(engine):
        raise _SimulatedKill(f"killed at iteration {engine.state.iteration}")

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=6), kill)  # mid-way through epoch 2
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps what the run expression raised
        first.run()
    assert "killed at iteration 6" in error_chain(raised.value)
    saved = torch.load(checkpoint_path, weights_only=False)
    assert saved["trainer"]["iteration"] == 6
    assert not list(checkpoint_path.parent.glob(".checkpoint.pt.*")), "a temporary checkpoint file was left behind"

    second = make_workflow(bundle, ("train.json",), "train", resume=True, **RESUME_SETTINGS)
    second.initialize()
    resumed = second.parser.get_parsed_content("train#trainer")
    iterations_run = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: iterations_run.append(engine.state.iteration))
    second.run()
    assert iterations_run == [7, 8]
    network = second.parser.get_parsed_content("network")
    for name, value in torch.load(checkpoint_path, weights_only=False)["network"].items():
        assert torch.equal(value, network.state_dict()[name]), name


def test_resume_without_a_checkpoint_names_the_missing_file(bundle_copy):
    bundle = bundle_copy("vtn_addd")
    workflow = make_workflow(bundle, ("train.json",), "train", resume=True)
    with pytest.raises(Exception) as raised:
        workflow.initialize()
        workflow.parser.get_parsed_content("train#trainer")
    assert "no checkpoint at" in error_chain(raised.value) and "checkpoint.pt" in error_chain(raised.value)


def _write(path, array):
    return write_nifti(path, array.astype(np.float32)).name


def _datalist(tmp_path, pairs):
    """A datalist whose training and validation splits are ``pairs``."""
    path = tmp_path / "user_data" / "datalist.json"
    path.write_text(json.dumps({"training": pairs, "validation": pairs, "test": pairs}))
    return path


@pytest.fixture
def user_data(tmp_path):
    folder = tmp_path / "user_data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    return folder, rng


def _train(bundle, datalist):
    workflow = make_workflow(bundle, ("train.json",), "train", datalist=str(datalist), dataset_dir=str(datalist.parent))
    workflow.initialize()
    workflow.run()


def test_missing_file_in_the_datalist_is_named(bundle_copy, user_data, tmp_path):
    folder, rng = user_data
    fixed = _write(folder / "fixed.nii.gz", rng.random((16, 16, 16)))
    datalist = _datalist(tmp_path, [{"fixed_image": fixed, "moving_image": "missing_moving.nii.gz"}])
    with pytest.raises(Exception) as raised:
        _train(bundle_copy("vtn_addd"), datalist)
    assert "missing_moving.nii.gz" in error_chain(raised.value)
    assert "does not exist" in error_chain(raised.value)


def test_pair_with_different_shapes_is_named(bundle_copy, user_data, tmp_path):
    folder, rng = user_data
    fixed = _write(folder / "fixed.nii.gz", rng.random((16, 16, 16)))
    moving = _write(folder / "moving_small.nii.gz", rng.random((12, 16, 16)))
    datalist = _datalist(tmp_path, [{"fixed_image": fixed, "moving_image": moving}] * 2)
    with pytest.raises(Exception) as raised:
        _train(bundle_copy("vtn_addd"), datalist)
    message = error_chain(raised.value)
    assert "moving_small.nii.gz" in message and "fixed.nii.gz" in message


def test_image_with_nan_is_named(bundle_copy, user_data, tmp_path):
    folder, rng = user_data
    broken = rng.random((16, 16, 16))
    broken[3, 4, 5] = np.nan
    fixed = _write(folder / "fixed.nii.gz", rng.random((16, 16, 16)))
    moving = _write(folder / "moving_with_nan.nii.gz", broken)
    datalist = _datalist(tmp_path, [{"fixed_image": fixed, "moving_image": moving}] * 2)
    with pytest.raises(Exception) as raised:
        _train(bundle_copy("miregnet"), datalist)
    message = error_chain(raised.value)
    assert "moving_with_nan.nii.gz" in message and "NaN" in message


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"network_def#chanels": 8}, "chanels"),
        ({"stages": "ADXD"}, "'ADXD'"),
    ],
)
def test_unknown_variant_option_is_named(bundle_copy, override, expected):
    workflow = make_workflow(bundle_copy("vtn_addd"), ("train.json",), "train", **override)
    workflow.initialize()
    with pytest.raises(Exception) as raised:
        workflow.parser.get_parsed_content("network_def")
    assert expected in error_chain(raised.value)
