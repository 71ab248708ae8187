"""A bundle's datalist may name MetaImage, NRRD and MGZ files as well as NIfTI: the bundles' preprocessing reads
them (through MONAI's ITK and nibabel readers) to the same arrays and world coordinates, and the inference
writer names its outputs by their stems."""

from __future__ import annotations

import json
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest
import torch

from monai_mine.data import demo_datalist, load_registration_datalist
from monai_mine.engines.writers import pair_name
from tests.helpers import bundle_dir, bundle_parser

KEYS = ("moving_image", "fixed_image", "moving_label", "fixed_label")


def converted(item: dict, folder: Path, suffix: str) -> dict:
    """The datalist item's files written again in another format (``.mha``, ``.nrrd`` through ITK; ``.mgz``)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = {}
    for key in KEYS:
        source = Path(item[key])
        target = folder / f"{source.name[: -len('.nii.gz')]}{suffix}"
        if suffix == ".mgz":
            image = nib.load(source)
            nib.save(nib.MGHImage(np.asarray(image.dataobj), image.affine), target)
        else:
            itk.imwrite(itk.imread(str(source)), str(target))
        result[key] = str(target)
    return result


def preprocessing():
    return bundle_parser(bundle_dir("vtn_addd")).get_parsed_content("preprocessing")


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".mgz"])
def test_other_formats_in_a_datalist_read_as_the_nifti_files_do(tmp_path, suffix):
    item = load_registration_datalist(demo_datalist("mono", size=64), "test")[0]
    other = converted(item, tmp_path / "data", suffix)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": [other]}))
    (reread,) = load_registration_datalist(datalist, "test")
    transform = preprocessing()
    expected, got = transform(dict(item)), transform(dict(reread))
    for key in KEYS:
        torch.testing.assert_close(got[key].as_tensor().float(), expected[key].as_tensor().float(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(got[key].affine.numpy(), expected[key].affine.numpy(), atol=1e-4)
    names = {"moving": got["moving_image"], "fixed": got["fixed_image"]}
    stem = lambda path: Path(path).name[: -len(suffix)]  # noqa: E731
    assert pair_name(names, 0) == f"{stem(other['moving_image'])}_to_{stem(other['fixed_image'])}"
