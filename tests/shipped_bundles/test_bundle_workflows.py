# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Every bundle: metadata accepted by MONAI, then train -> evaluate -> infer -> export on the demo data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

from monai_mine.data import demo_datalist, load_registration_datalist
from tests.helpers import BUNDLES, REPOSITORY, config_files, run_workflow

SCHEMA = REPOSITORY / "monai_mine" / "schemas" / "meta_schema_20240725.json"


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_validates_against_the_local_schema(name):
    meta = json.loads((REPOSITORY / "bundles" / name / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 2
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
    verify_metadata(meta_file=str(REPOSITORY / "bundles" / name / "configs" / "metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_layout(name):
    bundle = REPOSITORY / "bundles" / name
    for relative in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (bundle / relative).is_file(), f"{name} lacks {relative}"
    for config in ("metadata", "train", "evaluate", "inference", "multi_gpu_train"):
        json.loads((bundle / "configs" / f"{config}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLES)
def test_train_evaluate_infer_export(name, bundle_copy):
    bundle = bundle_copy(name)
    models = bundle / "models"

    trained = run_workflow(bundle, ("train.json",), "train")
    assert (models / "model.pt").is_file() and (models / "checkpoint.pt").is_file()
    checkpoint = torch.load(models / "checkpoint.pt", weights_only=False)
    assert {"network", "objective", "optimizer", "lr_scheduler", "trainer", "best_model"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4  # quick: 2 epochs x 2 iterations
    assert list((bundle / "runs").glob("events.out.tfevents.*")), "no TensorBoard events written"
    weights = torch.load(models / "model.pt", weights_only=True)
    assert set(weights) == set(trained.parser.get_parsed_content("network_def").state_dict())

    run_workflow(bundle, ("train.json", "evaluate.json"), "eval")
    with open(bundle / "eval" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4  # the demo test split
    for column in ("dice_before", "dice", "iou", "hd95", "asd", "folding_percent", "sdlogj", "runtime_s"):
        assert all(np.isfinite(float(row[column])) for row in rows), column
    summary = json.loads((bundle / "eval" / "metrics_summary.json").read_text())
    assert summary["num_pairs"] == 4 and {"mean", "std", "median"} <= set(summary["metrics"]["dice"])
    # the training's held-out report scored the same test pairs with the same weights as the evaluate workflow
    reported = trained.parser.get_parsed_content("train#trainer").state.metrics
    assert reported["test_identity_dice"] == pytest.approx(np.mean([float(r["dice_before"]) for r in rows]), abs=1e-3)
    assert reported["test_dice"] == pytest.approx(np.mean([float(r["dice"]) for r in rows]), abs=1e-3)

    # the same evaluation with instance optimisation on each pair (the config key): better aligned, same pairs
    run_workflow(
        bundle, ("train.json", "evaluate.json"), "eval", instance_optimization_steps=20, output_dir=str(bundle / "io")
    )
    with open(bundle / "io" / "metrics.csv") as stream:
        refined = list(csv.DictReader(stream))
    assert [row["dice_before"] for row in refined] == [row["dice_before"] for row in rows]
    assert np.mean([float(row["dice"]) for row in refined]) > np.mean([float(row["dice"]) for row in rows]) + 0.02

    run_workflow(bundle, ("inference.json",), "infer")
    outputs = sorted((bundle / "eval" / "inference").glob("*.nii.gz"))
    assert len(outputs) == 4 * 3
    flavour = trained.parser.get_parsed_content("demo_flavour")
    first = load_registration_datalist(demo_datalist(flavour, size=64), "test")[0]
    stem = f"{Path(first['moving_image']).name[:-7]}_to_{Path(first['fixed_image']).name[:-7]}"
    fixed_affine = nib.load(first["fixed_image"]).affine
    for output in ("warped", "ddf", "warped_label"):
        written = nib.load(bundle / "eval" / "inference" / f"{stem}_{output}.nii.gz")
        np.testing.assert_allclose(written.affine, fixed_affine, atol=1e-5)
    ddf = nib.load(bundle / "eval" / "inference" / f"{stem}_ddf.nii.gz")
    assert ddf.shape == (64, 64, 64, 3) and ddf.get_data_dtype() == np.float32
    label = nib.load(bundle / "eval" / "inference" / f"{stem}_warped_label.nii.gz")
    assert np.issubdtype(label.get_data_dtype(), np.integer)

    ts_path = models / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(models / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=config_files(bundle, "inference.json"),
        use_trace=True,
        input_shape=[1, 2, 64, 64, 64],
        bundle_root=str(bundle),
    )
    traced = torch.jit.load(str(ts_path))
    eager = trained.parser.get_parsed_content("network_def")
    eager.load_state_dict(weights)
    eager.eval()
    image = torch.rand(1, 2, 64, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (traced(image) - eager(image)).abs().max().item()
    assert difference < 1e-4

    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=config_files(bundle, "inference.json"),
        n=1,
        any=1,
        bundle_root=str(bundle),
    )
