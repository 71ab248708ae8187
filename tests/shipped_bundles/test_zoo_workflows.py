# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Every bundle's workflows as the MONAI model zoo's unit tests run them: small NIfTI files written for the test.

As ``ci/unit_tests/test_<bundle>.py`` in the zoo: ``ConfigWorkflow`` train then evaluate (train.json +
evaluate.json), and inference with the weights loader disabled (``handlers#0#_disabled_``), each initialised,
checked for missing properties, run and finalised (:func:`tests.helpers.run_workflow`), on a copy of the bundle
(``models/<name>/``, without weights) with ``dataset_dir`` pointing at a fake dataset and the small settings of
``configs/quick.json`` at ``image_size`` 32. ``test_bundle_workflows.py`` runs the same steps on the demo data at 64^3
after one another, with the trained weights.
"""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from zoo_bundle import FAKE_SPLITS, SIZE, SMALL, write_fake_dataset, zoo_copy

from tests.helpers import BUNDLES, run_workflow


@pytest.fixture(scope="module")
def fake_dataset(tmp_path_factory):
    return write_fake_dataset(tmp_path_factory.mktemp("zoo_data"))


@pytest.fixture
def small_bundle(tmp_path, monkeypatch):
    """A bundle copied as the zoo holds it, without ``models/`` (a shipped record would pin the network's size)."""
    monkeypatch.setenv("MONAI_MINE_DATA", str(tmp_path / "demo_cache"))  # nothing reads the demo data here
    return lambda name: zoo_copy(tmp_path / "models", name, weights=False)


@pytest.mark.parametrize("name", BUNDLES)
def test_train_then_evaluate_writes_weights_and_metrics(name, small_bundle, fake_dataset):
    bundle = small_bundle(name)
    settings = {**SMALL[name], "dataset_dir": str(fake_dataset), "val_interval": 2}  # validate once, at the end

    trained = run_workflow(bundle, ("train.json",), "train", **settings)
    models = bundle / "models"
    assert {"model.pt", "model_config.json", "checkpoint.pt"} <= {path.name for path in models.iterdir()}
    network = trained.parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(models / "model.pt", weights_only=True))  # strict: the trained network
    assert torch.load(models / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 4

    run_workflow(bundle, ("train.json", "evaluate.json"), "eval", **settings)
    with open(bundle / "eval" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == FAKE_SPLITS["test"]
    assert all(np.isfinite(float(row[column])) for row in rows for column in ("dice_before", "dice", "hd95"))
    summary = json.loads((bundle / "eval" / "metrics_summary.json").read_text())
    assert summary["num_pairs"] == FAKE_SPLITS["test"]


@pytest.mark.parametrize("name", BUNDLES)
def test_inference_without_weights_writes_every_output_on_the_working_grid(name, small_bundle, fake_dataset):
    bundle = small_bundle(name)
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    assert inference["handlers"][0]["_target_"].endswith("WeightsLoader")  # what the zoo's override disables
    settings = {**SMALL[name], "dataset_dir": str(fake_dataset), "handlers#0#_disabled_": True}

    run_workflow(bundle, ("inference.json",), "infer", **settings)
    outputs = bundle / "eval" / "inference"
    assert len(list(outputs.glob("*.nii.gz"))) == FAKE_SPLITS["test"] * 3
    expected_shapes = {"warped": (SIZE,) * 3, "ddf": (SIZE,) * 3 + (3,), "warped_label": (SIZE,) * 3}
    for index in range(FAKE_SPLITS["test"]):
        for output, shape in expected_shapes.items():
            written = nib.load(outputs / f"test{index}_moving_to_test{index}_fixed_{output}.nii.gz")
            assert written.shape == shape, (output, written.shape)
    assert not (bundle / "models" / "model.pt").exists()
