# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fixtures of the robustness suite: every bundle's train, evaluate and inference workflows at 16^3, one iteration,
outputs in the test's own folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from robustness_runs import CONFIGS, WORKFLOW_TYPES, tiny_settings

from tests.helpers import BUNDLES, copy_bundle, edit_configs, make_workflow

ENGINES = {"train": "train#trainer", "evaluate": "validate#evaluator", "infer": "evaluator"}


def _save_untrained(folder: Path, name: str) -> Path:
    """Save the network of the bundle's tiny inference workflow, untrained, as ``models/model.pt``."""
    workflow = make_workflow(folder, CONFIGS["infer"], "infer", **tiny_settings(name, "infer"))
    workflow.initialize()
    (folder / "models").mkdir()
    torch.save(workflow.parser.get_parsed_content("network_def").state_dict(), folder / "models" / "model.pt")
    return folder


@pytest.fixture(scope="session")
def bundle_dirs(tmp_path_factory) -> dict[str, Path]:
    """Copies of the four bundles (configs only) with ``models/model.pt``: the untrained network at 16^3 settings."""
    root = tmp_path_factory.mktemp("bundles")
    return {name: _save_untrained(copy_bundle(name, root / name), name) for name in BUNDLES}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A copy of vtn_addd working at 16^3 with 4 channels, and its (untrained) models/model.pt."""
    folder = copy_bundle("vtn_addd", tmp_path_factory.mktemp("bundle") / "vtn_addd")
    edit_configs(folder, ("inference.json",), image_size=16, network_channels=4)
    return _save_untrained(folder, "vtn_addd")


@pytest.fixture
def run_bundle(bundle_dirs, tmp_path):
    """``run_bundle(name, workflow, dataset_dir, attach=None, **overrides)``: build, run and finalize a tiny workflow
    whose checkpoints (training), metrics and images go to ``tmp_path/out``; returns the workflow.

    Evaluation and inference load the session's ``models/model.pt`` unless ``ckpt_dir`` is overridden;
    ``attach(engine)`` is called with the trainer (or the evaluator) before it runs."""

    def run(name: str, workflow: str, dataset_dir: Path | None = None, attach=None, **overrides):
        out = tmp_path / "out"
        settings = {
            **tiny_settings(name, workflow),
            "ckpt_dir": str(out / "models" if workflow == "train" else bundle_dirs[name] / "models"),
            "output_dir": str(out / "eval"),
            "tensorboard_dir": str(out / "runs"),
        }
        if dataset_dir is not None:
            settings["dataset_dir"] = str(dataset_dir)
        settings.update(overrides)
        if workflow == "infer":
            settings.pop("tensorboard_dir")
        runner = make_workflow(bundle_dirs[name], CONFIGS[workflow], WORKFLOW_TYPES[workflow], **settings)
        runner.initialize()
        if attach is not None:
            attach(runner.parser.get_parsed_content(ENGINES[workflow]))
        runner.run()
        runner.finalize()
        return runner

    return run
