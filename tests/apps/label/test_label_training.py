# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Training a bundle on datastore records, as MONAI Label's BundleTrainTask runs it, and the app's bundle folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import monai.bundle
import pytest
import torch
from label_bundle import FolderDatastore, save_bundle_weights

from monai_mine.apps.label import BundleWeightsError, load_bundle_network, prepare_app_bundles, registration_datalist
from monai_mine.apps.label.bundles import BUNDLE_NAMES, SOURCE_MANIFEST
from tests.helpers import REPOSITORY


def test_bundle_trains_one_iteration_on_the_datastore_datalist(bundle, studies, tmp_path):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    before = torch.load(folder / "models" / "model.pt", weights_only=True)
    datalist = registration_datalist(FolderDatastore(studies), val_split=0.0)
    # the call of BundleTrainTask.run_single_gpu, with the overrides RegistrationTrainTask passes
    monai.bundle.run(
        run_id="run",
        init_id=None,
        final_id=None,
        meta_file=str(folder / "configs" / "metadata.json"),
        config_file=str(folder / "configs" / "train.json"),
        logging_file=False,
        bundle_root=str(folder),
        device="cpu",
        datalist=datalist,
        **{"train#trainer#max_epochs": 1},
        epoch_length=1,
        batch_size=1,
        val_interval=1,
        checkpoint_interval=1,
        cache_rate=0.0,
    )
    after = torch.load(folder / "models" / "model.pt", weights_only=True)
    assert (folder / "models" / "checkpoint.pt").is_file()
    assert set(after) == set(before)
    assert any(not torch.equal(after[key], before[key]) for key in before), "one Adam step must change the weights"


def test_app_bundles_are_copied_once_into_the_model_folder(bundle, tmp_path):
    calls = []

    def source(name):
        calls.append(name)
        return str(bundle.folder)

    model_dir = tmp_path / "app" / "model"
    bundles = prepare_app_bundles(model_dir, " vtn_addd, miregnet ", source=source)
    assert bundles == {"vtn_addd": model_dir / "vtn_addd", "miregnet": model_dir / "miregnet"}
    assert (model_dir / "vtn_addd" / "models" / "model.pt").is_file()
    assert (model_dir / "miregnet" / "configs" / "metadata.json").is_file()
    assert calls == ["vtn_addd", "miregnet"] and not list(model_dir.glob(".*"))
    (model_dir / "vtn_addd" / "models" / "trained_in_app.txt").write_text("kept")
    assert prepare_app_bundles(model_dir, ["vtn_addd"], source=source) == {"vtn_addd": model_dir / "vtn_addd"}
    assert (model_dir / "vtn_addd" / "models" / "trained_in_app.txt").is_file()  # unchanged source: copy kept
    assert not list(model_dir.glob("*.replaced-*"))
    with pytest.raises(ValueError, match=r"models must name monai-mine bundles from \['vtn_addd'.*got \['unet'\]"):
        prepare_app_bundles(model_dir, "unet", source=source)
    assert set(BUNDLE_NAMES) == {
        path.parent.parent.name for path in (REPOSITORY / "bundles").glob("*/configs/metadata.json")
    }


def test_app_bundles_follow_changes_of_the_source_and_keep_weights_trained_in_the_app(bundle, tmp_path):
    source = tmp_path / "bundles" / "vtn_addd"
    shutil.copytree(bundle.folder, source)
    model_dir = tmp_path / "app" / "model"
    copy = model_dir / "vtn_addd"
    inference = Path("configs") / "inference.json"

    def bundles():
        return prepare_app_bundles(model_dir, "vtn_addd", source=lambda name: source)

    def replaced():
        return sorted(model_dir.glob("vtn_addd.replaced-*"))

    bundles()
    (source / "models" / "model.pt").write_bytes(b"broken weights")  # e.g. a quick training in the repository
    bundles()
    assert (copy / "models" / "model.pt").read_bytes() == b"broken weights"
    shutil.copy(bundle.folder / "models" / "model.pt", source / "models" / "model.pt")  # repaired
    bundles()
    assert (copy / "models" / "model.pt").read_bytes() == (bundle.folder / "models" / "model.pt").read_bytes()
    assert replaced() == []  # the copy had not changed in the app: updated in place
    # weights trained in the app survive restarts and changes of other files in the source
    (copy / "models" / "model.pt").write_bytes(b"trained in the app")
    bundles()
    (source / inference).write_text((source / inference).read_text() + "\n")
    bundles()
    assert (copy / inference).read_text() == (source / inference).read_text()
    assert (copy / "models" / "model.pt").read_bytes() == b"trained in the app" and replaced() == []
    # new weights in the source as well: the copy is made again, the one with the app's weights kept aside
    (source / "models" / "model.pt").write_bytes(b"new shipped weights")
    bundles()
    assert (copy / "models" / "model.pt").read_bytes() == b"new shipped weights"
    (aside,) = replaced()
    assert (aside / "models" / "model.pt").read_bytes() == b"trained in the app"
    # a copy without manifest (made before copies recorded their source) whose weights are older than the
    # source's: made again; one whose weights are newer (e.g. placed there by hand): kept
    (copy / SOURCE_MANIFEST).unlink()
    (copy / "models" / "model.pt").write_bytes(b"stale copy")
    before = (source / "models" / "model.pt").stat().st_mtime_ns - 10**9
    os.utime(copy / "models" / "model.pt", ns=(before, before))
    bundles()
    assert (copy / "models" / "model.pt").read_bytes() == b"new shipped weights"
    assert len(replaced()) == 2 and (copy / SOURCE_MANIFEST).is_file()
    (copy / SOURCE_MANIFEST).unlink()
    (copy / "models" / "model.pt").write_bytes(b"placed by hand")
    bundles()
    assert (copy / "models" / "model.pt").read_bytes() == b"placed by hand" and (copy / SOURCE_MANIFEST).is_file()
    assert len(replaced()) == 2


def test_weights_that_do_not_fit_raise_an_error_naming_file_bundle_and_remedy(bundle, tmp_path):
    folder = tmp_path / "vtn_addd"
    shutil.copytree(bundle.folder, folder)
    weights = folder / "models" / "model.pt"
    save_bundle_weights(folder, channels=8, record=False)  # 8-channel weights, the configs say 4, no record
    with pytest.raises(BundleWeightsError) as raised:
        load_bundle_network(folder)
    message = str(raised.value)
    assert f"cannot use the weights {weights} with bundle 'vtn_addd' ({folder})" in message
    assert "of another shape" in message and '{"pretrained": false}' in message and "model_config.json" in message
    # the same weights with their record: the network is rebuilt with 8 channels and loads
    network = save_bundle_weights(folder, channels=8, record=True)
    model = load_bundle_network(folder, config_files=[folder / "configs" / "inference.json"])
    assert model.record is not None and model.record.config["network_channels"] == 8
    state = model.network.state_dict()
    assert all(torch.equal(state[key], value) for key, value in network.state_dict().items())
