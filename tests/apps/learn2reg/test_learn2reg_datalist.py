# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A Learn2Reg task's dataset.json becomes monai-mine datalists; displacement files are named as the challenge reads
them; a broken task stops with a message naming the file and the entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from learn2reg_fake import write_task

from monai_mine.data import (
    displacement_name,
    is_unpaired,
    learn2reg_datalist,
    load_registration_datalist,
    load_unpaired_images,
    read_learn2reg_task,
    registration_dataset,
)


def _edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_paired_ct_task_gives_pairs_with_keypoints(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    task = read_learn2reg_task(dataset.parent)  # the folder works too
    assert (task.name, task.pairings, task.shape, task.multimodal) == ("FakeNLST", "paired", (20, 18, 16), False)
    assert task.suggested_overlay() == "learn2reg_paired_ct.json"
    datalist = learn2reg_datalist(dataset)
    assert set(datalist) == {"training", "validation"}  # registration_test is empty
    first = datalist["training"][0]
    root = tmp_path / "NLST"
    assert first == {
        "fixed_image": str(root / "imagesTr" / "FakeNLST_0001_0000.nii.gz"),
        "moving_image": str(root / "imagesTr" / "FakeNLST_0001_0001.nii.gz"),
        "fixed_landmarks": str(root / "keypointsTr" / "FakeNLST_0001_0000.csv"),
        "moving_landmarks": str(root / "keypointsTr" / "FakeNLST_0001_0001.csv"),
    }
    assert [Path(item["fixed_image"]).name for item in datalist["validation"]] == [
        "FakeNLST_0003_0000.nii.gz",
        "FakeNLST_0004_0000.nii.gz",
    ]
    assert load_registration_datalist(datalist, "training") == datalist["training"]  # our loader accepts it as is
    assert len(registration_dataset(datalist, "validation")) == 2


def test_unpaired_mr_task_trains_on_random_pairs_without_the_evaluation_images(tmp_path):
    dataset = write_task(tmp_path / "OASIS", "unpaired")
    task = read_learn2reg_task(dataset)
    assert task.labels == {1: "organ one", 2: "organ two"} and task.suggested_overlay() == "learn2reg_unpaired_mr.json"
    datalist = learn2reg_datalist(dataset)
    assert is_unpaired(datalist, "training") and not is_unpaired(datalist, "validation")
    names = [Path(item["image"]).name for item in load_unpaired_images(datalist, "training")]
    assert names == [f"FakeOASIS_{case:04d}_0000.nii.gz" for case in range(1, 5)]  # 0005 and 0006 are validated on
    assert all(Path(item["label"]).parent.name == "labelsTr" for item in datalist["training"])
    assert set(datalist["validation"][0]) == {"fixed_image", "moving_image", "fixed_label", "moving_label"}
    kept = learn2reg_datalist(dataset, exclude_evaluation_images=False)
    assert len(kept["training"]) == 6
    assert len(registration_dataset(datalist, "training")) == 4


def test_multimodal_task_pairs_mr_with_ct(tmp_path):
    dataset = write_task(tmp_path / "MRCT", "multimodal")
    task = read_learn2reg_task(dataset)
    assert task.multimodal and task.suggested_overlay() == "learn2reg_multimodal.json"
    datalist = learn2reg_datalist(dataset)
    assert not is_unpaired(datalist, "training")
    pair = datalist["validation"][0]
    assert Path(pair["fixed_label"]).name == "FakeMRCT_0003_0000.nii.gz"
    assert Path(pair["moving_label"]).name == "FakeMRCT_0003_0001.nii.gz"
    unpaired = learn2reg_datalist(dataset, training="unpaired")
    assert len(unpaired["training"]) == 4  # the 8 images less the 4 of registration_val


@pytest.mark.parametrize(
    "fixed, moving, expected",
    [
        ("NLST_0101_0000.nii.gz", "NLST_0101_0001.nii.gz", "disp_0101_0101"),  # intra-patient, 0000 <- 0001
        ("OASIS_0438_0000.nii.gz", "OASIS_0439_0000.nii.gz", "disp_0438_0439"),  # inter-subject, same modality
        ("AbdomenMRCT_0006_0000.nii.gz", "AbdomenMRCT_0006_0001.nii.gz", "disp_0006_0006"),  # MR <- CT
        ("ThoraxCBCT_0011_0001.nii.gz", "ThoraxCBCT_0011_0000.nii.gz", "disp_0011_0001_0011_0000"),
        ("./imagesTr/ThoraxCBCT_0011_0002.nii.gz", "ThoraxCBCT_0011_0000.nii.gz", "disp_0011_0002_0011_0000"),
    ],
)
def test_displacement_names_follow_the_evaluation_script(fixed, moving, expected):
    assert displacement_name(fixed, moving) == expected


def test_displacement_name_rejects_other_file_names():
    with pytest.raises(ValueError, match=r"fixed\.nii\.gz: expected a Learn2Reg image name TASK_CCCC_MMMM"):
        displacement_name("fixed.nii.gz", "NLST_0001_0001.nii.gz")


def test_keypoints_of_a_modality_pair_and_a_nii_suffix_slip(tmp_path):
    """ThoraxCBCT stores keypoints per modality pair (keypoints01Tr) and lists them with a .nii.gz suffix."""
    dataset = write_task(tmp_path / "CBCT", "paired")
    shutil.move(tmp_path / "CBCT" / "keypointsTr", tmp_path / "CBCT" / "keypoints01Tr")

    def to_thorax(data):
        for entry in data["training"]:
            name = Path(entry.pop("keypoints")).name.replace(".csv", ".nii.gz")
            entry["keypoints01"] = f"./keypoints01Tr/{name}"
        for key in ("training_paired_images", "registration_val"):
            data[key] = [{"fixed": pair["moving"], "moving": pair["fixed"]} for pair in data[key]]  # 0001 <- 0000

    datalist = learn2reg_datalist(_edit(dataset, to_thorax))
    pair = datalist["validation"][0]
    assert Path(pair["fixed_image"]).name == "FakeNLST_0003_0001.nii.gz"
    assert pair["fixed_landmarks"] == str(tmp_path / "CBCT" / "keypoints01Tr" / "FakeNLST_0003_0001.csv")
    assert pair["moving_landmarks"] == str(tmp_path / "CBCT" / "keypoints01Tr" / "FakeNLST_0003_0000.csv")


def test_test_split_only_once_its_images_exist(tmp_path):
    dataset = write_task(tmp_path / "NLST", "paired")
    test_pair = {"fixed": "./imagesTs/FakeNLST_0005_0000.nii.gz", "moving": "./imagesTs/FakeNLST_0005_0001.nii.gz"}
    _edit(dataset, lambda data: data.update(registration_test=[test_pair]))
    assert "test" not in learn2reg_datalist(dataset)  # not released yet
    (tmp_path / "NLST" / "imagesTs").mkdir()
    for name in ("FakeNLST_0005_0000.nii.gz", "FakeNLST_0005_0001.nii.gz"):
        shutil.copy(tmp_path / "NLST" / "imagesTr" / "FakeNLST_0001_0000.nii.gz", tmp_path / "NLST" / "imagesTs" / name)
    assert [Path(item["moving_image"]).name for item in learn2reg_datalist(dataset)["test"]] == [
        "FakeNLST_0005_0001.nii.gz"
    ]


def _missing_validation_image(data):
    data["registration_val"][0]["moving"] = "./imagesTr/FakeNLST_0009_0001.nii.gz"


def _missing_label(data):
    data["training"][0]["mask"] = "./masksTr/gone.nii.gz"


@pytest.mark.parametrize(
    "change, kwargs, error, pattern",
    [
        (_missing_validation_image, {}, FileNotFoundError, r"FakeNLST_dataset\.json: image .*FakeNLST_0009_0001\.nii"),
        (_missing_label, {}, FileNotFoundError, r"the mask .*gone\.nii\.gz listed for .*FakeNLST_0001_0000"),
        (lambda d: d["registration_val"].append({"fixed": "a.nii.gz"}), {}, ValueError, r"registration_val\[2\]"),
        (lambda d: d.update(registration_val=[]), {}, ValueError, r"lists no registration_val pairs"),
        (lambda d: d.update(training_paired_images=[]), {"training": "paired"}, ValueError, r"training='unpaired'"),
        (lambda d: None, {"training": "random"}, ValueError, r"training must be one of \['auto', 'paired'"),
        (lambda d: d["training"].append({"label": "x"}), {}, ValueError, r"training\[8\]: expected \{'image'"),
    ],
)
def test_broken_task_is_named(tmp_path, change, kwargs, error, pattern):
    dataset = _edit(write_task(tmp_path / "NLST", "paired"), change)
    with pytest.raises(error, match=pattern):
        learn2reg_datalist(dataset, **kwargs)


def test_missing_or_ambiguous_dataset_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"no Learn2Reg dataset given \(empty path\).*--learn2reg_dataset"):
        read_learn2reg_task("")
    with pytest.raises(FileNotFoundError, match=r"Learn2Reg dataset file .*nothing\.json does not exist"):
        read_learn2reg_task(tmp_path / "nothing.json")
    with pytest.raises(FileNotFoundError, match=r"must hold exactly one \*dataset\.json, found \[\]"):
        read_learn2reg_task(tmp_path)
    dataset = write_task(tmp_path / "NLST", "paired")
    shutil.copy(dataset, dataset.with_name("Other_dataset.json"))
    with pytest.raises(ValueError, match=r"exactly one \*dataset\.json, found \['FakeNLST_dataset\.json', 'Other"):
        read_learn2reg_task(dataset.parent)
    dataset.write_text("{not json")
    with pytest.raises(ValueError, match=r"FakeNLST_dataset\.json is not valid JSON"):
        read_learn2reg_task(dataset)
