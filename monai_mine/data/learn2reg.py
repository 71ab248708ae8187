# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learn2Reg tasks: read a task's ``*_dataset.json`` into monai-mine datalists and name its displacement files.

A Learn2Reg task folder (2021-2024 releases: OASIS, AbdomenCTCT, AbdomenMRCT, LungCT, NLST, ThoraxCBCT, ...)
holds ``imagesTr/TASK_CCCC_MMMM.nii.gz`` (case ``CCCC``, modality or time point ``MMMM``), optional
``labelsTr/``, ``masksTr/`` and ``keypointsTr/`` (CSV, one ``x,y,z`` voxel coordinate per line, in the array
order of the NIfTI as stored) and ``TASK_dataset.json``::

    {
        "name": "NLST", "pairings": "paired",
        "modality": {"0": "CT", "1": "CT"}, "tensorImageShape": {"0": [224, 192, 224]},
        "labels": {...},
        "training": [{"image": "./imagesTr/NLST_0001_0000.nii.gz", "keypoints": "./keypointsTr/...csv",
                      "mask": "./masksTr/..."}, ...],
        "numPairedTraining": 100,
        "training_paired_images": [{"fixed": "./imagesTr/NLST_0001_0000.nii.gz",
                                    "moving": "./imagesTr/NLST_0001_0001.nii.gz"}, ...],
        "registration_val": [{"fixed": ..., "moving": ...}, ...],
        "registration_test": [...]
    }

:func:`learn2reg_datalist` maps it onto the datalist format of :mod:`monai_mine.data.datalist`: ``training``
from ``training_paired_images`` (paired tasks) or from the single images of ``training`` (unpaired tasks, paired at
random every epoch; images used by ``registration_val``/``registration_test`` are left out), ``validation`` from
``registration_val`` and ``test`` from ``registration_test``. Each pair carries ``fixed_label``/``moving_label`` and
``fixed_landmarks``/``moving_landmarks`` (the keypoint CSVs) when both images have them. Files are found as the
Learn2Reg evaluation script finds them: the image's entry in ``training``/``test``, else the image path with
``images`` replaced by ``labels``, ``masks`` or ``keypoints`` (``.csv`` for keypoints; a keypoint entry written with
``.nii.gz`` is read as the ``.csv`` beside it, a known slip of some releases). For a pair of two different
modalities other than ``0000 -> 0001`` the keypoints are those of ``keypoints{ab}`` (``ab`` the two modality
numbers, sorted), as ThoraxCBCT stores them.

:func:`displacement_name` gives the file name the Learn2Reg evaluation expects for a pair, ``disp_FFFF_MMMM``
(fixed case, moving case), or ``disp_FFFF_fm_MMMM_mm`` when the two modalities differ and are not ``0000 -> 0001``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL

__all__ = [
    "Learn2RegTask",
    "displacement_name",
    "learn2reg_datalist",
    "parse_learn2reg_name",
    "read_learn2reg_task",
]

_NAME = re.compile(r"^(?P<task>.+)_(?P<case>\d{4})_(?P<modality>\d{4})\.nii(\.gz)?$")
_SPLITS = {"training": "training_paired_images", "validation": "registration_val", "test": "registration_test"}
_TRAINING_MODES = ("auto", "paired", "unpaired")


def parse_learn2reg_name(path: str | os.PathLike) -> tuple[str, str, str]:
    """``(task, case, modality)`` of a Learn2Reg image file name ``TASK_CCCC_MMMM.nii.gz``.

    Raises:
        ValueError: the name does not follow that pattern.
    """
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(
            f"{path}: expected a Learn2Reg image name TASK_CCCC_MMMM.nii.gz (4-digit case and modality numbers)."
        )
    return match["task"], match["case"], match["modality"]


def displacement_name(fixed: str | os.PathLike, moving: str | os.PathLike) -> str:
    """The displacement file name (without ``.nii.gz``) that the Learn2Reg evaluation reads for a pair.

    ``disp_{fixed case}_{moving case}`` when both images have the same modality number or the pair is
    ``0000 -> 0001`` (fixed 0000, moving 0001); otherwise ``disp_{fixed case}_{fixed modality}_{moving case}_{moving
    modality}``, as the evaluation script of the Learn2Reg repository (``evaluation/L2RTest/evaluation.py``) builds it.

    Args:
        fixed: the fixed image's path or name, ``TASK_CCCC_MMMM.nii.gz``.
        moving: the moving image's path or name.
    """
    _, fixed_case, fixed_modality = parse_learn2reg_name(fixed)
    _, moving_case, moving_modality = parse_learn2reg_name(moving)
    if fixed_modality == moving_modality or (fixed_modality, moving_modality) == ("0000", "0001"):
        return f"disp_{fixed_case}_{moving_case}"
    return f"disp_{fixed_case}_{fixed_modality}_{moving_case}_{moving_modality}"


def _shape(value: Any) -> tuple[int, int, int] | None:
    """The first shape of ``tensorImageShape`` (``{"0": [X, Y, Z]}`` or a plain list), else ``None``."""
    if isinstance(value, Mapping):
        value = next(iter(value.values()), None)
    if isinstance(value, (list, tuple)) and len(value) >= 3 and all(isinstance(v, int) for v in value[:3]):
        return tuple(int(v) for v in value[:3])
    return None


def _labels(value: Any) -> dict[int, str]:
    """Non-zero label numbers and names from ``labels`` (``{"1": "liver"}`` or nested per modality)."""
    found: dict[int, str] = {}
    if not isinstance(value, Mapping):
        return found
    for key, name in value.items():
        if isinstance(name, Mapping):
            found.update(_labels(name))
        elif str(key).isdigit() and int(key) != 0:
            found[int(key)] = str(name)
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Learn2RegTask:
    """A Learn2Reg task as its ``*_dataset.json`` describes it, with absolute paths.

    Attributes:
        path: the dataset JSON file.
        name: the task's ``name``.
        pairings: ``"paired"``, ``"unpaired"`` or ``""`` when the file does not say.
        modalities: modality number (``"0"``, ``"1"``, ...) -> name (``"CT"``, ``"MR"``, ...).
        shape: the image shape ``tensorImageShape`` gives, which is the displacement fields' shape; ``None`` if absent.
        labels: label number -> name for the non-zero labels ``labels`` lists (empty if none).
        entries: absolute image path -> its entry of ``training``/``test`` (other keys' paths made absolute).
        training_images: the absolute image paths of ``training``, in order.
        pairs: ``"training"``, ``"validation"``, ``"test"`` -> list of ``(fixed, moving)`` absolute image paths, from
            ``training_paired_images``, ``registration_val`` and ``registration_test``.
    """

    path: Path
    name: str
    pairings: str
    modalities: dict[str, str]
    shape: tuple[int, int, int] | None
    labels: dict[int, str]
    entries: dict[str, dict[str, str]] = field(repr=False)
    training_images: tuple[str, ...] = field(repr=False)
    pairs: dict[str, list[tuple[str, str]]] = field(repr=False)

    @property
    def multimodal(self) -> bool:
        """Whether the task registers images of different modalities (e.g. MR to CT)."""
        return len({name.upper() for name in self.modalities.values()}) > 1

    def suggested_overlay(self) -> str:
        """The ``configs/`` overlay for this task type: ``learn2reg_multimodal.json``, ``learn2reg_paired_ct.json``
        or ``learn2reg_unpaired_mr.json``."""
        if self.multimodal:
            return "learn2reg_multimodal.json"
        if self.pairs["training"] or self.pairings == "paired":
            return "learn2reg_paired_ct.json"
        return "learn2reg_unpaired_mr.json"

    def image_files(self, image: str) -> dict[str, str]:
        """The existing files of one image: ``image`` and, when present, ``label`` and ``mask``.

        Args:
            image: an absolute image path of this task.

        Raises:
            FileNotFoundError: the image, or a label or mask its entry lists, does not exist.
        """
        entry = self.entries.get(image, {})
        if not Path(image).is_file():
            raise FileNotFoundError(f"Learn2Reg dataset {self.path}: image {image} does not exist.")
        files = {"image": image}
        for key, folder in (("label", "labels"), ("mask", "masks")):
            listed = entry.get(key)
            if listed is not None and not Path(listed).is_file():
                raise FileNotFoundError(
                    f"Learn2Reg dataset {self.path}: the {key} {listed} listed for {image} does not exist."
                )
            derived = _sibling(image, folder)
            path = listed or (derived if derived and Path(derived).is_file() else None)
            if path is not None:
                files[key] = path
        return files

    def keypoints(self, fixed: str, moving: str) -> tuple[str, str] | None:
        """The keypoint CSVs ``(fixed, moving)`` of a pair, or ``None`` unless both exist.

        For two different modalities other than ``0000 -> 0001`` the keypoints are looked up under
        ``keypoints{ab}`` (``ab`` the sorted modality numbers), else under ``keypoints``.
        """
        fixed_modality, moving_modality = (parse_learn2reg_name(path)[2] for path in (fixed, moving))
        key = "keypoints"
        if fixed_modality != moving_modality and (fixed_modality, moving_modality) != ("0000", "0001"):
            key += "".join(str(n) for n in sorted((int(fixed_modality), int(moving_modality))))
        found = [self._keypoint_file(image, key) for image in (fixed, moving)]
        return (found[0], found[1]) if all(found) else None

    def _keypoint_file(self, image: str, key: str) -> str | None:
        listed = self.entries.get(image, {}).get(key)
        derived = _sibling(image, key)
        candidates = [_csv(path) for path in (listed, derived) if path]
        existing = [path for path in candidates if Path(path).is_file()]
        if listed and not existing:
            raise FileNotFoundError(
                f"Learn2Reg dataset {self.path}: the {key} file {listed} listed for {image} does not exist "
                "(nor a .csv beside it)."
            )
        return existing[0] if existing else None


def _csv(path: str) -> str:
    """``path`` with its extension(s) replaced by ``.csv``."""
    return str(Path(path).with_name(Path(path).name.split(".")[0] + ".csv"))


def _sibling(image: str, folder: str) -> str | None:
    """``image`` with its ``images...`` folder renamed to ``folder...`` (``imagesTr`` -> ``labelsTr``)."""
    path = Path(image)
    if not path.parent.name.startswith("images"):
        return None
    return str(path.parent.with_name(folder + path.parent.name[len("images") :]) / path.name)


def read_learn2reg_task(dataset: str | os.PathLike) -> Learn2RegTask:
    """Read a Learn2Reg ``*_dataset.json`` (or the task folder holding exactly one).

    Args:
        dataset: the JSON file, or its folder.

    Returns:
        the task, with every path absolute (relative paths start at the JSON file's folder).

    Raises:
        FileNotFoundError: the file (or a ``*dataset.json`` in the folder) does not exist.
        ValueError: an empty path, several candidate files in the folder, invalid JSON, or pairs that are not
            ``{"fixed": path, "moving": path}``.
    """
    if not str(dataset):
        raise ValueError(
            "no Learn2Reg dataset given (empty path); pass the task's *_dataset.json, "
            "e.g. --learn2reg_dataset /data/NLST/NLST_dataset.json."
        )
    path = Path(dataset).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*dataset.json"))
        if len(found) != 1:
            raise (FileNotFoundError if not found else ValueError)(
                f"Learn2Reg task folder {path} must hold exactly one *dataset.json, found {[p.name for p in found]}."
            )
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"Learn2Reg dataset file {path} does not exist.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"Learn2Reg dataset file {path} is not valid JSON: {error}.") from error
    if not isinstance(data, Mapping):
        raise ValueError(f"Learn2Reg dataset file {path} must hold a JSON object, got a {type(data).__name__}.")
    root = path.parent.resolve()

    def absolute(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"Learn2Reg dataset {path}, {where}: expected a file path, got {value!r}.")
        return os.path.normpath(root / value)

    entries: dict[str, dict[str, str]] = {}
    training_images: list[str] = []
    for split in ("training", "test"):
        items = data.get(split) or []
        if not isinstance(items, list):
            raise ValueError(f"Learn2Reg dataset {path}: {split!r} must be a list, got a {type(items).__name__}.")
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "image" not in item:
                raise ValueError(f"Learn2Reg dataset {path}, {split}[{index}]: expected {{'image': path, ...}}.")
            files = {key: absolute(value, f"{split}[{index}][{key!r}]") for key, value in item.items()}
            entries[files["image"]] = files
            if split == "training":
                training_images.append(files["image"])

    pairs: dict[str, list[tuple[str, str]]] = {}
    for split, key in _SPLITS.items():
        items = data.get(key) or []
        if not isinstance(items, list):
            raise ValueError(f"Learn2Reg dataset {path}: {key!r} must be a list, got a {type(items).__name__}.")
        pairs[split] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or not {"fixed", "moving"} <= set(item):
                raise ValueError(
                    f"Learn2Reg dataset {path}, {key}[{index}]: expected {{'fixed': path, 'moving': path}}, "
                    f"got {item!r}."
                )
            where = f"{key}[{index}]"
            pairs[split].append((absolute(item["fixed"], where), absolute(item["moving"], where)))
    modalities = data.get("modality") if isinstance(data.get("modality"), Mapping) else {}
    return Learn2RegTask(
        path=path.resolve(),
        name=str(data.get("name", path.stem)),
        pairings=str(data.get("pairings", "")),
        modalities={str(key): str(value) for key, value in modalities.items()},
        shape=_shape(data.get("tensorImageShape")),
        labels=_labels(data.get("labels")),
        entries=entries,
        training_images=tuple(training_images),
        pairs=pairs,
    )


def _pair_item(task: Learn2RegTask, fixed: str, moving: str) -> dict[str, str]:
    fixed_files, moving_files = task.image_files(fixed), task.image_files(moving)
    item = {FIXED_IMAGE: fixed, MOVING_IMAGE: moving}
    if "label" in fixed_files and "label" in moving_files:
        item[FIXED_LABEL], item[MOVING_LABEL] = fixed_files["label"], moving_files["label"]
    keypoints = task.keypoints(fixed, moving)
    if keypoints is not None:
        item["fixed_landmarks"], item["moving_landmarks"] = keypoints
    return item


def learn2reg_datalist(
    dataset: str | os.PathLike | Learn2RegTask,
    training: str = "auto",
    exclude_evaluation_images: bool = True,
) -> dict[str, list]:
    """A monai-mine datalist (``training``, ``validation``, ``test``) from a Learn2Reg task, absolute paths.

    Bundles take it directly as ``datalist`` (``configs/learn2reg_*.json`` do), and
    ``monai-mine learn2reg-datalist`` writes it as JSON.

    Args:
        dataset: the task's ``*_dataset.json`` (or its folder, or a task read by :func:`read_learn2reg_task`).
        training: ``"paired"``: the pairs of ``training_paired_images``; ``"unpaired"``: the single images of
            ``training`` (with their labels), paired at random each epoch; ``"auto"``: paired when the task lists
            paired training images, else unpaired.
        exclude_evaluation_images: leave the images of ``registration_val`` and ``registration_test`` out of an
            unpaired training split (Learn2Reg lists them under ``training`` too).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``; ``validation`` and ``test`` only when the task
        lists such pairs, ``test`` only when all of its images exist (Learn2Reg releases test images late).

    Raises:
        ValueError: an unknown ``training`` mode, no training data for it, or a task without ``registration_val``.
        FileNotFoundError: a training or validation image, or a file listed for it, does not exist.
    """
    if training not in _TRAINING_MODES:
        raise ValueError(f"training must be one of {list(_TRAINING_MODES)}, got {training!r}.")
    task = dataset if isinstance(dataset, Learn2RegTask) else read_learn2reg_task(dataset)
    mode = training if training != "auto" else ("paired" if task.pairs["training"] else "unpaired")
    if mode == "paired":
        if not task.pairs["training"]:
            raise ValueError(
                f"Learn2Reg dataset {task.path} lists no training_paired_images; use training='unpaired' "
                "(random pairs of its training images)."
            )
        train = [_pair_item(task, fixed, moving) for fixed, moving in task.pairs["training"]]
    else:
        held_out = {image for split in ("validation", "test") for pair in task.pairs[split] for image in pair}
        train = []
        for image in task.training_images:
            if not (exclude_evaluation_images and image in held_out):
                files = task.image_files(image)
                train.append({key: files[key] for key in ("image", "label") if key in files})
        if len(train) < 2:
            raise ValueError(
                f"Learn2Reg dataset {task.path}: unpaired training needs at least 2 training images "
                f"outside the evaluation pairs, found {len(train)}."
            )
    if not task.pairs["validation"]:
        raise ValueError(f"Learn2Reg dataset {task.path} lists no registration_val pairs to validate on.")
    datalist: dict[str, list] = {
        "training": train,
        "validation": [_pair_item(task, fixed, moving) for fixed, moving in task.pairs["validation"]],
    }
    test = task.pairs["test"]
    if test and all(Path(image).is_file() for pair in test for image in pair):
        datalist["test"] = [_pair_item(task, fixed, moving) for fixed, moving in test]
    return datalist
