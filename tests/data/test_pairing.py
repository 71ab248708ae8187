"""Unpaired pairing: random ordered pairs of distinct images, deterministic per (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_mine.data import UnpairedRegistrationDataset, random_pairs
from tests.helpers import write_nifti


@pytest.mark.parametrize("num_images, num_pairs", [(2, 5), (3, 3), (7, 20)])
def test_random_pairs_distinct_in_range_and_deterministic(num_images, num_pairs):
    pairs = random_pairs(num_images, num_pairs, seed=3)
    assert len(pairs) == num_pairs
    assert all(0 <= f < num_images and 0 <= m < num_images and f != m for f, m in pairs)
    assert random_pairs(num_images, num_pairs, seed=3) == pairs


def test_random_pairs_each_image_fixed_once_per_round_and_all_pairs_reachable():
    pairs = random_pairs(5, 5, seed=0)
    assert sorted(f for f, _ in pairs) == list(range(5))
    drawn = {pair for seed in range(50) for pair in random_pairs(4, 4, seed)}
    assert drawn == {(f, m) for f in range(4) for m in range(4) if f != m}


def test_random_pairs_errors():
    with pytest.raises(ValueError, match="at least 2 images, got num_images=1"):
        random_pairs(1, 3, seed=0)
    with pytest.raises(ValueError, match="num_pairs must be at least 1, got 0"):
        random_pairs(3, 0, seed=0)


def test_dataset_pairs_deterministic_per_seed_and_epoch_and_change_across_epochs():
    images = [f"/data/img{i}.nii.gz" for i in range(6)]
    a = UnpairedRegistrationDataset(images, seed=1, pairs_per_epoch=12)
    b = UnpairedRegistrationDataset(images, seed=1, pairs_per_epoch=12)
    assert len(a) == 12
    epochs = []
    for epoch in range(4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert [a[i] for i in range(len(a))] == [b[i] for i in range(len(b))]
        assert all(a[i]["fixed_image"] != a[i]["moving_image"] for i in range(len(a)))
        epochs.append(list(a.pairs))
    assert len({tuple(pairs) for pairs in epochs}) == 4  # every epoch draws different pairs
    a.set_epoch(1)
    assert a.pairs == epochs[1]  # going back reproduces the epoch
    assert UnpairedRegistrationDataset(images, seed=2, pairs_per_epoch=12).pairs != epochs[0]


def test_dataset_labels_only_when_both_images_have_one():
    images = [{"image": "a", "label": "la"}, {"image": "b", "label": "lb"}, {"image": "c"}]
    dataset = UnpairedRegistrationDataset(images, pairs_per_epoch=30)
    for index, (f, m) in enumerate(dataset.pairs):
        item = dataset[index]
        assert item["fixed_image"] == images[f]["image"] and item["moving_image"] == images[m]["image"]
        if 2 in (f, m):
            assert set(item) == {"fixed_image", "moving_image"}
        else:
            assert item["fixed_label"] == images[f]["label"] and item["moving_label"] == images[m]["label"]


def test_dataset_errors():
    with pytest.raises(ValueError, match="needs at least 2 images, got 1"):
        UnpairedRegistrationDataset(["only.nii.gz"])
    with pytest.raises(ValueError, match=r"Image 1 has no 'image' key; it has keys \['label'\]"):
        UnpairedRegistrationDataset([{"image": "a"}, {"label": "b"}])
    with pytest.raises(ValueError, match="pairs_per_epoch must be at least 1, got 0"):
        UnpairedRegistrationDataset(["a", "b"], pairs_per_epoch=0)


def test_dataset_with_monai_transforms(tmp_path):
    images = []
    for index in range(3):
        path = tmp_path / f"img{index}.nii.gz"
        write_nifti(path, np.full((4, 5, 6), index, dtype=np.float32))
        label = tmp_path / f"seg{index}.nii.gz"
        write_nifti(label, np.full((4, 5, 6), index + 1, dtype=np.int16))
        images.append({"image": str(path), "label": str(label)})
    keys = ["fixed_image", "moving_image", "fixed_label", "moving_label"]
    transform = Compose([LoadImaged(keys), EnsureChannelFirstd(keys)])
    dataset = UnpairedRegistrationDataset(images, transform=transform, seed=0)
    for index, (f, m) in enumerate(dataset.pairs):
        item = dataset[index]
        assert item["fixed_image"].shape == (1, 4, 5, 6)
        assert item["fixed_image"].meta["filename_or_obj"] == images[f]["image"]
        assert float(item["moving_image"].max()) == m and float(item["moving_label"].max()) == m + 1
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["moving_image"].shape == (3, 1, 4, 5, 6)
    assert torch.all(batch["fixed_image"].flatten(1).amax(1) != batch["moving_image"].flatten(1).amax(1))


def test_attach_redraws_pairs_at_every_ignite_epoch():
    ignite_engine = pytest.importorskip("ignite.engine")

    dataset = UnpairedRegistrationDataset([f"img{i}" for i in range(5)], seed=0)
    seen = []
    engine = ignite_engine.Engine(lambda engine, batch: None)
    dataset.attach(engine)
    engine.add_event_handler(
        ignite_engine.Events.EPOCH_COMPLETED, lambda engine: seen.append((dataset.epoch, list(dataset.pairs)))
    )
    engine.run(range(2), max_epochs=3)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    dataset.set_epoch(2)
    assert seen[1][1] == dataset.pairs
