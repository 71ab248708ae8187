# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Training a bundle on datastore records, as MONAI Label's BundleTrainTask runs it, and the app's bundle folders."""

from __future__ import annotations

import shutil

import monai.bundle
import pytest
import torch
from label_bundle import REPOSITORY, FolderDatastore

from monai_mine.label import prepare_app_bundles, registration_datalist
from monai_mine.label.bundles import BUNDLE_NAMES


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
    assert calls == ["vtn_addd", "miregnet"] and (model_dir / "vtn_addd" / "models" / "trained_in_app.txt").is_file()
    with pytest.raises(ValueError, match=r"models must name monai-mine bundles from \['vtn_addd'.*got \['unet'\]"):
        prepare_app_bundles(model_dir, "unet", source=source)
    assert set(BUNDLE_NAMES) == {
        path.parent.parent.name for path in (REPOSITORY / "bundles").glob("*/configs/metadata.json")
    }
