"""The demo dataset: generated once into its cache folder, reused, never written over other data."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from monai_mine.data import default_cache_dir, demo_datalist

SMALL = {"training": 2, "validation": 1, "test": 1}


@pytest.mark.parametrize("flavour", ["mono", "contrast"])
def test_generates_nifti_pairs_and_datalist(tmp_path, flavour):
    path = demo_datalist(flavour, size=16, num_pairs=SMALL, cache_dir=tmp_path)
    assert path == tmp_path / f"demo_{flavour}_16" / "datalist.json"
    datalist = json.loads(path.read_text())
    assert [len(datalist[split]) for split in ("training", "validation", "test")] == [2, 1, 1]
    item = datalist["training"][0]
    assert set(item) == {"fixed_image", "moving_image", "fixed_label", "moving_label", "displacement"}
    assert nib.load(path.parent / item["moving_image"]).shape == (16, 16, 16)
    assert nib.load(path.parent / item["displacement"]).shape == (16, 16, 16, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_contrast_flavour_changes_intensity_mapping(tmp_path):
    mono = demo_datalist("mono", size=16, num_pairs={"test": 1}, cache_dir=tmp_path)
    contrast = demo_datalist("contrast", size=16, num_pairs={"test": 1}, cache_dir=tmp_path)

    def structure_means(datalist_path):
        item = json.loads(datalist_path.read_text())["test"][0]
        image = nib.load(datalist_path.parent / item["moving_image"]).get_fdata()
        label = nib.load(datalist_path.parent / item["moving_label"]).get_fdata()
        return [image[label == k].mean() for k in (1, 2, 3)]

    mono_means, contrast_means = structure_means(mono), structure_means(contrast)
    assert mono_means[0] < mono_means[1] < mono_means[2]
    assert contrast_means[0] > contrast_means[1] > contrast_means[2]  # reversed order in the other contrast


def test_reused_when_spec_matches_and_deterministic(tmp_path):
    first = demo_datalist("mono", size=16, num_pairs={"test": 1}, cache_dir=tmp_path / "a")
    stamp = first.stat().st_mtime_ns
    assert demo_datalist("mono", size=16, num_pairs={"test": 1}, cache_dir=tmp_path / "a") == first
    assert first.stat().st_mtime_ns == stamp
    second = demo_datalist("mono", size=16, num_pairs={"test": 1}, cache_dir=tmp_path / "b")
    name = json.loads(first.read_text())["test"][0]["moving_image"]
    np.testing.assert_array_equal(nib.load(first.parent / name).get_fdata(), nib.load(second.parent / name).get_fdata())


def test_never_writes_into_foreign_or_mismatched_folders(tmp_path):
    foreign = tmp_path / "demo_mono_16"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("user data")
    with pytest.raises(ValueError, match="exists but is not a finished demo dataset"):
        demo_datalist("mono", size=16, num_pairs={"test": 1}, cache_dir=tmp_path)
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]
    demo_datalist("contrast", size=16, num_pairs={"test": 1}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="another specification"):
        demo_datalist("contrast", size=16, num_pairs={"test": 2}, cache_dir=tmp_path)


def test_bad_arguments_and_cache_override(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"flavour must be one of \('mono', 'contrast'\), got 'ct'"):
        demo_datalist("ct", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"num_pairs keys must be among .*got \['train'\]"):
        demo_datalist("mono", num_pairs={"train": 1}, cache_dir=tmp_path)
    monkeypatch.setenv("MONAI_MINE_DATA", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
