# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The sample app's faults that a user meets first, tested without MONAI Label: tests that do not depend on what a
server left in the app folder, an unknown moving image named, the server bound to this machine as documented, a
training over the shipped weights announced, and the smoke script's time stated."""

from __future__ import annotations

import re
import shutil

import pytest
from label_bundle import SAMPLE_APP, FolderDatastore, app_copy

from monai_mine.apps.label import check_moving_image, prepare_app_bundles, shipped_weights_warning
from monai_mine.apps.label.bundles import SOURCE_MANIFEST
from tests.helpers import REPOSITORY


def test_an_app_copy_leaves_out_what_a_server_run_left_in_the_app_folder(bundle, tmp_path):
    source = tmp_path / "sample_app"
    source.mkdir()
    shutil.copy2(SAMPLE_APP / "main.py", source / "main.py")
    for left in ("model/vtn_addd/models", "logs", "lib", "bin"):  # what `monailabel start_server` leaves there
        (source / left).mkdir(parents=True)
        (source / left / "state.txt").write_text("left by a server")
    app = app_copy(tmp_path / "app", source)
    assert sorted(p.relative_to(app).as_posix() for p in app.rglob("*")) == ["main.py"]
    shutil.copytree(bundle.folder, app / "model" / "vtn_addd")  # what the app tests do next (FileExistsError before)


def test_an_unknown_moving_image_is_named(studies):
    store = FolderDatastore(studies)
    check_moving_image({"image": "case_b"}, store)  # a datastore id
    check_moving_image({"image": str(studies / "case_b.nii.gz")}, None)  # a path
    check_moving_image({"image": str(studies)}, store)  # a folder, as a DICOM series is
    with pytest.raises(ValueError, match=r"^image 'case_zz' \(the moving image\) is neither a file nor an image id"):
        check_moving_image({"image": "case_zz", "fixed_image": "case_a"}, store)
    with pytest.raises(ValueError, match="the infer request has no 'image'"):
        check_moving_image({"fixed_image": "case_a"}, store)

    class StaleDatastore(FolderDatastore):  # an id whose file has gone
        def get_image_uri(self, image_id):
            return str(self.folder / "gone.nii.gz")

    with pytest.raises(ValueError, match=r"image 'case_b' .*its file .*gone\.nii\.gz' does not exist"):
        check_moving_image({"image": "case_b"}, StaleDatastore(studies))


def test_a_training_over_the_shipped_weights_is_announced_until_they_are_replaced(bundle, tmp_path):
    folder = prepare_app_bundles(tmp_path / "model", "vtn_addd", source=lambda name: bundle.folder)["vtn_addd"]
    weights = folder / "models" / "model.pt"
    warning = shipped_weights_warning(folder)
    assert warning is not None
    assert f"writes its weights over {weights}" in warning and str(bundle.folder) in warning
    assert f"delete {folder}" in warning
    weights.write_bytes(weights.read_bytes() + b"\0")  # weights trained in the app since
    assert shipped_weights_warning(folder) is None
    (folder / SOURCE_MANIFEST).unlink()  # a bundle folder the app did not copy
    assert shipped_weights_warning(folder) is None
    weights.unlink()
    assert shipped_weights_warning(folder) is None


def _start_server_commands(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)  # continuation lines
    return [line for line in joined.splitlines() if "monailabel start_server" in line and "--app" in line]


def test_documented_servers_listen_on_this_machine_only():
    readme = (REPOSITORY / "docs" / "label.md").read_text()  # the MONAI Label page of the docs
    documents = {
        "docs/label.md": readme,
        "main.py": (SAMPLE_APP / "main.py").read_text(),
        "smoke.sh": (SAMPLE_APP / "smoke.sh").read_text(),
    }
    for name, text in documents.items():
        commands = _start_server_commands(text)
        assert commands, f"no monailabel start_server command in {name}"
        for command in commands:
            assert "--host 127.0.0.1" in command, f"{name}: {command.strip()}"
    assert "--host 0.0.0.0" in readme and "no authentication" in readme  # how to open it, and the risk


def test_the_readme_says_training_replaces_the_shipped_weights_and_how_long_the_smoke_test_takes():
    readme = " ".join((REPOSITORY / "docs" / "label.md").read_text().split())  # the MONAI Label page of the docs
    assert "writes its weights over `model/<name>/models/model.pt`" in readme
    assert "delete `sample-apps/monai_mine_registration/model/<name>`" in readme
    assert "the first use of an environment generates the demo data first" in readme
    smoke = (SAMPLE_APP / "smoke.sh").read_text()
    assert 'echo "smoke: OK in ${SECONDS} s"' in smoke and "the first run in an environment generates the" in smoke
