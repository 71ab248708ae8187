# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""With MONAI Label installed: the infer and train tasks on MONAI Label's bundle tasks and its local datastore, and
the sample app. Without MONAI Label this module is skipped; the other tests here cover the parts that do not
need it."""

from __future__ import annotations

import importlib.util
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from label_bundle import REPOSITORY, SIZE
from label_bundle import infer as reference_infer

pytest.importorskip("monailabel", reason="needs MONAI Label: see the MONAI Label section of README.md")

from monailabel.datastore.local import LocalDatastore  # noqa: E402

from monai_mine.label.infer import RegistrationInferTask  # noqa: E402
from monai_mine.label.train import RegistrationTrainTask  # noqa: E402

STEP = {"epoch_length": 1, "batch_size": 1, "checkpoint_interval": 1, "cache_rate": 0.0}
"""Bundle overrides of a one-iteration training (the bundle's val_interval stays 5: the task must still validate)."""


@pytest.fixture
def local_studies(studies, tmp_path):
    """A copy of the studies folder as a MONAI Label local datastore (it writes its index into the folder)."""
    folder = tmp_path / "studies"
    shutil.copytree(studies, folder)
    return folder


def test_infer_task_returns_the_warped_image_and_the_ddf(bundle, studies):
    task = RegistrationInferTask(str(bundle.folder), {})
    assert task.is_valid() and task.type == "others" and task.dimension == 3
    request = {"image": str(studies / "case_b.nii.gz"), "fixed_image": str(studies / "case_a.nii.gz"), "device": "cpu"}
    result_file, result = task(request)
    assert result_file == result["warped"] and result["ddf_units"] == "voxels"
    assert result["ddf_shape"] == [3, SIZE, SIZE, SIZE]
    ddf = nib.load(result["ddf"])
    assert ddf.shape == (SIZE, SIZE, SIZE, 3) and ddf.get_data_dtype() == np.float32
    assert nib.load(result["warped"]).get_data_dtype() == np.float32
    expected = reference_infer(bundle, request)
    np.testing.assert_allclose(np.moveaxis(ddf.get_fdata(), -1, 0), expected["pred"].numpy(), atol=1e-5)
    np.testing.assert_allclose(nib.load(result["warped"]).get_fdata(), expected["warped"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(ddf.affine, expected["fixed_image"].affine.numpy(), atol=1e-5)

    result_file, result = task({**request, "result_image": "ddf"})
    assert result_file == result["ddf"]
    with pytest.raises(ValueError, match="result_image must be one of"):
        task({**request, "result_image": "label"})
    with pytest.raises(ValueError, match="the infer request has no 'fixed_image'"):
        task({"image": request["image"], "device": "cpu"})


def test_infer_task_runs_an_exported_torchscript_bundle(bundle, studies, tmp_path):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    with torch.no_grad():
        traced = torch.jit.trace(bundle.network, torch.rand(1, 2, SIZE, SIZE, SIZE))
    torch.jit.save(traced, str(folder / "models" / "model.ts"))
    (folder / "models" / "model.pt").unlink()
    request = {"image": str(studies / "case_c.nii.gz"), "fixed_image": str(studies / "case_a.nii.gz"), "device": "cpu"}
    _, result = RegistrationInferTask(str(folder), {})(request)
    expected = reference_infer(bundle, request)["pred"].numpy()
    np.testing.assert_allclose(np.moveaxis(nib.load(result["ddf"]).get_fdata(), -1, 0), expected, atol=1e-4)


def test_train_task_trains_on_every_image_of_a_local_datastore(bundle, local_studies, tmp_path):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    before = torch.load(folder / "models" / "model.pt", weights_only=True)
    datastore = LocalDatastore(str(local_studies), extensions=("*.nii.gz",))
    assert len(datastore.datalist()) == 2  # MONAI Label's own list: only the labelled images
    task = RegistrationTrainTask(str(folder), {}, overrides=STEP)
    request = {"model": "vtn_addd", "device": "cpu", "max_epochs": 1, "val_split": 0.0, "multi_gpu": False}
    assert task(request, datastore) == {}
    after = torch.load(folder / "models" / "model.pt", weights_only=True)
    assert any(not torch.equal(after[key], before[key]) for key in before)


def test_sample_app_serves_infer_with_a_fixed_image_id(bundle, local_studies, tmp_path):
    app_dir = tmp_path / "app"
    shutil.copytree(REPOSITORY / "sample-apps" / "monai_mine_registration", app_dir)
    shutil.copytree(bundle.folder, app_dir / "model" / "vtn_addd")
    spec = importlib.util.spec_from_file_location("monai_mine_registration_main", app_dir / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    app = main.MonaiMineRegistrationApp(str(app_dir), str(local_studies), {"models": "vtn_addd"})
    info = app.info()
    assert "vtn_addd" in info["models"] and "vtn_addd" in info["trainers"]
    response = app.infer({"model": "vtn_addd", "image": "case_b", "fixed_image": "case_a", "device": "cpu"})
    assert response["file"] == response["params"]["warped"] and response["label"] == response["file"]
    assert nib.load(response["params"]["ddf"]).shape == (SIZE, SIZE, SIZE, 3)
    assert app.datastore().get_labels_by_image_id("case_b") == {"final": "case_b"}  # nothing saved as a label
