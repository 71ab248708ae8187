# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Running a bundle workflow the way MONAI Label and the model zoo's tests do."""

from __future__ import annotations

from pathlib import Path

from monai.bundle import ConfigWorkflow

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")
QUICK = REPOSITORY / "configs" / "quick.json"


def config_files(bundle: Path, *names: str, quick: bool = True) -> list[str]:
    files = [str(bundle / "configs" / name) for name in names]
    return files + [str(QUICK)] if quick else files


def make_workflow(bundle: Path, names: tuple[str, ...], workflow_type: str, quick: bool = True, **override):
    return ConfigWorkflow(
        config_file=config_files(bundle, *names, quick=quick),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(bundle),
        **override,
    )


def run_workflow(bundle: Path, names: tuple[str, ...], workflow_type: str, quick: bool = True, **override):
    """initialize(), check_properties() (must find nothing missing), run(), finalize(); returns the workflow."""
    workflow = make_workflow(bundle, names, workflow_type, quick, **override)
    workflow.initialize()
    missing = workflow.check_properties()
    assert missing == [], f"{bundle.name} {names}: missing bundle properties {missing}"
    workflow.run()
    workflow.finalize()
    return workflow
