# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label datastore records to monai-mine datalists, and fixed images named in infer requests."""

from __future__ import annotations

import pytest
from label_bundle import FolderDatastore

from monai_mine.apps.label import (
    bundle_training_overrides,
    datastore_records,
    registration_datalist,
    resolve_fixed_image,
    split_records,
)
from monai_mine.data import UnpairedRegistrationDataset, registration_dataset


def test_every_image_is_an_unpaired_record_with_its_final_label(studies):
    records = datastore_records(FolderDatastore(studies))
    assert records == [
        {"image": str(studies / "case_a.nii.gz"), "label": str(studies / "labels" / "final" / "case_a.nii.gz")},
        {"image": str(studies / "case_b.nii.gz"), "label": str(studies / "labels" / "final" / "case_b.nii.gz")},
        {"image": str(studies / "case_c.nii.gz")},
    ]
    assert [set(r) for r in datastore_records(FolderDatastore(studies), label_tag="original")] == [{"image"}] * 3


def test_images_naming_a_fixed_image_give_paired_records(studies):
    store = FolderDatastore(studies, info={"case_b": {"fixed_image": "case_a"}, "case_c": {"fixed_image": "case_a"}})
    records = datastore_records(store)
    final = studies / "labels" / "final"
    assert records == [
        {
            "moving_image": str(studies / "case_b.nii.gz"),
            "fixed_image": str(studies / "case_a.nii.gz"),
            "moving_label": str(final / "case_b.nii.gz"),
            "fixed_label": str(final / "case_a.nii.gz"),
        },
        {"moving_image": str(studies / "case_c.nii.gz"), "fixed_image": str(studies / "case_a.nii.gz")},
    ]
    with pytest.raises(ValueError, match="image 'case_b' names fixed image 'case_z' in its info, but the datastore"):
        datastore_records(FolderDatastore(studies, info={"case_b": {"fixed_image": "case_z"}}))


@pytest.mark.parametrize(
    "count, val_split, sizes",
    [(5, 0.4, (3, 2)), (6, 0.5, (3, 3)), (3, 0.2, (3, 3)), (3, 0.0, (3, 3)), (4, 0.75, (4, 4)), (2, 0.5, (2, 2))],
)
def test_unpaired_splits_keep_at_least_a_pair(count, val_split, sizes):
    records = [{"image": f"/data/{i}.nii.gz"} for i in range(count)]
    training, validation = split_records(records, val_split)
    assert (len(training), len(validation)) == sizes
    if sizes[0] + sizes[1] == count:  # held out: disjoint, in order
        assert training + validation == records
    else:  # too few to hold out: validated on the training images
        assert validation == training == records


def test_paired_splits_hold_out_single_pairs_and_too_few_records_raise():
    pairs = [{"moving_image": f"/m{i}.nii.gz", "fixed_image": f"/f{i}.nii.gz"} for i in range(2)]
    assert split_records(pairs, 0.5) == (pairs[:1], pairs[1:])
    with pytest.raises(ValueError, match="the datastore has 1 images; registration training needs at least 2"):
        split_records([{"image": "/a.nii.gz"}], 0.2)
    with pytest.raises(ValueError, match="the datastore has 0 images"):
        split_records([], 0.2)


def test_datalist_from_a_datastore_feeds_the_bundle_dataset(studies):
    datalist = registration_datalist(FolderDatastore(studies), val_split=0.0)
    assert datalist["training"] == datalist["validation"] and len(datalist["training"]) == 3
    dataset = registration_dataset(datalist, "training")
    assert isinstance(dataset, UnpairedRegistrationDataset) and len(dataset) == 3
    pairs = [dataset.pair(i) for i in range(len(dataset))]
    assert all(pair["moving_image"] != pair["fixed_image"] for pair in pairs)
    # labels only when both images of the drawn pair have one (case_c has none)
    for pair in pairs:
        labelled = "case_c" not in pair["moving_image"] + pair["fixed_image"]
        assert ("moving_label" in pair) == labelled and ("fixed_label" in pair) == labelled


def test_fixed_image_resolves_from_a_path_or_a_datastore_id(studies):
    store = FolderDatastore(studies)
    path = str(studies / "case_a.nii.gz")
    request = {"image": str(studies / "case_b.nii.gz"), "fixed_image": "case_a", "device": "cpu"}
    resolved = resolve_fixed_image(request, store)
    assert resolved == {**request, "fixed_image": path} and request["fixed_image"] == "case_a"
    assert resolve_fixed_image({"fixed_image": path}, None)["fixed_image"] == path
    with pytest.raises(ValueError, match="the infer request has no 'fixed_image'"):
        resolve_fixed_image({"image": path}, store)
    with pytest.raises(ValueError, match="fixed_image 'case_z' is neither a file nor an image id of the datastore"):
        resolve_fixed_image({"fixed_image": "case_z"}, store)


def test_training_overrides_pass_the_records_and_validate_at_least_once():
    training, validation = [{"image": "/a.nii.gz"}, {"image": "/b.nii.gz"}], [{"image": "/c.nii.gz"}]
    overrides = bundle_training_overrides(training, validation, max_epochs=1, val_interval=5)
    assert overrides == {"datalist": {"training": training, "validation": validation}, "val_interval": 1}
    overrides = bundle_training_overrides(training, None, max_epochs=50, val_interval=5)
    assert overrides == {"datalist": {"training": training, "validation": training}}
