# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Bundle configs that cannot drift: every bundle is self-contained, as the model zoo keeps them, so values repeat
between files; these tests pin every intended difference, and any other one fails.

- variants: ``vtn_addd`` vs ``vtn_addd_inv`` and ``miregnet`` vs ``midiceregnet``, file by file;
- train vs inference of one bundle: the keys both have;
- overlays (``configs/*.json``): the keys they set exist in the bundles they are for, they restate no bundle value,
  and what two overlays share is defined once and referenced (``%configs/<file>#<id>``) or agrees;
- references are by name: no ``@...#<index>``.

Files are read with MONAI's ``ConfigParser``; ids are written ``a#b#0`` as in the bundles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from tests.helpers import BUNDLES, REPOSITORY

CONFIGS = REPOSITORY / "configs"
VTN, MIREGNET = ("vtn_addd", "vtn_addd_inv"), ("miregnet", "midiceregnet")
VARIANT_FILES = ("train.json", "inference.json", "evaluate.json", "multi_gpu_train.json", "metadata.json")

# Every id where a variant differs from its base bundle, per file (files not listed are identical).
VARIANT_DIFFERENCES = {
    ("vtn_addd", "vtn_addd_inv"): {
        "train.json": {"bundle_name", "loss_terms#invertibility"},  # VTN-ADDD+inv: the invertibility term
        "inference.json": {"bundle_name"},
        # ... and each its own shipped weights: their release notes, version and measured performance
        "metadata.json": {"changelog#0.1.0", "changelog#0.1.1", "changelog#0.3.0", "changelog#0.4.0", "version"}
        | {"name", "task", "description"}
        | {f"eval_metrics#brain_benchmark_mono_{name}" for name in ("mean_dice", "displacement_error_voxels")}
        | {"eval_metrics#bundle_evaluate_demo_mono_mean_dice"},
    },
    ("miregnet", "midiceregnet"): {
        "train.json": {"bundle_name", "loss_terms#4"},  # MIDiceRegNet: the Dice term on the warped labels
        "inference.json": {"bundle_name"},
        # labels in training; each its own shipped weights (their release notes, MIDiceRegNet's a version later, and
        # benchmark results)
        "metadata.json": {"changelog#0.1.0", "changelog#0.1.2", "name", "task", "description", "label_classes"}
        | {"changelog#0.1.3", "changelog#0.3.0"}
        | {f"eval_metrics#brain_benchmark_multimodal_{name}" for name in ("mean_dice", "displacement_error_voxels")}
        | {
            "eval_metrics#brain_benchmark_multimodal_folding_percent",
            "eval_metrics#bundle_evaluate_demo_contrast_mean_dice",
        },
    },
}

# Keys that train.json and inference.json of a bundle both have, yet differ on purpose (with their sub-ids).
TRAIN_VS_INFERENCE = {
    "output_dir",  # training's evaluation writes to eval/, inference its NIfTI outputs to eval/inference/
    "network_def#checkpointing",  # activation checkpointing saves memory in training only
    "initialize",  # each workflow prepares its own run (inference has no seed of its own)
    "run",  # each workflow runs its own engine
}

# Which bundles each overlay is for.
OVERLAY_TARGETS = {
    "quick.json": BUNDLES,
    "augment.json": BUNDLES,
    "augment_contrast.json": BUNDLES,
    "synthetic_pairs.json": BUNDLES,
    "synthetic_pairs_contrast.json": BUNDLES,
    "vtn_paper.json": VTN,
    "miregnet_paper.json": MIREGNET,
    "instance_mine.json": MIREGNET,
    "instance_mutual_information.json": BUNDLES,
    "intensity_ct_liver.json": BUNDLES,
    "intensity_ct_lung.json": BUNDLES,
    "intensity_mr.json": BUNDLES,
    "learn2reg_paired_ct.json": BUNDLES,
    "learn2reg_unpaired_mr.json": BUNDLES,
    "learn2reg_multimodal.json": BUNDLES,
}
# Keys of an overlay that only some of its bundles have (the others ignore them).
PARTIAL_KEYS = {
    ("quick.json", "affine_epochs"): MIREGNET,  # MIRegNet's two training phases
    ("quick.json", "deform_epochs"): MIREGNET,
    ("quick.json", "critic_warmup_iterations"): MIREGNET,  # MINE's critic
    ("learn2reg_multimodal.json", "similarity"): VTN,  # VTN trains with MI there; MIRegNet with MINE as always
}
# Keys that the Learn2Reg overlays share but set per task type.
LEARN2REG_DIFFERENCES = {"learn2reg_training", "intensity"}
INTENSITY_OVERLAYS = ("intensity_ct_liver.json", "intensity_ct_lung.json", "intensity_mr.json")


@pytest.fixture(autouse=True)
def repository_cwd(monkeypatch):
    """Overlay macros (``%configs/...``) are relative to the working directory: the repository root."""
    monkeypatch.chdir(REPOSITORY)


def read(path: Path) -> dict:
    return ConfigParser.load_config_file(str(path))


def bundle_config(name: str, *files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPOSITORY / "bundles" / name / "configs" / file) for file in files])
    return parser


def bundle_configs(name: str) -> tuple[ConfigParser, ConfigParser]:
    """What overlays are merged onto: the training (and evaluation) configs, and the inference config."""
    return bundle_config(name, "train.json", "evaluate.json"), bundle_config(name, "inference.json")


def differing_ids(first, second, prefix: str = "") -> set[str]:
    """The ids where two configs differ: a key (or list index) that only one has, or the first differing value."""
    if isinstance(first, list) and isinstance(second, list):
        first, second = dict(enumerate(first)), dict(enumerate(second))
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return set() if first == second else {prefix}
    ids = set()
    for key in first.keys() | second.keys():
        child = f"{prefix}#{key}" if prefix else str(key)
        ids |= differing_ids(first[key], second[key], child) if key in first and key in second else {child}
    return ids


def covered(config_id: str, allowed: set[str]) -> bool:
    return any(config_id == entry or config_id.startswith(f"{entry}#") for entry in allowed)


def plain_reference(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"@[\w#]+", value) is not None


@pytest.mark.parametrize("base, variant", list(VARIANT_DIFFERENCES))
@pytest.mark.parametrize("file", VARIANT_FILES)
def test_variants_differ_only_where_intended(base, variant, file):
    first = read(REPOSITORY / "bundles" / base / "configs" / file)
    second = read(REPOSITORY / "bundles" / variant / "configs" / file)
    assert differing_ids(first, second) == VARIANT_DIFFERENCES[(base, variant)].get(file, set())


@pytest.mark.parametrize("name", BUNDLES)
def test_train_and_inference_agree_on_the_keys_they_share(name):
    train, inference = bundle_config(name, "train.json"), bundle_config(name, "inference.json")
    shared = set(train.get()) & set(inference.get())
    drift = []
    for key in sorted(shared):
        for config_id in sorted(differing_ids(train[key], inference[key], key)):
            if covered(config_id, TRAIN_VS_INFERENCE):
                continue
            a, b = train.get(config_id, "<missing>"), inference.get(config_id, "<missing>")
            if (plain_reference(a) or plain_reference(b)) and (
                train.get_parsed_content(config_id) == inference.get_parsed_content(config_id)
            ):
                continue  # the same value, named in one file (e.g. "@stages") and spelled out in the other
            drift.append(f"{config_id}: train {a!r} vs inference {b!r}")
    assert not drift, f"{name}: train.json and inference.json drifted apart:\n" + "\n".join(drift)


def test_every_overlay_is_classified():
    assert {path.name for path in CONFIGS.glob("*.json")} == set(OVERLAY_TARGETS)


@pytest.mark.parametrize("overlay", list(OVERLAY_TARGETS))
def test_overlay_keys_exist_in_the_bundles_they_are_for(overlay):
    settings = read(CONFIGS / overlay)
    text = json.dumps(settings)
    configs = {name: bundle_configs(name) for name in BUNDLES}
    for key in settings:
        if re.search(rf"@{re.escape(key)}(?![\w#])", text):  # the overlay's own parameter (learn2reg_dataset)
            assert not any(key in parser for pair in configs.values() for parser in pair), key
            continue
        targets = OVERLAY_TARGETS[overlay]
        expected = PARTIAL_KEYS.get((overlay, key), targets)
        found = tuple(name for name in targets if any(key in parser for parser in configs[name]))
        assert found == expected, f"{overlay} sets {key!r}, which bundles {expected} should have; found in {found}"


@pytest.mark.parametrize("overlay", list(OVERLAY_TARGETS))
def test_overlays_restate_no_bundle_value(overlay):
    """A value an overlay sets to what a bundle already has would be stated twice."""
    for key, value in read(CONFIGS / overlay).items():
        for name in OVERLAY_TARGETS[overlay]:
            for parser in bundle_configs(name):
                assert key not in parser or parser[key] != value, f"{overlay}: {key!r} is {name}'s own value"


def test_components_are_defined_once_across_overlays():
    definitions: dict[str, list[str]] = {}
    for overlay in OVERLAY_TARGETS:
        for key, value in read(CONFIGS / overlay).items():
            if isinstance(value, dict):
                definitions.setdefault(json.dumps(value, sort_keys=True), []).append(f"{overlay}#{key}")
    assert all(len(places) == 1 for places in definitions.values()), [p for p in definitions.values() if len(p) > 1]


@pytest.mark.parametrize("overlay", sorted(set(OVERLAY_TARGETS) - set(INTENSITY_OVERLAYS)))
def test_overlays_refer_to_the_intensity_overlays(overlay):
    settings = read(CONFIGS / overlay)
    if "intensity" in settings:
        macro = settings["intensity"]
        assert re.fullmatch(r"%configs/intensity_\w+\.json#intensity", str(macro)), f"{overlay}: {macro!r}"
        assert macro[len("%configs/") : -len("#intensity")] in INTENSITY_OVERLAYS
        assert "intensity" in read(REPOSITORY / macro[1 : -len("#intensity")])


def test_learn2reg_overlays_agree_on_what_they_share():
    overlays = [read(CONFIGS / name) for name in OVERLAY_TARGETS if name.startswith("learn2reg_")]
    shared = set.intersection(*(set(overlay) for overlay in overlays)) - LEARN2REG_DIFFERENCES
    assert {"datalist", "image_size", "evaluation_split", "inference_split"} <= shared
    for key in shared:
        assert all(overlay[key] == overlays[0][key] for overlay in overlays), key


@pytest.mark.parametrize("name", MIREGNET)
@pytest.mark.parametrize("overlay", [None, "quick.json", "miregnet_paper.json"])
def test_phased_bundles_train_as_long_as_their_phases(name, overlay):
    """train.json computes max_epochs from the phases; an overlay that sets both must agree with itself."""
    parser = ConfigParser()
    parser.read_config(
        [str(REPOSITORY / "bundles" / name / "configs" / "train.json")] + ([str(CONFIGS / overlay)] if overlay else [])
    )
    epochs = [phase["epochs"] for phase in parser.get_parsed_content("stage_schedule#phases")]
    assert parser.get_parsed_content("max_epochs") == sum(epochs)


@pytest.mark.parametrize("name", BUNDLES)
def test_multi_gpu_drops_the_logging_handlers_it_slices_off(name):
    """multi_gpu_train.json keeps ``train#handlers[:-2]`` and ``validate#handlers[:1]`` on ranks other than 0 (the
    model zoo's idiom): the last two training handlers must be the loggers and the first validation one the saver."""
    train = bundle_config(name, "train.json")
    multi_gpu = read(REPOSITORY / "bundles" / name / "configs" / "multi_gpu_train.json")
    assert "@train#handlers[: -2 " in multi_gpu["train#trainer#train_handlers"]
    assert "@validate#handlers[: 1 " in multi_gpu["validate#evaluator#val_handlers"]
    assert [h["_target_"] for h in train["train#handlers"][-2:]] == ["StatsHandler", "TensorBoardStatsHandler"]
    assert train["validate#handlers"][0] == "@best_model"


@pytest.mark.parametrize("name", BUNDLES)
def test_training_handlers_are_components(name):
    """MONAI's ``check_properties`` reads ``_target_`` of every ``train#handlers`` entry: a handler defined under its
    own id enters the list as ``{"_target_": "@<id>", "_mode_": "callable"}`` (the object itself), not as "@<id>"."""
    handlers = bundle_config(name, "train.json")["train#handlers"]
    assert all(isinstance(h, dict) and "_target_" in h for h in handlers), [h for h in handlers if isinstance(h, str)]


def test_references_are_by_name():
    positional = re.compile(r"[@%][\w./]*(#\w+)*#\d+")
    found = []
    for path in [*REPOSITORY.glob("bundles/*/configs/*.json"), *CONFIGS.glob("*.json")]:
        text = path.read_text()
        found += [f"{path.relative_to(REPOSITORY)}: {match.group()}" for match in positional.finditer(text)]
        found += [f"{path.relative_to(REPOSITORY)}: key {key}" for key in re.findall(r'"([\w#]*#\d+[\w#]*)"\s*:', text)]
    assert not found, found


@pytest.mark.parametrize("name", BUNDLES)
def test_evaluation_and_inference_refine_with_the_same_instance_optimizer(name):
    evaluate, inference = bundle_config(name, "train.json", "evaluate.json"), bundle_config(name, "inference.json")
    for key in ("instance_optimization_steps", "instance_optimizer"):
        assert evaluate[key] == inference[key], key
    assert evaluate["validate#inferer"] == inference["inferer"]


BUNDLE_OVERLAYS = ("quick.json", "augment.json")
"""Overlays that each bundle carries in its own ``configs/`` (its README's commands use them from a copy of the bundle
alone): the repository's overlay of the same name, less the keys that the bundle does not have."""


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("overlay", BUNDLE_OVERLAYS)
def test_the_bundles_own_overlays_are_the_repositorys(name, overlay):
    settings = read(CONFIGS / overlay)
    train = read(REPOSITORY / "bundles" / name / "configs" / "train.json")
    expected = {key: value for key, value in settings.items() if key in train or "#" in key}
    assert read(REPOSITORY / "bundles" / name / "configs" / overlay) == expected
