# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Every bundle passes what the MONAI model zoo's ``ci/verify_bundle.py`` checks, on a copy in ``models/<name>/``.

The checks, written with MONAI's own functions: the necessary and preferred files (the shipped ``models/model.pt``
among them), version and changelog, the metadata against the schema it names (the local copy), the properties of
the inference workflow for MONAI and for each app in ``supported_apps``, the network's input and output against the
metadata (``verify_net_in_out``), and the TorchScript export (``ckpt_export``) reloaded and compared with the eager
network. The networks export by tracing only, as the metadata's description says; scripting is checked to fail, so
that the description is revisited when it works. The zoo runs the properties check on the bundle's default data
(here the demo dataset, generated on first use); these tests point ``dataset_dir`` at a small NIfTI dataset.

Every bundle ships trained weights (``benchmarks/results/shipped_weights.json`` lists the command of each), so the
zoo's min mode finds ``models/model.pt`` and the exports are checked with the shipped weights.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out
from monai.bundle.properties import MetaProperties, TrainProperties
from monai.utils import BundleProperty, BundlePropertyConfig
from zoo_bundle import ZOO_EXCLUDED, write_fake_dataset, zoo_copy

import monai_mine
from tests.helpers import BUNDLES, REPOSITORY, bundle_parser

SCHEMA = REPOSITORY / "monai_mine" / "schemas" / "meta_schema_20240725.json"
NET_ID = "network_def"
RELEASE = "monai-mine"
"""The package the configs import: the zoo's CI pip-installs ``name==version`` for each entry of
``required_packages_version``, so it is listed there at this source tree's version (RELEASING.md publishes it)."""


def _property(config_id: str, description: str, required: bool = True, ref_id: str | None = None) -> dict:
    prop = {BundleProperty.DESC: description, BundleProperty.REQUIRED: required, BundlePropertyConfig.ID: config_id}
    if ref_id is not None:
        prop[BundlePropertyConfig.REF_ID] = ref_id
    return prop


MONAI_LABEL_INFER = {
    "bundle_root": _property("bundle_root", "the bundle folder in the app, set by BundleInferTask"),
    "device": _property("device", "where the network runs; BundleInferTask overrides it per request"),
    "network_def": _property(NET_ID, "the network that models/model.pt loads into (the record rebuilds it)"),
    "preprocessing": _property("preprocessing", "what the registration pre-transforms wrap (monai_mine.apps.label)"),
    "inferer": _property("inferer", "the inferer (MONAI Label falls back to SimpleInferer)", required=False),
    "postprocessing": _property("postprocessing", "extra post-transforms before warping", required=False),
    "image_input": _property("_meta_#network_data_format#inputs#image", "the input MONAI Label feeds: image"),
    "pred_output": _property("_meta_#network_data_format#outputs#pred", "the output the app warps with: pred"),
    "description": _property("_meta_#description", "the model's description in the app"),
    "version": _property("_meta_#version", "the model's version in the app"),
}
"""What MONAI Label 0.8.5's ``BundleInferTask`` and monai-mine's ``RegistrationInferTask`` on it (the sample app
``sample-apps/monai_mine_registration``) read from ``configs/inference.json`` and ``configs/metadata.json``."""

MONAI_LABEL_TRAIN = {
    "bundle_root": _property("bundle_root", "the bundle folder in the app, set by BundleTrainTask"),
    "device": _property("device", "the training device the request names"),
    "network": _property("network", "what MONAI Label's CheckpointLoader loads pretrained weights into"),
    "max_epochs": _property("train#trainer#max_epochs", "the request's max_epochs"),
    "label_train_handlers": _property("train#handlers", "the trainer's handlers, where the CheckpointLoader goes"),
    "train_handlers": TrainProperties["train_handlers"],  # ... and the trainer must use that list
    "datalist": _property("datalist", "the datastore pairs RegistrationTrainTask passes"),
    "val_interval": _property("val_interval", "lowered by RegistrationTrainTask so that model.pt is written"),
    "description": _property("_meta_#description", "the trainer's description in the app"),
    "version": _property("_meta_#version", "the trainer's version in the app"),
}
"""What MONAI Label 0.8.5's ``BundleTrainTask`` and monai-mine's ``RegistrationTrainTask`` on it read from
``configs/train.json`` (the multi-GPU overlay ``configs/multi_gpu_train.json`` must exist too)."""

APP_PROPERTIES = {"monai-label": {"infer": MONAI_LABEL_INFER, "train": MONAI_LABEL_TRAIN}}
"""The properties of each app a bundle may name in ``supported_apps``."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "metadata.json").read_text())


def _weights(bundle: Path) -> Path:
    """The copy's ``models/model.pt``, the shipped weights."""
    weights = bundle / "models" / "model.pt"
    assert weights.is_file(), (
        f"bundles/{bundle.name}/models/model.pt is missing: the zoo's min mode refuses the bundle. Train it with "
        "benchmarks/train_weights.py and commit the weights with their model record (models/model_config.json)."
    )
    return weights


def _workflow(bundle: Path, config: str, workflow_type: str, dataset_dir: Path) -> ConfigWorkflow:
    workflow = ConfigWorkflow(
        config_file=str(bundle / "configs" / config),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=str(bundle / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(bundle),
        dataset_dir=str(dataset_dir),
    )
    workflow.initialize()
    return workflow


def _export(bundle: Path, filepath: Path, **kwargs) -> None:
    ckpt_export(
        net_id=NET_ID,
        filepath=str(filepath),
        ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
        **kwargs,
    )


def _network(bundle: Path) -> torch.nn.Module:
    """The network of the bundle's ``inference.json``, freshly initialised."""
    return bundle_parser(bundle).get_parsed_content(NET_ID)


def _eager_network(bundle: Path) -> torch.nn.Module:
    network = _network(bundle)
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
    return network.eval()


@pytest.fixture(params=BUNDLES)
def zoo_bundle(request, tmp_path, monkeypatch) -> Path:
    """``bundles/<name>`` copied to ``tmp_path/models/<name>`` as a zoo submission; the demo data cache in tmp."""
    monkeypatch.setenv("MONAI_MINE_DATA", str(tmp_path / "demo_cache"))
    return zoo_copy(tmp_path / "models", request.param)


@pytest.fixture(scope="module")
def fake_dataset(tmp_path_factory) -> Path:
    return write_fake_dataset(tmp_path_factory.mktemp("zoo_data"))


def test_copy_holds_the_necessary_and_preferred_files(zoo_bundle):
    for relative in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md"):
        assert (zoo_bundle / relative).is_file(), f"{zoo_bundle.name} lacks {relative}"
    _weights(zoo_bundle)
    copied = {path.name for path in zoo_bundle.rglob("*")}
    assert not copied & set(ZOO_EXCLUDED)


def test_version_is_the_newest_in_the_changelog(zoo_bundle):
    meta = _meta(zoo_bundle)
    assert meta["version"] in meta["changelog"]
    assert _version(meta["version"]) == max(_version(version) for version in meta["changelog"])


def test_metadata_validates_against_the_schema_it_names(zoo_bundle):
    meta = _meta(zoo_bundle)
    assert meta["schema"].rsplit("/", 1)[-1] == SCHEMA.name  # the local copy is the schema the zoo downloads
    verify_metadata(meta_file=str(zoo_bundle / "configs" / "metadata.json"), filepath=str(SCHEMA))


def test_metadata_is_what_the_zoo_installs_and_serves(zoo_bundle):
    meta = _meta(zoo_bundle)
    packages = meta["required_packages_version"]
    assert packages[RELEASE] == monai_mine.__version__, "the bundle must name the release it runs with"
    assert all(_version(version) for version in packages.values())  # plain pinned versions: name==version
    requirements = configparser.ConfigParser()
    requirements.read(REPOSITORY / "setup.cfg")
    names = {re.split(r"[<>=!~ ]", line)[0] for line in requirements["options"]["install_requires"].split()}
    assert names - {"monai", "torch", "numpy"} <= set(packages), "required_packages_version misses a dependency"
    assert set(meta["supported_apps"]) <= set(APP_PROPERTIES) and meta["supported_apps"]
    assert "label_classes" in meta and "CSF" in meta["label_classes"]
    docs = (zoo_bundle / "docs" / "README.md").read_text()
    metrics = meta["eval_metrics"]
    # every number named by where it comes from: the repository's brain benchmark, or the bundle's own evaluate
    # workflow on the demo data (what a copy of the bundle reproduces); each stated in the docs
    assert {name.split("_")[0] for name in metrics} == {"brain", "bundle"}, sorted(metrics)
    for name, value in metrics.items():
        if name.endswith("mean_dice"):
            assert 0 < value <= 1 and f"{value:.3f}" in docs, name


def test_inference_workflow_has_the_properties_of_monai_and_the_supported_apps(zoo_bundle, fake_dataset):
    workflow = _workflow(zoo_bundle, "inference.json", "inference", fake_dataset)
    assert workflow.check_properties() == []
    for app in _meta(zoo_bundle)["supported_apps"]:
        workflow.properties = {**MetaProperties, **APP_PROPERTIES[app]["infer"]}
        assert workflow.check_properties() == [], f"{app} inference"


def test_training_workflow_has_the_properties_of_the_supported_apps(zoo_bundle, fake_dataset):
    assert (zoo_bundle / "configs" / "multi_gpu_train.json").is_file()
    workflow = _workflow(zoo_bundle, "train.json", "train", fake_dataset)
    for app in _meta(zoo_bundle)["supported_apps"]:
        workflow.properties = {**MetaProperties, **APP_PROPERTIES[app]["train"]}
        assert workflow.check_properties() == [], f"{app} training"


def test_network_input_and_output_match_the_metadata(zoo_bundle):
    verify_net_in_out(
        net_id=NET_ID,
        meta_file=str(zoo_bundle / "configs" / "metadata.json"),
        config_file=str(zoo_bundle / "configs" / "inference.json"),
        bundle_root=str(zoo_bundle),
    )


def test_traced_torchscript_export_reloads_and_matches_the_eager_network_at_another_size(zoo_bundle):
    _weights(zoo_bundle)
    exported = zoo_bundle / "models" / "verify_model.ts"
    # `--use_trace True` alone traces at the metadata's input shape, (1, 2, 64, 64, 64): a smaller one here, and
    # without torch.jit.trace's own re-run check, for time (the comparison below, at another size, is stricter)
    _export(
        zoo_bundle,
        exported,
        use_trace=True,
        input_shape=[1, 2, 64, 32, 32],
        converter_kwargs={"check_trace": False},
    )
    traced = torch.jit.load(str(exported))
    if (zoo_bundle / "models" / "model.ts").is_file():
        torch.jit.load(str(zoo_bundle / "models" / "model.ts"))
    eager = _eager_network(zoo_bundle)
    shape = (32, 64, 32)  # not the traced size: sizes are not frozen into the trace
    image = torch.rand(1, 2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = eager(image), traced(image)
    assert actual.shape == (1, 3, *shape)
    assert (actual - expected).abs().max().item() < 1e-4


def test_scripted_export_fails_as_the_metadata_says(zoo_bundle):
    _weights(zoo_bundle)
    assert "--use_trace True" in _meta(zoo_bundle)["description"]
    # torch.jit.script: "Unknown type constructor Sequence" and more (RuntimeError) on Python 3.11+; on 3.10 it fails
    # earlier, with "Can't get source for collections.abc.Sequence[int]" (OSError)
    with pytest.raises((RuntimeError, OSError)):
        _export(zoo_bundle, zoo_bundle / "models" / "scripted.ts")


ZOO_UNIT_TEST_UTILS = {
    "check_workflow",
    "export_overrided_config",
    "produce_mgpu_cmd",
    "produce_custom_workflow_mgpu_cmd",
    "export_config_and_run_mgpu_cmd",
}
"""What the zoo's ``ci/unit_tests/utils.py`` defines: a ``test_<bundle>.py`` copied there imports nothing else from
``utils`` (the shim ``tests/zoo_unit_tests/utils.py`` offers only ``check_workflow``)."""


@pytest.mark.parametrize("name", BUNDLES)
def test_zoo_unit_tests_import_only_what_the_zoos_utils_offers(name):
    tree = ast.parse((REPOSITORY / "tests" / "zoo_unit_tests" / f"test_{name}.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "utils"
        for alias in node.names
    }
    assert imported and imported <= ZOO_UNIT_TEST_UTILS, imported - ZOO_UNIT_TEST_UTILS
