# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""One call from a datalist split to a dataset of registration pairs, paired or unpaired."""

from __future__ import annotations

import os
from collections.abc import Callable

from monai.data import CacheDataset, Dataset
from monai.transforms import Compose

from monai_mine.data.datalist import DatalistLike, is_unpaired, load_registration_datalist, load_unpaired_images
from monai_mine.data.pairing import UnpairedRegistrationDataset

__all__ = ["registration_dataset"]


def registration_dataset(
    datalist: DatalistLike,
    split: str,
    transform: Callable | None = None,
    base_dir: str | os.PathLike | None = None,
    cache_rate: float = 0.0,
    pairs_per_epoch: int | None = None,
    seed: int = 0,
) -> Dataset | UnpairedRegistrationDataset:
    """The pairs of one split, checked against the files on disk, ready for a DataLoader.

    A paired split (items with ``fixed_image`` and ``moving_image``) becomes a MONAI ``CacheDataset`` (a plain
    ``Dataset`` when ``cache_rate`` is 0) that caches the transforms before the first random one. A ``Compose``
    nested in ``transform`` (an overlay such as ``configs/augment.json`` wraps the bundle's deterministic
    preprocessing and appends random augmentation) is flattened first: MONAI counts a nested ``Compose`` as random,
    so the cache would otherwise hold only the file names and every iteration would read and resample the files
    again. An unpaired split (a list of images) becomes an
    :class:`UnpairedRegistrationDataset` that draws new random pairs every epoch.

    Args:
        datalist: path of the datalist JSON (or a loaded dict with ``base_dir``).
        split: ``"training"``, ``"validation"``, ``"test"``, ...
        transform: the preprocessing applied to each pair dict.
        base_dir: folder that relative paths start from; default the datalist's folder.
        cache_rate: share of paired items whose preprocessed data is cached in memory.
        pairs_per_epoch: pairs per epoch of an unpaired split; default the number of images.
        seed: seed of the random pairing of an unpaired split.
    """
    if is_unpaired(datalist, split):
        images = load_unpaired_images(datalist, split, base_dir)
        return UnpairedRegistrationDataset(images, transform, pairs_per_epoch=pairs_per_epoch, seed=seed)
    pairs = load_registration_datalist(datalist, split, base_dir)
    if cache_rate > 0:
        if isinstance(transform, Compose):
            transform = transform.flatten()
        return CacheDataset(pairs, transform, cache_rate=cache_rate, progress=False)
    return Dataset(pairs, transform)
