# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Turning a collated datalist batch into the tensors of a registration step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from monai.utils import convert_to_tensor

from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, IMAGE_KEYS, LABEL_KEYS, MOVING_IMAGE, MOVING_LABEL, TARGET_DDF
from monai_mine.stages import StageRecord

__all__ = ["RegistrationBatch", "prepare_registration_batch", "split_records"]


@dataclass
class RegistrationBatch:
    """A batch of pairs on the engine's device.

    Attributes:
        moving: Tensor in shape (B, 1, X, Y, Z); a MetaTensor when the data loader gave one.
        fixed: Tensor in shape (B, 1, X, Y, Z).
        moving_label: integer label map (B, 1, X, Y, Z), or ``None``.
        fixed_label: integer label map (B, 1, X, Y, Z), or ``None``.
        target_ddf: the pairs' known answer (B, 3, X, Y, Z) in voxels (synthetic pairs), or ``None``.
    """

    moving: torch.Tensor
    fixed: torch.Tensor
    moving_label: torch.Tensor | None = None
    fixed_label: torch.Tensor | None = None
    target_ddf: torch.Tensor | None = None

    @property
    def has_labels(self) -> bool:
        return self.moving_label is not None and self.fixed_label is not None

    def plain(self) -> RegistrationBatch:
        """The same batch as plain tensors (no MetaTensor bookkeeping in the training step)."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return RegistrationBatch(**{name: convert_to_tensor(value, track_meta=False) for name, value in values.items()})

    def network_input(self, reverse: bool = False) -> torch.Tensor:
        """The network's input (B, 2, X, Y, Z): moving then fixed, or fixed then moving when ``reverse``."""
        pair = (self.fixed, self.moving) if reverse else (self.moving, self.fixed)
        return torch.cat([torch.as_tensor(image) for image in pair], dim=1)


def _source(batchdata: Mapping, key: str) -> str:
    """The file a batch entry came from, for error messages."""
    meta = getattr(batchdata[key], "meta", None) or {}
    source = meta.get("filename_or_obj", key)
    if isinstance(source, (list, tuple)):
        source = ", ".join(str(item) for item in source)
    return f"{key} ({source})"


def prepare_registration_batch(
    batchdata: Mapping, device: torch.device | str | None = None, non_blocking: bool = False, **kwargs
) -> RegistrationBatch:
    """Take moving/fixed images (and labels when both are present) from a collated batch and check them.

    Args:
        batchdata: a dict with ``moving_image`` and ``fixed_image`` (B, 1, X, Y, Z), optionally ``moving_label``
            and ``fixed_label`` of the same shape and a known answer ``target_ddf`` (B, 3, X, Y, Z).
        device: where to move the tensors.
        non_blocking: asynchronous host-to-device copies.
        kwargs: further ``Tensor.to`` arguments.

    Raises:
        KeyError: when an image key is missing (the message lists the keys present).
        ValueError: on tensors that are not (B, 1, X, Y, Z), or shapes that differ within a pair.
    """
    if not isinstance(batchdata, Mapping):
        raise TypeError(f"a registration batch must be a dict of tensors, got {type(batchdata).__name__}.")
    for key in IMAGE_KEYS:
        if key not in batchdata:
            raise KeyError(f"registration batch needs {key!r}; it has {sorted(batchdata)}.")
    keys = IMAGE_KEYS + (LABEL_KEYS if all(key in batchdata for key in LABEL_KEYS) else ())
    for key in keys:
        shape = tuple(batchdata[key].shape)
        if len(shape) != 5 or shape[1] != 1:
            raise ValueError(f"{_source(batchdata, key)} must be a (B, 1, X, Y, Z) batch, got shape {shape}.")
    reference = tuple(batchdata[FIXED_IMAGE].shape)
    for key in keys:
        if tuple(batchdata[key].shape) != reference:
            raise ValueError(
                f"{_source(batchdata, key)} has shape {tuple(batchdata[key].shape)}, but "
                f"{_source(batchdata, FIXED_IMAGE)} has {reference}: a pair must share one grid."
            )
    if TARGET_DDF in batchdata:
        shape = tuple(batchdata[TARGET_DDF].shape)
        if shape != (reference[0], 3, *reference[2:]):
            raise ValueError(
                f"{TARGET_DDF} has shape {shape}, but {_source(batchdata, FIXED_IMAGE)} has {reference}: a known "
                f"answer must be (B, 3, X, Y, Z) on the pair's grid."
            )
        keys += (TARGET_DDF,)
    moved = {key: batchdata[key].to(device=device, non_blocking=non_blocking, **kwargs) for key in keys}
    return RegistrationBatch(
        moving=moved[MOVING_IMAGE].float(),
        fixed=moved[FIXED_IMAGE].float(),
        moving_label=moved.get(MOVING_LABEL),
        fixed_label=moved.get(FIXED_LABEL),
        target_ddf=None if TARGET_DDF not in moved else moved[TARGET_DDF].float(),
    )


def split_records(records: list[StageRecord], size: int) -> tuple[list[StageRecord], list[StageRecord]]:
    """Split stage records of a doubled batch (forward pairs, then reverse pairs) into the two halves."""
    first, second = [], []
    for record in records:
        halves = {
            field.name: (value[:size], value[size:]) if isinstance(value, torch.Tensor) else (value, value)
            for field in fields(record)
            for value in [getattr(record, field.name)]
        }
        first.append(StageRecord(**{name: pair[0] for name, pair in halves.items()}))
        second.append(StageRecord(**{name: pair[1] for name, pair in halves.items()}))
    return first, second
