"""Registration datalists: path resolution, paired and unpaired splits, and errors that name file and item."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from monai_mine.data import demo_datalist, is_unpaired, load_registration_datalist, load_unpaired_images
from tests.helpers import write_nifti


def _nifti(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(path, np.zeros((4, 4, 4), dtype=np.float32))


def _datalist(folder, content, name="datalist.json"):
    path = folder / name
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def files(tmp_path):
    """Images f.nii.gz, m.nii.gz and labels fl.nii.gz, ml.nii.gz under tmp_path/data."""
    return {name: _nifti(tmp_path / "data" / f"{name}.nii.gz") for name in ("f", "m", "fl", "ml")}


def test_relative_paths_resolve_against_datalist_folder_and_absolute_paths_are_kept(tmp_path, files):
    other = _nifti(tmp_path / "elsewhere" / "x.nii.gz")
    item = {"fixed_image": "f.nii.gz", "moving_image": str(other), "fixed_label": "./fl.nii.gz"}
    path = _datalist(tmp_path / "data", {"training": [item], "spec": {"version": 1}})
    (pair,) = load_registration_datalist(path)
    assert pair == {
        "fixed_image": str(files["f"]),
        "moving_image": str(other),
        "fixed_label": str(files["fl"]),
    }
    assert all(os.path.isabs(value) for value in pair.values())


def test_base_dir_overrides_datalist_folder_and_is_needed_for_a_dict(tmp_path, files):
    content = {"validation": [{"fixed_image": "data/f.nii.gz", "moving_image": "data/../data/m.nii.gz"}]}
    (tmp_path / "lists").mkdir()
    path = _datalist(tmp_path / "lists", content)
    (pair,) = load_registration_datalist(path, "validation", base_dir=tmp_path)
    assert pair == {"fixed_image": str(files["f"]), "moving_image": str(files["m"])}
    assert load_registration_datalist(content, "validation", base_dir=tmp_path) == [pair]
    with pytest.raises(ValueError, match=r"datalist dict, split 'validation', item 0, key 'fixed_image'.*base_dir"):
        load_registration_datalist(content, "validation")


def test_labels_and_require_labels(tmp_path, files):
    items = [
        {
            "fixed_image": "f.nii.gz",
            "moving_image": "m.nii.gz",
            "fixed_label": "fl.nii.gz",
            "moving_label": "ml.nii.gz",
        },
        {"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz", "fixed_label": "fl.nii.gz"},
    ]
    path = _datalist(tmp_path / "data", {"training": items})
    assert len(load_registration_datalist(path)) == 2
    with pytest.raises(
        ValueError, match=re.escape(f"datalist {path}, split 'training', item 1: missing ['moving_label']")
    ):
        load_registration_datalist(path, require_labels=True)


def test_missing_datalist_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"Datalist file {tmp_path / 'nope.json'} does not exist")):
        load_registration_datalist(tmp_path / "nope.json")


def test_invalid_json_names_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"training": [\n  {"fixed_image": "f.nii.gz",}\n]}')
    with pytest.raises(ValueError, match=re.escape(f"Datalist file {path} is not valid JSON") + r".*line 2, column"):
        load_registration_datalist(path)


def test_top_level_must_be_an_object(tmp_path):
    path = _datalist(tmp_path, [{"fixed_image": "f.nii.gz"}])
    with pytest.raises(ValueError, match=re.escape(f"Datalist file {path} must hold a JSON object") + ".*got a list"):
        load_registration_datalist(path)


def test_missing_split_lists_the_splits_present(tmp_path, files):
    path = _datalist(tmp_path / "data", {"training": [], "validation": [], "spec": {}})
    with pytest.raises(
        ValueError, match=re.escape(f"Split 'test' not found in datalist {path}") + r".*\['training', 'validation'\]"
    ):
        load_registration_datalist(path, "test")


def test_empty_split(tmp_path):
    path = _datalist(tmp_path, {"training": []})
    with pytest.raises(ValueError, match=re.escape(f"Split 'training' of datalist {path} is empty")):
        load_registration_datalist(path)
    with pytest.raises(ValueError, match="is empty"):
        is_unpaired(path)


def test_split_must_be_a_list(tmp_path):
    path = _datalist(tmp_path, {"training": {"fixed_image": "f.nii.gz"}})
    with pytest.raises(ValueError, match=r"Split 'training' of datalist .*datalist\.json must be a list.*got a dict"):
        load_registration_datalist(path)


def test_item_missing_moving_image_names_index_and_keys(tmp_path, files):
    items = [
        {"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz"},
        {"fixed_image": "f.nii.gz", "fixed_label": "fl.nii.gz"},
    ]
    path = _datalist(tmp_path / "data", {"training": items})
    message = (
        f"datalist {path}, split 'training', item 1: missing ['moving_image']; "
        "the item has keys ['fixed_image', 'fixed_label']"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_registration_datalist(path)


def test_unknown_key_catches_typos(tmp_path, files):
    items = [{"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz", "moving_lable": "ml.nii.gz"}]
    path = _datalist(tmp_path / "data", {"training": items})
    with pytest.raises(
        ValueError, match=r"item 0: unknown key\(s\) \['moving_lable'\]; allowed keys are .*'moving_label'"
    ):
        load_registration_datalist(path)


def test_item_that_is_not_a_dict(tmp_path, files):
    path = _datalist(tmp_path / "data", {"training": [["f.nii.gz", "m.nii.gz"]]})
    with pytest.raises(ValueError, match=r"item 0: expected a dict with keys \['moving_image', 'fixed_image'\]"):
        load_registration_datalist(path)


def test_missing_referenced_file_names_key_item_and_resolved_path(tmp_path, files):
    items = [
        {"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz"},
        {"fixed_image": "f.nii.gz", "moving_image": "gone.nii.gz"},
    ]
    path = _datalist(tmp_path / "data", {"training": items})
    resolved = tmp_path / "data" / "gone.nii.gz"
    message = f"datalist {path}, split 'training', item 1, key 'moving_image': file {resolved} does not exist"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        load_registration_datalist(path)


def test_non_string_path(tmp_path, files):
    path = _datalist(tmp_path / "data", {"training": [{"fixed_image": "f.nii.gz", "moving_image": None}]})
    with pytest.raises(ValueError, match=r"item 0, key 'moving_image': expected a file path, got None"):
        load_registration_datalist(path)


def test_unpaired_split(tmp_path, files):
    content = {"training": ["f.nii.gz", {"image": "m.nii.gz", "label": "ml.nii.gz"}, {"image": str(files["fl"])}]}
    path = _datalist(tmp_path / "data", content)
    assert is_unpaired(path) and is_unpaired(content, "training")
    assert load_unpaired_images(path, "training") == [
        {"image": str(files["f"])},
        {"image": str(files["m"]), "label": str(files["ml"])},
        {"image": str(files["fl"])},
    ]
    with pytest.raises(
        ValueError,
        match=re.escape(f"Split 'training' of datalist {path} lists single images") + ".*load_unpaired_images",
    ):
        load_registration_datalist(path)


def test_unpaired_errors(tmp_path, files):
    path = _datalist(
        tmp_path / "data",
        {
            "typo": ["f.nii.gz", {"image": "m.nii.gz", "lable": "ml.nii.gz"}],
            "missing": ["f.nii.gz", "nothere.nii.gz"],
            "mixed": ["f.nii.gz", {"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz"}],
            "paired": [{"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz"}],
        },
    )
    with pytest.raises(
        ValueError, match=r"split 'typo', item 1: unknown key\(s\) \['lable'\]; allowed keys are \['image', 'label'\]"
    ):
        load_unpaired_images(path, "typo")
    message = f"split 'missing', item 1, key 'image': file {tmp_path / 'data' / 'nothere.nii.gz'} does not exist"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        load_unpaired_images(path, "missing")
    with pytest.raises(
        ValueError, match=r"Split 'mixed' of datalist .* mixes single images and pairs: .* item 1 is a pair"
    ):
        is_unpaired(path, "mixed")
    assert not is_unpaired(path, "paired")
    with pytest.raises(
        ValueError, match=r"lists fixed/moving pairs, not single images; load it with load_registration_datalist"
    ):
        load_unpaired_images(path, "paired")


def test_reads_the_demo_dataset(tmp_path):
    path = demo_datalist(size=8, num_pairs={"training": 1, "test": 1}, cache_dir=tmp_path)
    (pair,) = load_registration_datalist(path, "test", require_labels=True)
    assert set(pair) == {"fixed_image", "moving_image", "fixed_label", "moving_label", "displacement"}
    assert all(os.path.isfile(value) for value in pair.values())
