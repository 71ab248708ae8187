# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Unpaired training: a list of single images paired at random each epoch, as VTN trains.

The pairs of an epoch are a function of ``(seed, epoch)`` only, so every process of a distributed run (and every
rerun) draws the same pairs; a ``DistributedSampler`` then splits their indices between ranks as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import apply_transform
from torch.utils.data import Dataset

from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL

__all__ = ["UnpairedRegistrationDataset", "random_pairs"]


def random_pairs(num_images: int, num_pairs: int, seed: int | Sequence[int] = 0) -> list[tuple[int, int]]:
    """Random ordered pairs ``(fixed, moving)`` of distinct image indices.

    The fixed indices run through random permutations of all images, so with ``num_pairs == num_images`` every
    image is the fixed image exactly once; each moving index is drawn uniformly among the other images.

    Args:
        num_images: number of images to pair, at least 2.
        num_pairs: number of pairs to draw, at least 1.
        seed: seed of ``numpy.random.default_rng``; a sequence such as ``(seed, epoch)`` is accepted.

    Returns:
        ``num_pairs`` tuples ``(fixed_index, moving_index)`` with ``fixed_index != moving_index``.

    Raises:
        ValueError: fewer than 2 images or fewer than 1 pair.
    """
    if num_images < 2:
        raise ValueError(f"Pairing needs at least 2 images, got num_images={num_images}.")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be at least 1, got {num_pairs}.")
    rng = np.random.default_rng(seed)
    rounds = -(-num_pairs // num_images)
    fixed = np.concatenate([rng.permutation(num_images) for _ in range(rounds)])[:num_pairs]
    moving = (fixed + rng.integers(1, num_images, size=num_pairs)) % num_images
    return [(int(f), int(m)) for f, m in zip(fixed, moving)]


class UnpairedRegistrationDataset(Dataset):
    """Random ordered pairs of distinct images, redrawn each epoch, deterministic given ``(seed, epoch)``.

    Item ``i`` is ``{"fixed_image": path, "moving_image": path}`` plus ``fixed_label`` and ``moving_label`` when
    both images have a label, passed through ``transform`` (e.g. ``LoadImaged`` -> ``EnsureChannelFirstd`` -> ...).
    Call :meth:`set_epoch` at the start of every epoch (or :meth:`attach` to an Ignite engine) to draw new pairs.

    With ``DataLoader(num_workers > 0, persistent_workers=True)`` the workers keep their own copy of the dataset
    and do not see :meth:`set_epoch`; leave ``persistent_workers`` off with this dataset.

    Args:
        images: the images, as returned by :func:`monai_mine.data.datalist.load_unpaired_images`
            (``{"image": path, "label": path}`` dicts, the label optional) or plain path strings.
        transform: a callable (MONAI transform) applied to each pair dict; ``None`` returns the dict of paths.
        pairs_per_epoch: length of an epoch; default: the number of images.
        seed: base seed; the pairs of an epoch are drawn with ``numpy.random.default_rng((seed, epoch))``.

    Raises:
        ValueError: fewer than 2 images, an image without ``"image"``, or ``pairs_per_epoch`` below 1.
    """

    def __init__(
        self,
        images: Sequence[Mapping[str, Any] | str | os.PathLike],
        transform: Callable | None = None,
        pairs_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        self.images = [dict(image) if isinstance(image, Mapping) else {"image": image} for image in images]
        if len(self.images) < 2:
            raise ValueError(f"UnpairedRegistrationDataset needs at least 2 images, got {len(self.images)}.")
        for index, image in enumerate(self.images):
            if "image" not in image:
                raise ValueError(f"Image {index} has no 'image' key; it has keys {list(image)}.")
        self.pairs_per_epoch = len(self.images) if pairs_per_epoch is None else int(pairs_per_epoch)
        if self.pairs_per_epoch < 1:
            raise ValueError(f"pairs_per_epoch must be at least 1, got {pairs_per_epoch}.")
        self.transform = transform
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of ``epoch`` (the same pairs for the same ``(seed, epoch)``)."""
        self.epoch = int(epoch)
        self.pairs = random_pairs(len(self.images), self.pairs_per_epoch, seed=(self.seed, self.epoch))

    def attach(self, engine: Any) -> None:
        """Redraw the pairs at every ``EPOCH_STARTED`` of an Ignite ``engine``, using its (1-based) epoch."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda engine: self.set_epoch(engine.state.epoch))

    def __len__(self) -> int:
        return self.pairs_per_epoch

    def pair(self, index: int) -> dict[str, Any]:
        """The untransformed pair dict of item ``index`` in the current epoch."""
        fixed, moving = (self.images[i] for i in self.pairs[index])
        item = {FIXED_IMAGE: fixed["image"], MOVING_IMAGE: moving["image"]}
        if fixed.get("label") is not None and moving.get("label") is not None:
            item[FIXED_LABEL], item[MOVING_LABEL] = fixed["label"], moving["label"]
        return item

    def __getitem__(self, index: int) -> Any:
        item = self.pair(index)
        return item if self.transform is None else apply_transform(self.transform, item)
