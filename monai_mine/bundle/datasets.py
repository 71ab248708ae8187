# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The bundles' datasets in the model zoo's shape: ``train#dataset#data`` / ``validate#dataset#data`` hold the items
of one split (what the zoo's CONTRIBUTING asks for and what MONAI's ``TrainProperties`` name ``train_dataset_data``
and ``val_dataset_data``), and the dataset is built from them.

In the bundles' ``train.json``::

    "dataset": {
        "_target_": "monai_mine.bundle.split_dataset",
        "data": "$monai_mine.bundle.split_data(@datalist, @train#dataset#split)",
        "split": "training", ...
    }

so ``--datalist`` (a datalist file or dict), ``--train#dataset#split`` and ``--train#dataset#data`` (a list of pair
dicts, or of single images for unpaired training) all work as overrides.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from monai_mine.data import is_unpaired, load_registration_datalist, load_unpaired_images, registration_dataset
from monai_mine.data.datalist import DatalistLike

__all__ = ["split_data", "split_dataset"]


def split_data(datalist: DatalistLike, split: str, base_dir: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """The items of one split of ``datalist`` with absolute paths, checked against the files on disk: one dict per
    fixed/moving pair (``fixed_image``, ``moving_image``, optional labels and landmarks), or ``{"image": ...}`` per
    image of an unpaired split."""
    if is_unpaired(datalist, split):
        return load_unpaired_images(datalist, split, base_dir)
    return load_registration_datalist(datalist, split, base_dir)


def split_dataset(
    data: Sequence[Any],
    split: str = "training",
    transform: Callable | None = None,
    cache_rate: float = 0.0,
    pairs_per_epoch: int | None = None,
    seed: int = 0,
    base_dir: str | os.PathLike | None = None,
):
    """:func:`monai_mine.data.registration_dataset` of the items ``data`` (e.g. from :func:`split_data`): a
    (cached) dataset of pairs, or an unpaired one drawing new pairs each epoch. Relative paths in ``data`` start
    from ``base_dir``, by default the working directory; ``split`` names the items in messages."""
    base = os.getcwd() if base_dir is None else base_dir
    return registration_dataset(
        {split: list(data)}, split, transform, base, cache_rate=cache_rate, pairs_per_epoch=pairs_per_epoch, seed=seed
    )
