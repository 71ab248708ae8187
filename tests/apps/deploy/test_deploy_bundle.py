# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The exported archive, the loader that reads it as MONAI Deploy does, and registering a pair with it (no SDK)."""

from __future__ import annotations

import json
import math
import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch
from exported_bundle import AFFINE, SIZE
from monai.transforms import LoadImage, LoadImaged

from monai_mine.apps.deploy import (
    image_to_metatensor,
    load_registration_bundle,
    metatensor_to_image_parts,
    read_bundle_configs,
)
from monai_mine.flows import warp
from tests.helpers import bundle_parser


def test_archive_holds_what_monai_deploy_reads(tiny_bundle):
    with zipfile.ZipFile(tiny_bundle.ts) as archive:
        names = set(archive.namelist())
        metadata = json.loads(archive.read("model/extra/metadata.json"))
        inference = json.loads(archive.read("model/extra/inference.json"))
    # MONAI Deploy's TorchScriptModel.accept: code/, data.pkl and constants.pkl or constants/ under the top folder
    assert "model/data.pkl" in names and any(name.startswith("model/code/") for name in names)
    assert "model/constants.pkl" in names or any(name.startswith("model/constants/") for name in names)
    assert metadata == json.loads((tiny_bundle.folder / "configs" / "metadata.json").read_text())
    assert metadata["network_data_format"]["inputs"]["image"]["num_channels"] == 2
    assert metadata["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
    assert inference["image_size"] == SIZE and "preprocessing" in inference


def test_configs_read_from_archive_match_the_bundle_folder(tiny_bundle):
    from_archive, from_folder = read_bundle_configs(tiny_bundle.ts), read_bundle_configs(tiny_bundle.folder)
    assert from_archive["_meta_"] == from_folder["_meta_"]
    assert from_archive["preprocessing"] == from_folder["preprocessing"]
    assert from_archive["image_size"] == SIZE


@pytest.mark.parametrize("size", [SIZE, 24])
def test_loaded_archive_matches_the_eager_network(tiny_bundle, size):
    bundle = load_registration_bundle(tiny_bundle.ts, "cpu")
    assert bundle.model_file == tiny_bundle.ts and bundle.name == "VTN-ADDD registration"
    assert not any("LoadImage" in type(t).__name__ for t in bundle.preprocessing.transforms)
    image = torch.rand(1, 2, size, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        expected, got = tiny_bundle.network(image), bundle.network(image)
    assert got.shape == (1, 3, size, size, size)
    assert float((got - expected).abs().max()) < 1e-4


def test_register_gives_float_ddf_and_warped_image_on_the_working_grid(tiny_bundle, nifti_pair, tmp_path):
    bundle = load_registration_bundle(tiny_bundle.ts, "cpu")
    loader = LoadImage(image_only=True)
    result = bundle.register(loader(str(nifti_pair["moving"])), loader(str(nifti_pair["fixed"])))
    assert result.ddf.shape == (3, SIZE, SIZE, SIZE) and result.ddf.dtype == torch.float32
    assert result.warped.shape == (1, SIZE, SIZE, SIZE) and result.warped.dtype == torch.float32

    # the same preprocessing from the files (LoadImaged kept), as the bundle's own inference runs it
    parser = bundle_parser(tiny_bundle.folder)
    data = parser.get_parsed_content("preprocessing")(
        {"moving_image": str(nifti_pair["moving"]), "fixed_image": str(nifti_pair["fixed"])}
    )
    assert any(isinstance(t, LoadImaged) for t in parser.get_parsed_content("preprocessing").transforms)
    pair = torch.cat([data["moving_image"], data["fixed_image"]])[None].as_tensor()
    with torch.no_grad():
        ddf = tiny_bundle.network(pair)
    assert float((result.ddf.as_tensor() - ddf[0]).abs().max()) < 1e-4
    assert torch.allclose(result.warped.as_tensor(), warp(pair[:, :1], ddf)[0], atol=1e-4)
    np.testing.assert_allclose(result.ddf.affine.numpy(), data["fixed_image"].affine.numpy())
    # resized from 20 to 16 voxels: the working grid's voxels are 20/16 times larger than AFFINE's
    np.testing.assert_allclose(np.linalg.norm(result.ddf.affine.numpy()[:3, :3], axis=0), [2.5, 1.875, 1.25])

    written = result.save(tmp_path / "out", prefix="pair_")
    ddf_file, warped_file = nib.load(written["ddf"]), nib.load(written["warped"])
    assert written["ddf"].name == "pair_ddf.nii.gz" and ddf_file.shape == (SIZE, SIZE, SIZE, 3)
    assert ddf_file.get_data_dtype() == np.float32 and warped_file.get_data_dtype() == np.float32
    np.testing.assert_allclose(ddf_file.affine, result.ddf.affine.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.moveaxis(ddf_file.get_fdata(), -1, 0), result.ddf.numpy(), atol=1e-6)


def test_instance_optimization_refines_the_ddf_with_the_configs_optimizer(tiny_bundle, nifti_pair):
    loader = LoadImage(image_only=True)
    moving, fixed = loader(str(nifti_pair["moving"])), loader(str(nifti_pair["fixed"]))
    plain = load_registration_bundle(tiny_bundle.ts, "cpu")
    refined = load_registration_bundle(tiny_bundle.ts, "cpu", instance_optimization=5)
    assert plain.instance_optimizer is None and refined.instance_optimizer.steps == (5, 5)
    pair = torch.cat([t.as_tensor() for t in plain.preprocess(moving, fixed)])[None]
    network_ddf = plain.register(moving, fixed).ddf.as_tensor()[None]
    expected, _ = refined.instance_optimizer(pair[:, :1], pair[:, 1:2], network_ddf)
    result = refined.register(moving, fixed)
    torch.testing.assert_close(result.ddf.as_tensor(), expected[0], atol=1e-5, rtol=0)
    assert float((result.ddf.as_tensor() - network_ddf[0]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="instance_optimization -2: expected a whole number of Adam steps per level"):
        load_registration_bundle(tiny_bundle.ts, "cpu", instance_optimization=-2)
    # the same values as --instance_optimization: a preset is its explicit schedule, a last level at full resolution
    fast = load_registration_bundle(tiny_bundle.ts, "cpu", instance_optimization="fast").instance_optimizer
    explicit = load_registration_bundle(tiny_bundle.ts, "cpu", instance_optimization="25/25/0").instance_optimizer
    assert fast.steps == explicit.steps == (25, 25, 0) and fast.levels == explicit.levels == (32, 64, math.inf)
    assert fast.learning_rate == explicit.learning_rate == (1.0, 1.0, 0.25)
    with pytest.raises(ValueError, match="instance_optimization 'fastest': expected"):
        load_registration_bundle(tiny_bundle.ts, "cpu", instance_optimization="fastest")


def test_bundle_folder_loads_the_export_or_else_the_trained_weights(tiny_bundle, nifti_pair, tmp_path):
    loader = LoadImage(image_only=True)
    moving, fixed = loader(str(nifti_pair["moving"])), loader(str(nifti_pair["fixed"]))
    exported = load_registration_bundle(tiny_bundle.folder, "cpu")
    assert exported.model_file == tiny_bundle.folder / "models" / "model.ts"
    copy = tmp_path / "vtn_addd"
    shutil.copytree(tiny_bundle.folder, copy)
    (copy / "models" / "model.ts").unlink()
    eager = load_registration_bundle(copy, "cpu")
    assert eager.model_file == copy / "models" / "model.pt" and not isinstance(eager.network, torch.jit.ScriptModule)
    difference = exported.register(moving, fixed).ddf - eager.register(moving, fixed).ddf
    assert float(difference.abs().max()) < 1e-4


def test_bad_bundles_raise_errors_naming_the_file(tiny_bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ts does not exist"):
        load_registration_bundle(tmp_path / "missing.ts")
    text = tmp_path / "model.ts"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="model.ts is not a TorchScript archive"):
        load_registration_bundle(text)
    bare = tmp_path / "bare.ts"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(bare))
    with pytest.raises(FileNotFoundError, match=r"bare.ts holds no metadata.json \(expected bare/extra/metadata.json"):
        load_registration_bundle(bare)
    wrong = tmp_path / "segmentation"
    shutil.copytree(tiny_bundle.folder, wrong)
    metadata = json.loads((wrong / "configs" / "metadata.json").read_text())
    metadata["network_data_format"]["inputs"]["image"]["num_channels"] = 1
    (wrong / "configs" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="is not a monai-mine registration bundle: .*input 'image' must have 2"):
        load_registration_bundle(wrong, "cpu")
    (wrong / "models" / "model.ts").unlink()
    metadata["network_data_format"]["inputs"]["image"]["num_channels"] = 2
    (wrong / "configs" / "metadata.json").write_text(json.dumps(metadata))
    torch.save({"weight": torch.zeros(1)}, wrong / "models" / "model.pt")
    with pytest.raises(ValueError, match=r"checkpoint \S*segmentation/models/model.pt does not fit the network of"):
        load_registration_bundle(wrong, "cpu")
    empty = tmp_path / "empty"
    (empty / "configs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty has no configs/metadata.json"):
        load_registration_bundle(empty)


def test_images_convert_from_both_monai_deploy_layouts():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    plain = image_to_metatensor(array, {"affine": AFFINE}, "moving_image")
    assert plain.shape == (2, 3, 4) and plain.meta["original_channel_dim"] == "no_channel"
    np.testing.assert_allclose(plain.affine.numpy(), AFFINE)
    dicom = image_to_metatensor(array, {"row_pixel_spacing": 1.0, "nifti_affine_transform": AFFINE}, "fixed_image")
    assert dicom.shape == (4, 3, 2) and float(dicom[3, 2, 1]) == float(array[1, 2, 3])
    np.testing.assert_allclose(dicom.affine.numpy(), AFFINE)
    np.testing.assert_allclose(image_to_metatensor(array, None, "x").affine.numpy(), np.eye(4))
    with pytest.raises(ValueError, match="fixed_image must be a 3D image array, got shape"):
        image_to_metatensor(array[0], {}, "fixed_image")
    with pytest.raises(ValueError, match="the affine of moving_image must be a 4x4 matrix"):
        image_to_metatensor(array, {"affine": np.eye(3)}, "moving_image")
    data, metadata = metatensor_to_image_parts(plain[None])
    assert data.dtype == np.float32 and data.shape == (1, 2, 3, 4)
    np.testing.assert_allclose(metadata["spacing"], [2.0, 1.5, 1.0])
