# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""From a MONAI Label datastore to monai-mine datalists, and fixed images named in infer requests to files.

Only the datastore interface of ``monailabel.interfaces.datastore.Datastore`` is used (``list_images``,
``get_image_uri``, ``get_image_info``, ``get_labels_by_image_id``, ``get_label_uri``), so any datastore works and
MONAI Label itself is not imported.

Registration trains without labels, so every image of the datastore is a training record, not only the labelled
ones that MONAI Label's ``datastore.datalist()`` returns:

- **unpaired** (the default): each image is ``{"image": path}`` plus ``"label"`` when it has a label of the given
  tag; the bundle pairs them at random every epoch (see :mod:`monai_mine.data.pairing`);
- **paired**: when images name their fixed image in their info (``"fixed_image": <image id>``, set e.g. with
  ``datastore.update_image_info(moving_id, {"fixed_image": fixed_id})``), only those pairs are used:
  ``{"moving_image", "fixed_image"}`` plus ``moving_label``/``fixed_label`` when both images have one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_mine.keys import FIXED_IMAGE, LABEL_KEYS, MOVING_IMAGE

__all__ = [
    "FINAL_LABEL_TAG",
    "FIXED_IMAGE_KEY",
    "bundle_training_overrides",
    "datastore_records",
    "check_moving_image",
    "registration_datalist",
    "resolve_fixed_image",
    "split_records",
]

FIXED_IMAGE_KEY = FIXED_IMAGE
"""Request parameter (infer) and image info key (datastore) naming the fixed image: the pair's data key, so that
the request's value lands where the bundle's preprocessing reads the fixed image."""

FINAL_LABEL_TAG = "final"
"""MONAI Label's tag of approved labels (``DefaultLabelTag.FINAL``)."""


def _existing(path: Any) -> str | None:
    return os.path.abspath(str(path)) if path and Path(str(path)).is_file() else None


def _image_path(datastore: Any, image_id: str) -> str:
    path = _existing(datastore.get_image_uri(image_id))
    if path is None:
        raise FileNotFoundError(
            f"image {image_id!r} of the datastore has no file ({datastore.get_image_uri(image_id)!r})."
        )
    return path


def _label_path(datastore: Any, image_id: str, label_tag: str) -> str | None:
    label_id = datastore.get_labels_by_image_id(image_id).get(label_tag)
    return _existing(datastore.get_label_uri(label_id, label_tag)) if label_id else None


def datastore_records(datastore: Any, label_tag: str = FINAL_LABEL_TAG) -> list[dict[str, str]]:
    """The datastore's images as monai-mine datalist items (absolute paths), in image id order.

    Args:
        datastore: a MONAI Label datastore (or anything with its interface).
        label_tag: the tag of the labels to use (MONAI Label's approved labels: ``"final"``).

    Returns:
        unpaired items ``{"image", "label"?}`` for every image, or, when some images name a fixed image in their
        info, paired items ``{"moving_image", "fixed_image", "moving_label"?, "fixed_label"?}`` for those.

    Raises:
        FileNotFoundError: an image's file is missing.
        ValueError: an image names a fixed image that is not in the datastore.
    """
    image_ids = sorted(datastore.list_images())
    fixed_of = {}
    for image_id in image_ids:
        fixed_id = (datastore.get_image_info(image_id) or {}).get(FIXED_IMAGE_KEY)
        if fixed_id:
            if fixed_id not in image_ids:
                raise ValueError(
                    f"image {image_id!r} names fixed image {fixed_id!r} in its info, but the datastore has no such "
                    f"image (it has {image_ids[:10]}{' ...' if len(image_ids) > 10 else ''})."
                )
            fixed_of[image_id] = fixed_id
    if not fixed_of:
        records = []
        for image_id in image_ids:
            record = {"image": _image_path(datastore, image_id)}
            label = _label_path(datastore, image_id, label_tag)
            if label is not None:
                record["label"] = label
            records.append(record)
        return records
    records = []
    for moving_id, fixed_id in fixed_of.items():
        record = {MOVING_IMAGE: _image_path(datastore, moving_id), FIXED_IMAGE: _image_path(datastore, fixed_id)}
        labels = {key: _label_path(datastore, i, label_tag) for key, i in zip(LABEL_KEYS, (moving_id, fixed_id))}
        if all(labels.values()):
            record.update(labels)
        records.append(record)
    return records


def split_records(records: Sequence[Mapping[str, str]], val_split: float = 0.2) -> tuple[list[dict], list[dict]]:
    """Split datalist items into training and validation, keeping every split usable by the bundles.

    The last ``round(len(records) * val_split)`` records are held out for validation. An unpaired split needs at
    least 2 images (a pair); when holding out would leave either split smaller than that (or ``val_split <= 0``),
    the training records are validated on instead.

    Returns:
        ``(training, validation)`` lists of record dicts.

    Raises:
        ValueError: with fewer than 2 images (unpaired) or no pair (paired) to train on.
    """
    records = [dict(record) for record in records]
    unpaired = not records or "image" in records[0]
    minimum = 2 if unpaired else 1
    if len(records) < minimum:
        what = "images" if unpaired else "pairs (images naming a fixed_image)"
        raise ValueError(
            f"the datastore has {len(records)} {what}; registration training needs at least {minimum} "
            f"({'unpaired images are paired at random' if unpaired else 'each pair is one training item'})."
        )
    held_out = int(round(len(records) * val_split)) if val_split > 0 else 0
    if held_out < minimum or len(records) - held_out < minimum:
        return records, [dict(record) for record in records]
    return records[: len(records) - held_out], records[len(records) - held_out :]


def registration_datalist(datastore: Any, val_split: float = 0.2, label_tag: str = FINAL_LABEL_TAG) -> dict:
    """``{"training": [...], "validation": [...]}`` from a datastore, for a bundle's ``datalist`` (absolute paths).

    See :func:`datastore_records` and :func:`split_records`.
    """
    training, validation = split_records(datastore_records(datastore, label_tag), val_split)
    return {"training": training, "validation": validation}


def bundle_training_overrides(
    training: Sequence[Mapping[str, str]],
    validation: Sequence[Mapping[str, str]] | None,
    max_epochs: int,
    val_interval: int,
) -> dict[str, Any]:
    """Bundle config overrides that train on datastore records for ``max_epochs`` epochs.

    ``datalist`` gets the records (validation on the training records when ``validation`` is ``None``), and
    ``val_interval`` is lowered to ``max_epochs`` when it is larger: the bundles write ``models/model.pt`` (what the
    infer task loads) when they validate, so a short training must validate at least once.
    """
    training = [dict(record) for record in training]
    validation = training if validation is None else [dict(record) for record in validation]
    overrides: dict[str, Any] = {"datalist": {"training": training, "validation": validation}}
    if int(val_interval) > int(max_epochs):
        overrides["val_interval"] = int(max_epochs)
    return overrides


def check_moving_image(request: Mapping[str, Any], datastore: Any) -> None:
    """Check that an infer request's ``image`` (the moving image: a file or DICOM folder path, or a datastore image
    id) exists, before MONAI Label turns an unknown id into an empty path (which ITK then reports as a folder
    without DICOM files).

    Raises:
        ValueError: when the request has no ``image``, or names one that is neither a path nor an image id of the
            datastore with a file (or folder) behind it.
    """
    image = request.get("image")
    if not isinstance(image, (str, os.PathLike)):
        if image is None:
            raise ValueError("the infer request has no 'image': pass the moving image's datastore id or file path.")
        return  # already loaded data (MONAI Label passes arrays through)
    if not str(image):
        raise ValueError("the infer request has no 'image': pass the moving image's datastore id or file path.")
    if os.path.exists(image):
        return
    uri = datastore.get_image_uri(str(image)) if datastore is not None else None
    if not uri or not os.path.exists(uri):
        raise ValueError(
            f"image {str(image)!r} (the moving image) is neither a file nor an image id of the datastore"
            + (f" (its file {uri!r} does not exist)." if uri else ".")
        )


def resolve_fixed_image(request: Mapping[str, Any], datastore: Any) -> dict[str, Any]:
    """A copy of an infer request whose ``fixed_image`` (a datastore image id or a file path) is a file path.

    Raises:
        ValueError: when the request has no ``fixed_image``, or names an image that is neither a file nor in the
            datastore.
    """
    request = dict(request)
    fixed = request.get(FIXED_IMAGE_KEY)
    if not fixed or not isinstance(fixed, (str, os.PathLike)):
        raise ValueError(
            f"the infer request has no {FIXED_IMAGE_KEY!r}: registration needs the fixed image alongside the moving "
            f"one ('image'); pass its datastore id or file path, e.g. params {{{FIXED_IMAGE_KEY!r}: 'case_002'}}."
        )
    path = _existing(fixed)
    if path is None:
        uri = datastore.get_image_uri(str(fixed)) if datastore is not None else None
        path = _existing(uri)
        if path is None:
            raise ValueError(f"fixed_image {str(fixed)!r} is neither a file nor an image id of the datastore.")
    request[FIXED_IMAGE_KEY] = path
    return request
