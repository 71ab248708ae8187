# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""With MONAI Label installed: the infer and train tasks on MONAI Label's bundle tasks and its local datastore, and
the sample app. Without MONAI Label this module is skipped; the other tests here cover the parts that do not
need it."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from label_bundle import SIZE, app_copy, save_bundle_weights
from label_bundle import infer as reference_infer

pytest.importorskip("monailabel", reason="needs MONAI Label: see docs/label.md")

from monailabel.datastore.local import LocalDatastore  # noqa: E402

from monai_mine.apps.label import BundleWeightsError, prepare_app_bundles  # noqa: E402
from monai_mine.apps.label.infer import RegistrationInferTask  # noqa: E402
from monai_mine.apps.label.studies import make_demo_studies  # noqa: E402
from monai_mine.apps.label.train import RegistrationTrainTask  # noqa: E402

STEP = {"epoch_length": 1, "batch_size": 1, "checkpoint_interval": 1, "cache_rate": 0.0}
"""Bundle overrides of a one-iteration training (the bundle's val_interval stays 5: the task must still validate)."""


def result_file_of(result: dict) -> str:
    """The file a result JSON names for its result_image."""
    return result[result["result_image"]]


def load_app(app_dir):
    spec = importlib.util.spec_from_file_location("monai_mine_registration_main", app_dir / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    return main


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
    warped_file, result = task(request)
    assert result["result_image"] == "warped" and result_file_of(result) == warped_file
    assert result["outputs"] == ["ddf", "warped"] and result["ddf_units"] == "voxels"
    assert result["ddf_shape"] == [SIZE, SIZE, SIZE, 3]
    ddf_file, result = task({**request, "result_image": "ddf"})
    assert result["result_image"] == "ddf" and result_file_of(result) == ddf_file and "warped" not in result
    ddf = nib.load(ddf_file)
    assert ddf.shape == (SIZE, SIZE, SIZE, 3) and ddf.get_data_dtype() == np.float32
    assert nib.load(warped_file).get_data_dtype() == np.float32
    expected = reference_infer(bundle, request)
    np.testing.assert_allclose(np.moveaxis(ddf.get_fdata(), -1, 0), expected["pred"].numpy(), atol=1e-5)
    np.testing.assert_allclose(nib.load(warped_file).get_fdata(), expected["warped"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(ddf.affine, expected["fixed_image"].affine.numpy(), atol=1e-5)
    for path in (warped_file, ddf_file):
        os.remove(path)

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
    ddf_file, _ = RegistrationInferTask(str(folder), {})({**request, "result_image": "ddf"})
    expected = reference_infer(bundle, request)["pred"].numpy()
    np.testing.assert_allclose(np.moveaxis(nib.load(ddf_file).get_fdata(), -1, 0), expected, atol=1e-4)
    os.remove(ddf_file)


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


def test_a_training_over_the_shipped_weights_says_so_first(bundle, local_studies, tmp_path, caplog):
    folder = prepare_app_bundles(tmp_path / "model", "vtn_addd", source=lambda name: bundle.folder)["vtn_addd"]
    datastore = LocalDatastore(str(local_studies), extensions=("*.nii.gz",))
    task = RegistrationTrainTask(str(folder), {}, overrides=STEP)
    request = {"model": "vtn_addd", "device": "cpu", "max_epochs": 1, "val_split": 0.0, "multi_gpu": False}
    with caplog.at_level(logging.WARNING, logger="monai_mine.apps.label.train"):
        assert task(request, datastore) == {}
    assert f"writes its weights over {folder / 'models' / 'model.pt'}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_mine.apps.label.train"):
        assert task(request, datastore) == {}  # the weights trained in the app: nothing to say
    assert "writes its weights over" not in caplog.text


def test_sample_app_serves_infer_with_a_fixed_image_id(bundle, local_studies, tmp_path):
    app_dir = tmp_path / "app"
    app_copy(app_dir)
    shutil.copytree(bundle.folder, app_dir / "model" / "vtn_addd")
    app = load_app(app_dir).MonaiMineRegistrationApp(str(app_dir), str(local_studies), {"models": "vtn_addd"})
    info = app.info()
    assert "vtn_addd" in info["models"] and "vtn_addd" in info["trainers"]
    response = app.infer({"model": "vtn_addd", "image": "case_b", "fixed_image": "case_a", "device": "cpu"})
    assert response["file"] == response["params"]["warped"] and response["label"] == response["file"]
    assert nib.load(response["file"]).shape == (SIZE, SIZE, SIZE)
    os.remove(response["file"])
    request = {"model": "vtn_addd", "image": "case_b", "fixed_image": "case_a", "result_image": "ddf", "device": "cpu"}
    response = app.infer(request)
    assert nib.load(response["file"]).shape == (SIZE, SIZE, SIZE, 3) == tuple(response["params"]["ddf_shape"])
    os.remove(response["file"])
    assert app.datastore().get_labels_by_image_id("case_b") == {"final": "case_b"}  # nothing saved as a label
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as raised:  # not ITK's "no DICOMs in ..." for the empty path of an unknown id
        app.infer({"model": "vtn_addd", "image": "case_zz", "fixed_image": "case_a", "device": "cpu"})
    assert raised.value.status_code == 422
    assert "image 'case_zz' (the moving image) is neither a file nor an image id" in raised.value.detail


def test_infer_leaves_only_the_returned_file_in_the_temporary_folder(bundle, studies, tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    task = RegistrationInferTask(str(bundle.folder), {})
    request = {
        "image": str(studies / "case_b.nii.gz"),
        "fixed_image": str(studies / "case_a.nii.gz"),
        "moving_label": str(studies / "labels" / "final" / "case_b.nii.gz"),
        "result_image": "warped_label",
        "device": "cpu",
    }
    result_file, result = task(request)
    assert list(temporary.iterdir()) == [temporary / os.path.basename(result_file)]  # no monai_mine_* folder
    assert result["outputs"] == ["ddf", "warped", "warped_label"] and result["warped_label"] == result_file
    assert nib.load(result_file).get_data_dtype() == np.int32
    os.remove(result_file)  # what MONAI Label's infer endpoint does once the file is sent
    with pytest.raises(ValueError, match="'warped_label' needs a 'moving_label' in the request"):
        task({key: value for key, value in request.items() if key != "moving_label"})
    assert list(temporary.iterdir()) == []


def test_weights_that_do_not_fit_fail_infer_with_a_clear_error(bundle, studies, tmp_path):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    save_bundle_weights(folder, channels=8, record=False)  # e.g. weights of another training, without their record
    task = RegistrationInferTask(str(folder), {})
    request = {"image": str(studies / "case_b.nii.gz"), "fixed_image": str(studies / "case_a.nii.gz"), "device": "cpu"}
    with pytest.raises(BundleWeightsError, match=r"cannot use the weights .*model\.pt with bundle 'vtn_addd'"):
        task(request)
    # the same weights saved with their record: rebuilt with 8 channels, read again since the file changed
    network = save_bundle_weights(folder, channels=8, record=True)
    ddf_file, _ = task({**request, "result_image": "ddf"})
    expected = reference_infer(SimpleNamespace(folder=folder, network=network), request)["pred"].numpy()
    np.testing.assert_allclose(np.moveaxis(nib.load(ddf_file).get_fdata(), -1, 0), expected, atol=1e-5)
    os.remove(ddf_file)


def test_sample_app_answers_a_failed_infer_with_the_error_text(bundle, local_studies, tmp_path):
    from fastapi import HTTPException

    app_dir = tmp_path / "app"
    app_copy(app_dir)
    shutil.copytree(bundle.folder, app_dir / "model" / "vtn_addd")
    save_bundle_weights(app_dir / "model" / "vtn_addd", channels=8, record=False)
    app = load_app(app_dir).MonaiMineRegistrationApp(str(app_dir), str(local_studies), {"models": "vtn_addd"})
    with pytest.raises(HTTPException) as raised:
        app.infer({"model": "vtn_addd", "image": "case_b", "fixed_image": "case_a", "device": "cpu"})
    assert raised.value.status_code == 500
    assert "cannot use the weights" in raised.value.detail and '{"pretrained": false}' in raised.value.detail
    with pytest.raises(HTTPException) as raised:
        app.infer({"model": "vtn_addd", "image": "case_b", "device": "cpu"})
    assert raised.value.status_code == 422 and "the infer request has no 'fixed_image'" in raised.value.detail


def test_demo_studies_are_a_local_datastore(small_demo_datalist, tmp_path):
    studies = tmp_path / "studies"
    make_demo_studies(studies, pairs=2, datalist=small_demo_datalist)
    datastore = LocalDatastore(str(studies), extensions=("*.nii.gz",))
    assert sorted(datastore.list_images()) == ["fixed_000", "fixed_001", "moving_000", "moving_001"]
    assert datastore.get_labels_by_image_id("moving_000") == {"final": "moving_000"}
    assert len(datastore.datalist()) == 4


def test_train_task_refuses_pretrained_weights_that_do_not_fit_and_follows_their_record(
    bundle, local_studies, tmp_path
):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    save_bundle_weights(folder, channels=8, record=False)
    datastore = LocalDatastore(str(local_studies), extensions=("*.nii.gz",))
    task = RegistrationTrainTask(str(folder), {}, overrides=STEP)
    request = {"model": "vtn_addd", "device": "cpu", "max_epochs": 1, "val_split": 0.0, "multi_gpu": False}
    with pytest.raises(BundleWeightsError, match=r"with bundle 'vtn_addd'.*POST /train/vtn_addd"):
        task(request, datastore)
    save_bundle_weights(folder, channels=8, record=True)  # with their record: training goes on with 8 channels
    handlers = [{"_target_": "CheckpointLoader", "load_path": str(folder / "models" / "model.pt")}]
    assert task._pretrained_record(handlers)["network_channels"] == 8
    assert task._pretrained_record([]) == {}


def test_sample_app_adds_the_infer_model_of_a_bundle_trained_since_the_start(bundle, local_studies, tmp_path):
    from fastapi import HTTPException

    app_dir = tmp_path / "app"
    app_copy(app_dir)
    shutil.copytree(bundle.folder, app_dir / "model" / "vtn_addd")
    weights = app_dir / "model" / "vtn_addd" / "models" / "model.pt"
    shutil.move(weights, tmp_path / "model.pt")
    app = load_app(app_dir).MonaiMineRegistrationApp(str(app_dir), str(local_studies), {"models": "vtn_addd"})
    assert "vtn_addd" not in app.info()["models"] and "vtn_addd" in app.info()["trainers"]
    request = {"model": "vtn_addd", "image": "case_b", "fixed_image": "case_a", "device": "cpu"}
    with pytest.raises(HTTPException) as raised:
        app.infer(request)
    assert raised.value.status_code == 400 and "has no weights" in raised.value.detail
    assert "train it first (POST /train/vtn_addd)" in raised.value.detail
    shutil.move(tmp_path / "model.pt", weights)  # as a training in the app writes it
    response = app.infer(request)
    assert nib.load(response["file"]).shape == (SIZE, SIZE, SIZE) and "vtn_addd" in app.info()["models"]
    os.remove(response["file"])
