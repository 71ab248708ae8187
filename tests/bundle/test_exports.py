# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Exports in three formats (TorchScript, ONNX, torch.export): each reloads to the eager DDF at two sizes, carries
the model record, and registers a pair as the weights do through ``monai-mine register --model`` and the MONAI
Deploy loader; files of other kinds are refused with a message naming them."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from monai.transforms import LoadImage

from monai_mine.apps.cli import main
from monai_mine.apps.deploy import load_registration_bundle
from monai_mine.apps.registration import load_ddf, register_files
from monai_mine.bundle import (
    ExportedNetwork,
    ModelRecord,
    export_bundle,
    export_onnx,
    load_exported,
    load_trained_model,
    read_bundle_config,
    record_config,
    save_weights,
)
from monai_mine.bundle.exported import read_export_files
from tests.helpers import REPOSITORY, copy_bundle, voxel_blob, write_nifti

TOLERANCE = 1e-4  # voxels, every format (measured: TorchScript and .pt2 0, ONNX Runtime below 1e-5)
FORMATS = {"torchscript": ".ts", "onnx": ".onnx", "program": ".pt2"}
BUNDLES = {
    # working size, a second size (both multiples of the total stride, at least twice it), overrides
    "vtn_addd": (32, 48, {"flow_init_std": 0.02}),  # stride 8; a larger flow init: DDFs of ~2 voxels
    "miregnet": (64, 96, {}),  # stride 32; instance norm needs more than one voxel at the deepest level
}
NAMES = ("metadata.json", "inference.json", "model_config.json", "export.json")


def tiny_bundle(folder: Path, name: str) -> Path:
    """``bundles/<name>`` copied to ``folder`` with 4-channel networks at its test working size, and untrained
    weights saved with their model record as ``models/model.pt``."""
    copy_bundle(name, folder)
    size, _, overrides = BUNDLES[name]
    parser = read_bundle_config(folder, overrides={"network_channels": 4, "image_size": size, **overrides})
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    bundle = {"name": parser["bundle_name"], "version": parser["_meta_"]["version"]}
    save_weights(network.state_dict(), folder / "models" / "model.pt", ModelRecord(bundle, record_config(parser)))
    return folder


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {name: tiny_bundle(root / name, name) for name in BUNDLES}


@pytest.fixture(scope="module")
def exported(bundles):
    """``exported(name, format)``: the bundle's default export in that format, written once per module."""
    cache: dict[tuple[str, str], Path] = {}

    def export(name: str, format: str) -> Path:
        if (name, format) not in cache:
            cache[name, format] = export_bundle(bundles[name], format)
        return cache[name, format]

    return export


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    """``moving.nii.gz`` and ``fixed.nii.gz`` (36^3, 1.5 mm, RAS): a blob shifted by 3 voxels."""
    folder, affine = tmp_path_factory.mktemp("pair"), np.diag([1.5, 1.5, 1.5, 1.0])
    paths = {}
    for key, centre in (("moving", (21.0, 17.0, 18.0)), ("fixed", (18.0, 17.0, 18.0))):
        paths[key] = write_nifti(folder / f"{key}.nii.gz", voxel_blob((36, 36, 36), centre, spread=40.0), affine)
    return paths


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((torch.as_tensor(np.asarray(a)).float() - torch.as_tensor(np.asarray(b)).float()).abs().max())


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name", BUNDLES)
def test_an_export_reloads_to_the_eager_ddf_at_two_sizes(name, format, bundles, exported):
    path = exported(name, format)
    assert path == bundles[name] / "models" / f"model{FORMATS[format]}"
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no temporary left
    eager = load_trained_model(bundles[name])
    model = load_exported(path)
    assert isinstance(model.network, ExportedNetwork) and model.format == format
    assert model.record.config == eager.record.config and model.record.name == name
    assert model.metadata["network_data_format"]["inputs"]["image"]["num_channels"] == 2
    torch.manual_seed(1)
    for size in BUNDLES[name][:2]:
        image = torch.rand(1, 2, size, size, size)
        with torch.no_grad():
            expected = eager.network(image)
        assert float(expected.abs().max()) > 0.1  # the warps inside the network move voxels
        got = model.network(image)
        assert got.shape == (1, 3, size, size, size) and got.dtype == torch.float32
        assert max_difference(got, expected) < TOLERANCE, f"{format} at {size}^3"
    batch = torch.rand(2, 2, *(BUNDLES[name][0],) * 3)  # ONNX and .pt2 take one pair per call: run one by one
    with torch.no_grad():
        assert max_difference(model.network(batch), eager.network(batch)) < TOLERANCE


@pytest.mark.parametrize("format", FORMATS)
def test_an_export_carries_the_record_metadata_and_what_it_accepts(format, bundles, exported):
    path = exported("vtn_addd", format)
    files = read_export_files(path)
    assert set(NAMES) <= set(files)
    record = json.loads(files["model_config.json"])
    assert record["config"]["image_size"] == 32 and record["config"]["network_channels"] == 4
    inference = json.loads(files["inference.json"])
    assert inference["image_size"] == 32 and inference["network_channels"] == 4  # the record applied
    assert json.loads(files["metadata.json"])["name"] == "VTN-ADDD registration"
    accepted = json.loads(files["export.json"])
    assert accepted["format"] == format and accepted["total_stride"] == 8 and accepted["min_size"] == 16
    if format != "onnx":  # zip archives rooted at the file's stem, where MONAI Deploy looks first
        assert "model/extra/metadata.json" in zipfile.ZipFile(path).namelist()


def test_the_onnx_model_is_valid_opset_20_with_dynamic_spatial_axes(exported):
    model = onnx.load(str(exported("miregnet", "onnx")))
    onnx.checker.check_model(model)
    assert {entry.domain: entry.version for entry in model.opset_import}[""] == 20
    assert "GridSample" in {node.op_type for node in model.graph.node}
    dims = [[d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim] for value in model.graph.input]
    assert dims[0][:2] == [1, 2] and all(isinstance(d, str) and "32*" in d for d in dims[0][2:])
    assert {entry.key for entry in model.metadata_props} >= set(NAMES)
    with pytest.raises(ValueError, match="opset 18 has no 3D GridSample"):
        export_onnx(REPOSITORY / "bundles" / "vtn_addd", opset=18)


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name", BUNDLES)
def test_register_and_the_deploy_loader_give_the_weights_ddf_with_an_export(
    name, format, bundles, exported, pair, tmp_path
):
    path = exported(name, format)
    args = (pair["fixed"], pair["moving"], bundles[name])
    register_files(*args, tmp_path / "weights")
    register_files(*args, tmp_path / "exported", model=path)
    ddfs = [load_ddf(tmp_path / run / "ddf.nii.gz")[0] for run in ("exported", "weights")]
    assert float(ddfs[1].abs().max()) > 0.1 and max_difference(*ddfs) < TOLERANCE

    weights_only = tmp_path / name
    shutil.copytree(bundles[name], weights_only, ignore=shutil.ignore_patterns("*.ts", "*.onnx", "*.pt2"))
    load = LoadImage(image_only=True)
    moving, fixed = load(str(pair["moving"])), load(str(pair["fixed"]))
    deployed = load_registration_bundle(path, "cpu")
    assert deployed.model_file == path and isinstance(deployed.network, ExportedNetwork)
    reference = load_registration_bundle(weights_only, "cpu").register(moving, fixed).ddf
    assert reference.shape == (3, *(BUNDLES[name][0],) * 3)
    assert max_difference(deployed.register(moving, fixed).ddf, reference) < TOLERANCE


@pytest.mark.parametrize("format", FORMATS)
def test_the_one_loader_takes_an_export_alone_with_the_configs_it_carries(format, bundles, exported):
    """``load_trained_model(<export>)``: the exported network, the record it carries and its configs (as MONAI
    Deploy reads them), the same model as the bundle folder's weights."""
    path = exported("vtn_addd", format)
    eager, trained = load_trained_model(bundles["vtn_addd"]), load_trained_model(path)
    assert isinstance(trained.network, ExportedNetwork) and trained.weights == path
    assert trained.record.config == eager.record.config and trained.image_size == eager.image_size == 32
    assert trained.config["_meta_"]["name"] == "VTN-ADDD registration" and trained.intensity is not None
    image = torch.rand(1, 2, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_difference(trained.network(image), eager.network(image)) < TOLERANCE
    with pytest.raises(ValueError, match=r"image_size = 48 contradicts the configuration the weights were trained"):
        load_trained_model(path, overrides={"image_size": 48})
    with pytest.raises(ValueError, match="pass either weights .* or an exported model"):
        load_trained_model(path, bundles["vtn_addd"] / "models" / "model.pt")
    with pytest.raises(ValueError, match=r"is an exported model already: pass model \(.*\) with a bundle folder"):
        load_trained_model(path, model=path)


def test_the_command_line_exports_and_registers_with_any_format(bundles, exported, pair, tmp_path, monkeypatch, capsys):
    out = tmp_path / "exports" / "vtn.pt2"
    monkeypatch.setattr(sys, "argv", ["monai-mine", "export", "--bundle", str(bundles["vtn_addd"]), "--format",
                                      "program", "--out", str(out)])  # fmt: skip
    main()
    assert f"exported {out}" in capsys.readouterr().out and load_exported(out).format == "program"
    monkeypatch.setattr(sys, "argv", ["monai-mine", "register", "--fixed", str(pair["fixed"]), "--moving",
                                      str(pair["moving"]), "--bundle", str(bundles["vtn_addd"]), "--model",
                                      str(exported("vtn_addd", "onnx")), "--out", str(tmp_path / "out")])  # fmt: skip
    main()
    assert "registered in" in capsys.readouterr().out and (tmp_path / "out" / "ddf.nii.gz").is_file()
    monkeypatch.setattr(sys, "argv", ["monai-mine", "export", "--bundle", str(bundles["vtn_addd"]), "--format",
                                      "keras"])  # fmt: skip
    with pytest.raises(SystemExit, match="unknown export format 'keras': choose torchscript"):
        main()


def test_files_that_are_no_export_of_monai_mine_are_refused(bundles, exported, tmp_path):
    with pytest.raises(ValueError, match=r"model\.bin is not an exported model: expected a file ending in \.ts"):
        load_exported(tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError, match=r"exported model \S*absent\.pt2 does not exist"):
        load_exported(tmp_path / "absent.pt2")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ValueError, match=r"text\.onnx is not an ONNX model"):
        load_exported(tmp_path / "text.onnx")
    (tmp_path / "text.pt2").write_text("not a model")
    with pytest.raises(ValueError, match=r"text\.pt2 is not a torch\.export \(\.pt2\) archive"):
        load_exported(tmp_path / "text.pt2")
    bare = tmp_path / "bare.pt2"
    torch.export.save(torch.export.export(torch.nn.Conv3d(2, 3, 1), (torch.rand(1, 2, 4, 4, 4),)), str(bare))
    message = r"bare\.pt2 carries no model record \(model_config\.json, .*\): expected a file written by `monai-mine export --format program`"  # noqa: E501
    with pytest.raises(ValueError, match=message):
        load_exported(bare)
    with pytest.raises(ValueError, match="pass either weights .* or an exported model"):
        load_trained_model(bundles["vtn_addd"], bundles["vtn_addd"] / "models" / "model.pt", model=bare)
    network = load_exported(exported("vtn_addd", "onnx")).network
    with pytest.raises(
        ValueError, match=r"each spatial size a multiple of 8 and at least 16, got \(1, 2, 32, 32, 36\)"
    ):
        network(torch.rand(1, 2, 32, 32, 36))
