"""registration_dataset: a cached training split reads its files once, also behind an overlay's nested Compose."""

from __future__ import annotations

import json

import numpy as np
from monai.transforms import Compose, LoadImaged, MapTransform, RandomizableTransform

from monai_mine.data import registration_dataset
from tests.helpers import write_nifti


class CountingLoad(LoadImaged):
    """LoadImaged that counts its calls."""

    calls = 0

    def __call__(self, data, reader=None):
        CountingLoad.calls += 1
        return super().__call__(data, reader)


class RandomShift(RandomizableTransform, MapTransform):
    """A random transform after the cached prefix: adds a random number to the moving image."""

    def __init__(self) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        MapTransform.__init__(self, keys=["moving_image"])

    def __call__(self, data):
        self.randomize(None)
        d = dict(data)
        d["moving_image"] = d["moving_image"] + self.R.uniform()
        return d


def test_nested_compose_is_cached_up_to_its_first_random_transform(tmp_path):
    for name in ("f", "m"):
        write_nifti(tmp_path / f"{name}.nii.gz", np.random.rand(4, 4, 4).astype(np.float32))
    (tmp_path / "datalist.json").write_text(
        json.dumps({"training": [{"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz"}]})
    )
    preprocessing = Compose([CountingLoad(keys=["fixed_image", "moving_image"], image_only=True)])
    augmented = Compose([preprocessing, RandomShift()])  # as configs/augment.json nests it
    CountingLoad.calls = 0
    dataset = registration_dataset(tmp_path / "datalist.json", "training", augmented, cache_rate=1.0)
    assert CountingLoad.calls == 1  # filled the cache
    first, second = dataset[0], dataset[0]
    assert CountingLoad.calls == 1  # served from the cache
    assert not np.allclose(first["moving_image"], second["moving_image"])  # the random part still runs per item
    np.testing.assert_allclose(first["fixed_image"], second["fixed_image"])
