# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A tiny VTN-ADDD bundle folder, NIfTI images with labels, and a folder datastore with MONAI Label's datastore
interface, for the MONAI Label adapter tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from monai.transforms import LoadImaged

from monai_mine.apps.label import registration_post_transforms, registration_pre_transforms
from monai_mine.bundle.record import ModelRecord, record_config
from monai_mine.bundle.weights import record_path, save_weights
from tests.helpers import (
    QUICK,
    REPOSITORY,
    bundle_parser,
    copy_bundle,
    edit_configs,
    save_untrained_weights,
    voxel_blob,
    voxel_distance2,
    write_nifti,
)

SIZE = 16
"""Working grid edge of the tiny bundle (a multiple of the depth-3 VTN's stride 8)."""

AFFINE = np.array([[1.5, 0, 0, -12.0], [0, 1.0, 0, 4.0], [0, 0, 2.0, 0.0], [0, 0, 0, 1]])
"""Voxel-to-world matrix of the test images (RAS, anisotropic voxels)."""

SAMPLE_APP = REPOSITORY / "sample-apps" / "monai_mine_registration"
APP_FILES = ("main.py",)
"""What the sample app is made of: everything else in its folder (``model/<name>``, ``logs/``, ``lib/``, ``bin/``) is
state a ``monailabel start_server`` there leaves behind."""


def app_copy(target: Path, source: Path = SAMPLE_APP) -> Path:
    """A fresh copy of the sample app in ``target``: its :data:`APP_FILES` only, never the state a server run left in
    ``source``, so that tests do not depend on what ran in the checkout before."""
    target.mkdir(parents=True)
    for name in APP_FILES:
        shutil.copy2(source / name, target / name)
    return target


def tiny_bundle(folder: Path) -> SimpleNamespace:
    """Copy ``bundles/vtn_addd`` to ``folder`` with 4-channel networks at 16^3 (inference and training) and untrained
    weights in ``models/model.pt``. Returns ``folder`` and ``network`` (the eager network with those weights)."""
    copy_bundle("vtn_addd", folder)
    channels = json.loads(QUICK.read_text())["network_channels"]
    edit_configs(folder, ("inference.json", "train.json"), network_channels=channels, image_size=SIZE)
    return SimpleNamespace(folder=folder, network=save_untrained_weights(folder))


def save_bundle_weights(folder: Path, channels: int, record: bool) -> torch.nn.Module:
    """Weights of the bundle's network built with ``network_channels=channels`` into ``models/model.pt``, with their
    model record (``models/model_config.json``) when ``record``, else without one (a stale record is removed).
    Returns the network."""
    parser = bundle_parser(folder, network_channels=channels)
    torch.manual_seed(1)
    network = parser.get_parsed_content("network_def").eval()
    path = folder / "models" / "model.pt"
    record_path(path).unlink(missing_ok=True)
    described = ModelRecord(bundle={"name": "vtn_addd", "version": "test"}, config=record_config(parser))
    save_weights(network.state_dict(), path, described if record else None)
    return network


def write_case(folder: Path, name: str, centre: tuple[float, float, float], label: bool = True) -> dict[str, Path]:
    """``<name>.nii.gz`` (a Gaussian blob, 20^3, AFFINE) and, when ``label``, ``labels/final/<name>.nii.gz``
    (the blob's core as label 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"image": write_nifti(folder / f"{name}.nii.gz", voxel_blob((20, 20, 20), centre), AFFINE)}
    if label:
        paths["label"] = folder / "labels" / "final" / f"{name}.nii.gz"
        paths["label"].parent.mkdir(parents=True, exist_ok=True)
        write_nifti(paths["label"], (voxel_distance2((20, 20, 20), centre) < 16).astype(np.int16), AFFINE)
    return paths


class FolderDatastore:
    """A datastore over a folder laid out as MONAI Label's local datastore (``<id>.nii.gz``,
    ``labels/final/<id>.nii.gz``), implementing the part of ``monailabel.interfaces.datastore.Datastore`` that
    :mod:`monai_mine.apps.label.datastore` uses. ``info`` maps image ids to their image info."""

    def __init__(self, folder: Path, info: dict[str, dict] | None = None) -> None:
        self.folder = folder
        self.info = info or {}

    def list_images(self) -> list[str]:
        return [path.name[: -len(".nii.gz")] for path in self.folder.glob("*.nii.gz")]

    def get_image_uri(self, image_id: str) -> str:
        path = self.folder / f"{image_id}.nii.gz"
        return str(path) if path.is_file() else ""

    def get_image_info(self, image_id: str) -> dict:
        return dict(self.info.get(image_id, {}))

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        tags = [path.parent.name for path in (self.folder / "labels").glob(f"*/{image_id}.nii.gz")]
        return {tag: image_id for tag in tags}

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        path = self.folder / "labels" / label_tag / f"{label_id}.nii.gz"
        return str(path) if path.is_file() else ""


def bundle_preprocessing(folder: Path) -> list:
    """The bundle's preprocessing as BundleInferTask builds it: bundle_root set, LoadImaged keeping meta data."""
    transforms = list(bundle_parser(folder).get_parsed_content("preprocessing").transforms)
    for transform in transforms:
        if isinstance(transform, LoadImaged):
            transform._loader.image_only = False
    return transforms


def infer(bundle: SimpleNamespace, request: dict) -> dict:
    """Pre-transforms, the network on data['image'][None] -> data['pred'], post-transforms (BasicInferTask's order)."""
    data = dict(request)
    for transform in registration_pre_transforms(bundle_preprocessing(bundle.folder)):
        data = transform(data)
    with torch.no_grad():
        data["pred"] = bundle.network(data["image"][None].as_tensor())[0]
    for transform in registration_post_transforms():
        data = transform(data)
    return data
