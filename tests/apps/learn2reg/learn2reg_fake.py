# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Tiny fake Learn2Reg tasks in the exact layout of the challenge's releases (folders, names, dataset.json keys).

Three task types, as ``configs/learn2reg_*.json`` cover them:

- ``"paired"``: intra-patient CT like NLST: ``_0000`` fixed, ``_0001`` moving, ``keypointsTr`` CSVs, ``masksTr``;
- ``"unpaired"``: inter-subject MR like OASIS: one ``_0000`` image per subject with ``labelsTr``;
- ``"multimodal"``: MR/CT like AbdomenMRCT: ``_0000`` MR (fixed), ``_0001`` CT (moving), labels of both.

Every image of a task shares one grid, stored in LPS orientation (negative x and y voxel axes) with anisotropic
voxels, so that the array axes differ from the bundles' RAS working grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.helpers import smooth_noise, write_nifti

SHAPE = (20, 18, 16)
AFFINE = np.array([[-1.5, 0.0, 0.0, 40.0], [0.0, -1.5, 0.0, 30.0], [0.0, 0.0, 2.0, -10.0], [0.0, 0.0, 0.0, 1.0]])
LABELS = {"1": "organ one", "2": "organ two"}


def _image(rng: np.random.Generator) -> np.ndarray:
    return smooth_noise(SHAPE, rng, sigma=2.0, scale=1000.0, offset=-500.0)


def _label(rng: np.random.Generator) -> np.ndarray:
    label = np.zeros(SHAPE, dtype=np.uint8)
    x, y, z = (int(rng.integers(4, 7)) for _ in range(3))
    label[x : x + 6, y : y + 6, z : z + 5] = 1
    label[x + 8 : x + 12, y : y + 5, z : z + 4] = 2
    return label


def _save(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(path, array, AFFINE)
    return "./" + path.relative_to(path.parents[1]).as_posix()


def _keypoints(path: Path, points: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, points, delimiter=",", fmt="%.3f")
    return "./" + path.relative_to(path.parents[1]).as_posix()


def write_task(root: Path, kind: str, seed: int = 0) -> Path:
    """Write a fake task of type ``kind`` (``"paired"``, ``"unpaired"``, ``"multimodal"``) under ``root``.

    Returns:
        the ``<Task>_dataset.json`` path.
    """
    rng = np.random.default_rng(seed)
    name = {"paired": "FakeNLST", "unpaired": "FakeOASIS", "multimodal": "FakeMRCT"}[kind]
    root.mkdir(parents=True, exist_ok=True)
    training, paired, validation = [], [], []
    if kind == "unpaired":
        for case in range(1, 7):
            stem = f"{name}_{case:04d}_0000"
            training.append(
                {
                    "image": _save(root / "imagesTr" / f"{stem}.nii.gz", _image(rng)),
                    "label": _save(root / "labelsTr" / f"{stem}.nii.gz", _label(rng)),
                }
            )
        validation = [{"fixed": training[4]["image"], "moving": training[5]["image"]}]
        modality = {"0": "MR"}
    else:
        for case in range(1, 5):
            stems = [f"{name}_{case:04d}_{modality:04d}" for modality in (0, 1)]
            points = rng.uniform(3, 12, size=(5, 3))
            for index, stem in enumerate(stems):
                entry = {"image": _save(root / "imagesTr" / f"{stem}.nii.gz", _image(rng))}
                if kind == "paired":
                    entry["keypoints"] = _keypoints(root / "keypointsTr" / f"{stem}.csv", points + index)
                    entry["mask"] = _save(root / "masksTr" / f"{stem}.nii.gz", np.ones(SHAPE, np.uint8))
                else:
                    entry["label"] = _save(root / "labelsTr" / f"{stem}.nii.gz", _label(rng))
                training.append(entry)
            pair = {"fixed": training[-2]["image"], "moving": training[-1]["image"]}
            (paired if case <= 2 else validation).append(pair)
        modality = {"0": "CT", "1": "CT"} if kind == "paired" else {"0": "MR", "1": "CT"}
    dataset = {
        "name": name,
        "release": "0.1",
        "description": "fake task for monai-mine tests",
        "pairings": "unpaired" if kind == "unpaired" else "paired",
        "provided_data": {"0": ["image", "label"]},
        "registration_direction": {"fixed": 0, "moving": 1 if kind != "unpaired" else 0},
        "modality": modality,
        "labels": {"0": LABELS} if kind != "paired" else {},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(SHAPE)},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "numPairedTraining": len(paired),
        "training_paired_images": paired,
        "numRegistration_val": len(validation),
        "registration_val": validation,
        "numRegistration_test": 0,
        "registration_test": [],
    }
    path = root / f"{name}_dataset.json"
    path.write_text(json.dumps(dataset, indent=4))
    return path
