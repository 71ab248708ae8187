# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration datalists: a JSON file of splits, each a list of image pairs or of single images.

The format (``docs/design.md`` section 6)::

    {
        "training": [
            {"fixed_image": "f0.nii.gz", "moving_image": "m0.nii.gz", "fixed_label": "f0_seg.nii.gz", ...},
            ...
        ],
        "validation": [...],
        "test": [...]
    }

A paired item holds ``fixed_image`` and ``moving_image`` and optionally ``fixed_label``, ``moving_label``,
``fixed_landmarks``, ``moving_landmarks`` and ``displacement`` (see :data:`PAIRED_KEYS`). An unpaired split
lists single images instead, each a path string or ``{"image": path, "label": path}``; such a split is paired at
random every epoch by :class:`monai_mine.data.pairing.UnpairedRegistrationDataset`.

Paths are relative to a base folder (by default the datalist file's folder) or absolute; the loaders return
absolute path strings and check that every referenced file exists. Keys other than splits (such as the demo
dataset's ``"spec"``) are ignored. Every error names the datalist file, the split and the item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_mine.keys import IMAGE_KEYS, LABEL_KEYS

__all__ = [
    "PAIRED_KEYS",
    "UNPAIRED_KEYS",
    "is_unpaired",
    "load_registration_datalist",
    "load_unpaired_images",
]

PAIRED_KEYS = (
    *IMAGE_KEYS,
    *LABEL_KEYS,
    "fixed_landmarks",
    "moving_landmarks",
    "displacement",
)
UNPAIRED_KEYS = ("image", "label")

DatalistLike = str | os.PathLike | Mapping[str, Any]


def _read(datalist: DatalistLike, base_dir: str | os.PathLike | None) -> tuple[Mapping[str, Any], Path | None, str]:
    """The parsed datalist, the folder that relative paths start from and a name for messages."""
    if isinstance(datalist, Mapping):
        base = Path(base_dir) if base_dir is not None else None
        return datalist, base, "the datalist dict"
    path = Path(datalist)
    if not path.is_file():
        raise FileNotFoundError(f"Datalist file {path} does not exist.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Datalist file {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from error
    except UnicodeDecodeError as error:
        raise ValueError(f"Datalist file {path} is not valid JSON: not UTF-8 text (a binary file?).") from error
    if not isinstance(data, Mapping):
        raise ValueError(
            f"Datalist file {path} must hold a JSON object of splits such as "
            f'{{"training": [...], "validation": [...]}}, got a {type(data).__name__}.'
        )
    base = Path(base_dir) if base_dir is not None else path.parent
    return data, base, f"datalist {path}"


def _split_items(data: Mapping[str, Any], split: str, source: str) -> list:
    if split not in data:
        splits = sorted(key for key, value in data.items() if isinstance(value, list))
        raise ValueError(f"Split {split!r} not found in {source}; splits present: {splits}.")
    items = data[split]
    if not isinstance(items, list):
        raise ValueError(f"Split {split!r} of {source} must be a list of items, got a {type(items).__name__}.")
    if not items:
        raise ValueError(f"Split {split!r} of {source} is empty.")
    return items


def _item_is_unpaired(item: Any) -> bool:
    if isinstance(item, (str, os.PathLike)):
        return True
    return isinstance(item, Mapping) and "image" in item and not any(key in item for key in IMAGE_KEYS)


def _check_uniform(items: list, split: str, source: str) -> bool:
    """Whether the split is unpaired; raises if it mixes single images and pairs."""
    unpaired = _item_is_unpaired(items[0])
    for index, item in enumerate(items):
        if _item_is_unpaired(item) != unpaired:
            kinds = ("a pair", "a single image") if unpaired else ("a single image", "a pair")
            raise ValueError(
                f"Split {split!r} of {source} mixes single images and pairs: item 0 is {kinds[1]} "
                f"but item {index} is {kinds[0]} ({item!r})."
            )
    return unpaired


def _resolve(value: Any, key: str, index: int, split: str, base: Path | None, source: str) -> str:
    where = f"{source}, split {split!r}, item {index}, key {key!r}"
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{where}: expected a file path, got {value!r}.")
    path = Path(value).expanduser()
    if not path.is_absolute():
        if base is None:
            raise ValueError(f"{where}: relative path {str(value)!r} needs base_dir when the datalist is a dict.")
        path = base / path
    path = Path(os.path.abspath(path))
    if not path.exists():
        raise FileNotFoundError(f"{where}: file {path} does not exist.")
    return str(path)


def is_unpaired(datalist: DatalistLike, split: str = "training") -> bool:
    """Whether a split lists single images (paired at random each epoch) rather than fixed/moving pairs.

    Args:
        datalist: path of the datalist JSON, or the already-loaded dict.
        split: the split to inspect, e.g. ``"training"``.

    Returns:
        ``True`` when every item is a path string or an ``{"image": ..., "label": ...}`` dict.

    Raises:
        FileNotFoundError: the datalist file does not exist.
        ValueError: invalid JSON, a missing or empty split, or a split mixing single images and pairs.
    """
    data, _, source = _read(datalist, None)
    return _check_uniform(_split_items(data, split, source), split, source)


def load_registration_datalist(
    datalist: DatalistLike,
    split: str = "training",
    base_dir: str | os.PathLike | None = None,
    require_labels: bool = False,
) -> list[dict[str, str]]:
    """The fixed/moving pairs of one split, with absolute paths, checked against the files on disk.

    Args:
        datalist: path of the datalist JSON, or the already-loaded dict (then relative paths need ``base_dir``).
        split: the split to load, e.g. ``"training"``, ``"validation"`` or ``"test"``.
        base_dir: folder that relative paths start from; default: the datalist file's folder.
        require_labels: raise unless every item has ``fixed_label`` and ``moving_label``.

    Returns:
        one dict per pair, keyed by the names in :data:`PAIRED_KEYS` that the item has, values absolute paths.

    Raises:
        FileNotFoundError: the datalist file, or a file an item refers to, does not exist.
        ValueError: invalid JSON, a missing or empty split, an unpaired split (use :func:`load_unpaired_images`),
            an item that is not a dict, lacks ``fixed_image``/``moving_image``, has an unknown key, or lacks labels
            while ``require_labels`` is set.
    """
    data, base, source = _read(datalist, base_dir)
    items = _split_items(data, split, source)
    if _check_uniform(items, split, source):
        raise ValueError(
            f"Split {split!r} of {source} lists single images (unpaired), not fixed/moving pairs; load it with "
            "load_unpaired_images() and pair it with UnpairedRegistrationDataset."
        )
    pairs = []
    for index, item in enumerate(items):
        where = f"{source}, split {split!r}, item {index}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a dict with keys {list(IMAGE_KEYS)}, got {item!r}.")
        unknown = [key for key in item if key not in PAIRED_KEYS]
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {list(PAIRED_KEYS)}.")
        missing = [key for key in IMAGE_KEYS if key not in item]
        if missing:
            raise ValueError(f"{where}: missing {missing}; the item has keys {list(item)}.")
        if require_labels:
            missing = [key for key in LABEL_KEYS if key not in item]
            if missing:
                raise ValueError(f"{where}: missing {missing}, required because require_labels=True.")
        pairs.append({key: _resolve(value, key, index, split, base, source) for key, value in item.items()})
    return pairs


def load_unpaired_images(
    datalist: DatalistLike,
    split: str = "training",
    base_dir: str | os.PathLike | None = None,
) -> list[dict[str, str]]:
    """The single images of an unpaired split, with absolute paths, checked against the files on disk.

    Args:
        datalist: path of the datalist JSON, or the already-loaded dict (then relative paths need ``base_dir``).
        split: the split to load, e.g. ``"training"``.
        base_dir: folder that relative paths start from; default: the datalist file's folder.

    Returns:
        one ``{"image": path}`` or ``{"image": path, "label": path}`` dict per image, paths absolute.

    Raises:
        FileNotFoundError: the datalist file, or a file an item refers to, does not exist.
        ValueError: invalid JSON, a missing or empty split, a paired split (use
            :func:`load_registration_datalist`), or an item with an unknown key.
    """
    data, base, source = _read(datalist, base_dir)
    items = _split_items(data, split, source)
    if not _check_uniform(items, split, source):
        raise ValueError(
            f"Split {split!r} of {source} lists fixed/moving pairs, not single images; "
            "load it with load_registration_datalist()."
        )
    images = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            item = {"image": item}
        unknown = [key for key in item if key not in UNPAIRED_KEYS]
        if unknown:
            raise ValueError(
                f"{source}, split {split!r}, item {index}: unknown key(s) {unknown}; "
                f"allowed keys are {list(UNPAIRED_KEYS)}."
            )
        images.append({key: _resolve(value, key, index, split, base, source) for key, value in item.items()})
    return images
