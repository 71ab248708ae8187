# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A model record is data: code smuggled into a record (a ``$`` expression, a ``_target_``) is refused by every
entry point that reads one, before anything runs, with a message naming the file and the key; an edited record is
refused too (issue 27, item 1; docs/registration.md, "Bad input and faults")."""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_mine.apps.cli import main
from monai_mine.apps.deploy import load_registration_bundle
from monai_mine.bundle import (
    ModelRecord,
    load_trained_model,
    read_bundle_config,
    rebind_record,
    record_config,
    save_weights,
)
from monai_mine.bundle.export import export_torchscript
from monai_mine.bundle.exported import RECORD_EXTRA_FILE, load_exported
from monai_mine.bundle.record_schema import record_digest
from monai_mine.io import save_nifti
from tests.helpers import QUICK

NAME = "vtn_addd"


def _expression(marker: Path) -> str:
    return f"$__import__('pathlib').Path({str(marker)!r}).touch() or 8"


def _target(marker: Path) -> dict:
    return {"_target_": "os.makedirs", "name": str(marker)}


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file (or folder) a payload would create; the test fails if it exists afterwards."""
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "code from a model record ran"


@pytest.fixture(scope="module")
def sound(bundle_dirs) -> dict:
    """The bundle's weights at 16^3 and a sound record of them (bound, as training writes it)."""
    bundle = bundle_dirs[NAME]
    files = [bundle / "configs" / "train.json", bundle / "configs" / "inference.json", QUICK]
    parser = read_bundle_config(bundle, files, overrides={"image_size": 16})  # the settings of bundle_dirs' weights
    record = ModelRecord({"name": NAME, "version": "test"}, record_config(parser))
    return {"bundle": bundle, "state": torch.load(bundle / "models" / "model.pt", weights_only=True), "record": record}


def _payload(record: ModelRecord, key: str, value) -> dict:
    """``record`` with ``config[key] = value``, re-hashed as a forger would."""
    data = record.to_dict()
    data["config"][key] = value
    return {**data, "record_sha256": record_digest(data)}


def _checkpoint(sound, folder: Path, record: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint.pt"
    torch.save({"network": sound["state"], "model_record": record}, path)
    return path


def _sidecar(sound, folder: Path, record: dict, null_hash: bool = False) -> Path:
    """A genuine ``model.pt`` with ``record`` beside it (its weights SHA-256 matching, or null), hash redone."""
    path = save_weights(sound["state"], folder / "model.pt", sound["record"])
    sidecar = folder / "model_config.json"
    record = {**record, "weights_sha256": None if null_hash else json.loads(sidecar.read_text())["weights_sha256"]}
    sidecar.write_text(json.dumps({**record, "record_sha256": record_digest(record)}))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(0)
    return tuple(str(save_nifti(rng.random((16, 16, 16), dtype=np.float32), folder / f"{r}.nii.gz")) for r in "fm")


def _cli(monkeypatch, *arguments: str) -> str:
    """Run ``monai-mine`` in-process; returns the one-line error it exits with."""
    monkeypatch.setattr(sys, "argv", ["monai-mine", *arguments])
    with pytest.raises(SystemExit) as raised:
        main()
    return str(raised.value.code)


def test_register_refuses_a_checkpoint_whose_record_holds_an_expression(sound, pair, marker, tmp_path, monkeypatch):
    path = _checkpoint(sound, tmp_path / "w", _payload(sound["record"], "network_channels", _expression(marker)))
    message = _cli(monkeypatch, "register", "--fixed", pair[0], "--moving", pair[1], "--bundle",
                   str(sound["bundle"]), "--out", str(tmp_path / "out"), "--checkpoint", str(path))  # fmt: skip
    assert message.startswith("monai-mine register: error: ") and "\n" not in message
    assert f"{path} ('model_record')" in message and "network_channels" in message and "data only" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "key, payload, null_hash, named",
    [("network_channels", _expression, False, "network_channels is the expression"),
     ("network_channels", _expression, True, "weights_sha256 is null"),
     ("network_def", _target, False, "config#network_def has _target_ 'os.makedirs'")],
    ids=["expression", "expression-null-sha256", "target"],
)  # fmt: skip
def test_register_refuses_a_record_beside_genuine_weights(key, payload, null_hash, named, sound, pair, marker,
                                                          tmp_path, monkeypatch):  # fmt: skip
    path = _sidecar(sound, tmp_path / "w", _payload(sound["record"], key, payload(marker)), null_hash)
    message = _cli(monkeypatch, "register", "--fixed", pair[0], "--moving", pair[1], "--bundle",
                   str(sound["bundle"]), "--out", str(tmp_path / "out"), "--checkpoint", str(path))  # fmt: skip
    assert f"{tmp_path / 'w' / 'model_config.json'}: {named}" in message


@pytest.fixture(scope="module")
def exported(sound, tmp_path_factory) -> Path:
    """A genuine TorchScript export of the 16^3 weights with their record."""
    folder = tmp_path_factory.mktemp("export")
    weights = save_weights(sound["state"], folder / "model.pt", sound["record"])
    return export_torchscript(sound["bundle"], folder / "model.ts", weights)


def _with_record(archive: Path, target: Path, record: dict) -> Path:
    """A copy of an exported archive whose ``model_config.json`` is ``record``."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            is_record = item.filename.endswith(f"/extra/{RECORD_EXTRA_FILE}")
            copy.writestr(item, json.dumps(record) if is_record else source.read(item.filename))
    return target


@pytest.mark.parametrize("key, payload", [("network_channels", _expression), ("intensity", _target)])
def test_an_exported_model_with_a_payload_is_refused(key, payload, sound, exported, pair, marker, tmp_path,
                                                     monkeypatch):  # fmt: skip
    model = _with_record(exported, tmp_path / "model.ts", _payload(sound["record"], key, payload(marker)))
    message = _cli(monkeypatch, "register", "--fixed", pair[0], "--moving", pair[1], "--bundle",
                   str(sound["bundle"]), "--out", str(tmp_path / "out"), "--model", str(model))  # fmt: skip
    assert f"{model} ({RECORD_EXTRA_FILE})" in message and key in message
    with pytest.raises(ValueError, match=rf"{re.escape(f'{model} ({RECORD_EXTRA_FILE})')}: (config#)?{key} "):
        load_registration_bundle(model, device="cpu")


def test_bundle_inference_refuses_downloaded_weights_with_a_payload(sound, run_bundle, marker, tmp_path):
    folder = tmp_path / "downloaded"
    _sidecar(sound, folder, _payload(sound["record"], "network_channels", _expression(marker)))
    with pytest.raises(Exception) as raised:
        run_bundle(NAME, "infer", ckpt_dir=str(folder))
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any(f"{folder / 'model_config.json'}: network_channels" in message for message in chain), chain


def test_export_refuses_a_checkpoint_with_a_payload_and_writes_nothing(sound, marker, tmp_path, monkeypatch):
    path = _checkpoint(sound, tmp_path / "w", _payload(sound["record"], "network_channels", _expression(marker)))
    out = tmp_path / "model.ts"
    message = _cli(monkeypatch, "export", "--bundle", str(sound["bundle"]), "--checkpoint", str(path), "--out",
                   str(out))  # fmt: skip
    assert f"{path} ('model_record')" in message and "network_channels" in message
    assert not out.exists()


@pytest.mark.parametrize("kind", ["program", "onnx"])
def test_pt2_and_onnx_records_are_checked_by_the_same_rule(kind, sound, marker, tmp_path):
    record = json.dumps(_payload(sound["record"], "network_def", _target(marker)))
    if kind == "program":
        path = tmp_path / "model.pt2"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"model/extra/{RECORD_EXTRA_FILE}", record)
    else:
        onnx = pytest.importorskip("onnx")
        x, y = (onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1]) for name in "xy")
        graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        model = onnx.helper.make_model(graph)
        onnx.helper.set_model_props(model, {RECORD_EXTRA_FILE: record})
        path = tmp_path / "model.onnx"
        onnx.save(model, path)
    with pytest.raises(ValueError, match=r"config#network_def has _target_ 'os\.makedirs', which is not an allowed"):
        load_exported(path)


@pytest.mark.parametrize(
    "key, value", [("image_size", 32), ("image_size", 512), ("intensity#upper", 50)], ids=["32", "512", "upper50"]
)
def test_an_edited_record_is_refused(key, value, sound, tmp_path):
    path = save_weights(sound["state"], tmp_path / "model.pt", sound["record"])
    sidecar = tmp_path / "model_config.json"
    data = json.loads(sidecar.read_text())
    if "#" in key:
        data["config"][key.split("#")[0]][key.split("#")[1]] = value
    else:
        data["config"][key] = value
    sidecar.write_text(json.dumps(data, indent=2))
    edited = rf"{re.escape(str(sidecar))}: the model record was changed after it was saved"
    with pytest.raises(ValueError, match=edited):
        load_trained_model(sound["bundle"], path)


def test_edited_weights_are_refused(sound, tmp_path):
    path = save_weights(sound["state"], tmp_path / "model.pt", sound["record"])
    torch.save({key: value + 1 for key, value in sound["state"].items()}, path)
    with pytest.raises(ValueError, match=rf"model_config\.json describes other weights than {re.escape(str(path))}"):
        load_trained_model(sound["bundle"], path)


def test_a_record_saved_before_binding_says_how_to_rebind(sound, tmp_path):
    path = save_weights(sound["state"], tmp_path / "model.pt", sound["record"])
    sidecar = tmp_path / "model_config.json"
    data = json.loads(sidecar.read_text())
    del data["record_sha256"]
    sidecar.write_text(json.dumps(data))
    unbound = rf"{re.escape(str(sidecar))} is a model record without record_sha256 .*rebind_record"
    with pytest.raises(ValueError, match=unbound):
        load_trained_model(sound["bundle"], path)
    shutil.copy(sidecar, tmp_path / "before.json")
    rebind_record(path)
    assert load_trained_model(sound["bundle"], path).image_size == 16
    rebound = json.loads(sidecar.read_text())
    before = json.loads((tmp_path / "before.json").read_text())
    assert {key: value for key, value in rebound.items() if key != "record_sha256"} == before
