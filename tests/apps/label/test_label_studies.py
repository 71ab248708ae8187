# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A MONAI Label studies folder from the demo pairs (python -m monai_mine.apps.label.studies)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from label_bundle import FolderDatastore

from monai_mine.apps.label import datastore_records, registration_datalist
from monai_mine.apps.label.studies import main, make_demo_studies


def test_demo_pairs_become_images_with_final_labels(small_demo_datalist, tmp_path):
    studies = tmp_path / "studies"
    assert make_demo_studies(studies, pairs=2, datalist=small_demo_datalist) == [
        ("moving_000", "fixed_000"),
        ("moving_001", "fixed_001"),
    ]
    ids = ["fixed_000", "fixed_001", "moving_000", "moving_001"]
    assert sorted(path.name for path in studies.glob("*.nii.gz")) == [f"{i}.nii.gz" for i in ids]
    assert sorted(path.name for path in (studies / "labels" / "final").glob("*.nii.gz")) == [f"{i}.nii.gz" for i in ids]
    first = json.loads(small_demo_datalist.read_text())["test"][0]
    for image_id, key in (("moving_000", "moving_image"), ("fixed_000", "fixed_image"), ("moving_000", "moving_label")):
        folder = studies / "labels" / "final" if key.endswith("label") else studies
        copied, original = nib.load(folder / f"{image_id}.nii.gz"), nib.load(small_demo_datalist.parent / first[key])
        assert copied.shape == original.shape == (16, 16, 16)
        np.testing.assert_array_equal(copied.get_fdata(), original.get_fdata())
    # as MONAI Label's local datastore lays it out: every image a training record with its final label
    records = datastore_records(FolderDatastore(studies))
    assert [r["image"] for r in records] == [str(studies / f"{i}.nii.gz") for i in ids]
    assert all(r["label"] == str(studies / "labels" / "final" / f"{i}.nii.gz") for r, i in zip(records, ids))
    assert len(registration_datalist(FolderDatastore(studies), val_split=0.0)["training"]) == 4


def test_studies_without_labels_and_bad_arguments(small_demo_datalist, tmp_path):
    assert make_demo_studies(tmp_path / "s", pairs=None, labels=False, datalist=small_demo_datalist) == [
        ("moving_000", "fixed_000"),
        ("moving_001", "fixed_001"),
    ]
    assert not (tmp_path / "s" / "labels").exists()
    with pytest.raises(ValueError, match=r"has no pairs in split 'training' \(splits with pairs: \['test'\]\)"):
        make_demo_studies(tmp_path / "t", split="training", datalist=small_demo_datalist)
    with pytest.raises(ValueError, match="pairs must be at least 1, got 0"):
        make_demo_studies(tmp_path / "t", pairs=0, datalist=small_demo_datalist)


def test_studies_command_line(small_demo_datalist, tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--pairs", "1", "--datalist", str(small_demo_datalist)]) == 0
    assert "1 pairs (moving, fixed): [('moving_000', 'fixed_000')]" in capsys.readouterr().out
    assert (
        sorted(path.name for path in (tmp_path / "cli").rglob("*.nii.gz"))
        == ["fixed_000.nii.gz"] * 2 + ["moving_000.nii.gz"] * 2
    )
