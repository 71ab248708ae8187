# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The configs/learn2reg_*.json overlays on every bundle, and a Learn2Reg task from dataset.json through training,
inference, export and evaluation with the commands of the README."""

from __future__ import annotations

import json
import sys

import nibabel as nib
import pytest
from learn2reg_fake import SHAPE, write_task
from monai.losses import GlobalMutualInformationLoss
from monai.transforms import ScaleIntensityRanged, ScaleIntensityRangePercentilesd

from monai_mine.apps.cli import learn2reg_evaluate, learn2reg_export, main
from monai_mine.data import learn2reg_datalist
from tests.helpers import BUNDLES, REPOSITORY, copy_bundle, make_workflow, run_workflow

OVERLAYS = {
    "paired": REPOSITORY / "configs" / "learn2reg_paired_ct.json",
    "unpaired": REPOSITORY / "configs" / "learn2reg_unpaired_mr.json",
    "multimodal": REPOSITORY / "configs" / "learn2reg_multimodal.json",
}
INTENSITY = {"paired": ScaleIntensityRanged, "unpaired": ScaleIntensityRangePercentilesd}


@pytest.fixture(autouse=True)
def repository_cwd(monkeypatch):
    """The overlays' macros (``%configs/intensity_mr.json#intensity``) are relative to the working directory: run
    from the repository root, as the README's commands do."""
    monkeypatch.chdir(REPOSITORY)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn2reg")
    return {kind: write_task(root / kind, kind) for kind in OVERLAYS}


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("kind", list(OVERLAYS))
def test_overlay_wires_the_task_into_every_bundle(kind, name, tasks, tmp_path):
    bundle = REPOSITORY / "bundles" / name
    overlay = str(OVERLAYS[kind])
    models = str(tmp_path / "models")  # a task's own models: the bundle's shipped weights were trained for another
    for names in (("train.json", overlay), ("train.json", "evaluate.json", overlay), ("inference.json", overlay)):
        workflow = make_workflow(bundle, names, "train", learn2reg_dataset=str(tasks[kind]), ckpt_dir=models)
        workflow.initialize()
        parser = workflow.parser
        assert parser.get_parsed_content("datalist") == learn2reg_datalist(tasks[kind], parser["learn2reg_training"])
        stride = parser.get_parsed_content("network_def").total_stride
        assert parser["image_size"] == 128 and parser["image_size"] % stride == 0
        assert isinstance(parser.get_parsed_content("intensity"), INTENSITY.get(kind, ScaleIntensityRangePercentilesd))
    assert parser["inference_split"] == "validation"
    if kind == "multimodal" and name.startswith("vtn"):  # VTN's correlation coefficient suits one modality only
        train = make_workflow(bundle, ("train.json", overlay), "train", learn2reg_dataset=str(tasks[kind]))
        train.initialize()
        similarity = train.parser.get_parsed_content("similarity")
        assert isinstance(similarity, GlobalMutualInformationLoss)
        assert train.parser.get_parsed_content("validate#similarity") is similarity


def test_overlay_without_a_dataset_names_the_option():
    workflow = make_workflow(REPOSITORY / "bundles" / "vtn_addd", ("train.json", str(OVERLAYS["paired"])), "train")
    workflow.initialize()
    with pytest.raises(Exception) as raised:
        workflow.parser.get_parsed_content("datalist")
    assert "--learn2reg_dataset" in str(raised.value.__cause__ or raised.value)


@pytest.mark.parametrize("kind", list(OVERLAYS))
def test_task_trains_infers_exports_and_scores(kind, tasks, tmp_path):
    bundle = copy_bundle("vtn_addd", tmp_path / "vtn_addd")
    settings = {"learn2reg_dataset": str(tasks[kind]), "image_size": 16, "max_epochs": 1, "epoch_length": 1}
    run_workflow(bundle, ("train.json", str(OVERLAYS[kind])), "train", **settings)
    run_workflow(bundle, ("inference.json", str(OVERLAYS[kind])), "infer", **settings)
    submission = tmp_path / "submission"
    assert learn2reg_export(str(tasks[kind]), str(bundle / "eval" / "inference"), str(submission)).startswith(
        f"{len(learn2reg_datalist(tasks[kind])['validation'])} Learn2Reg displacement file(s)"
    )
    for disp in submission.glob("disp_*.nii.gz"):
        assert nib.load(disp).shape == (*SHAPE, 3)
    summary = learn2reg_evaluate(str(tasks[kind]), str(submission), out=str(tmp_path / "metrics.json"))
    results = json.loads((tmp_path / "metrics.json").read_text())
    expected = {"paired": "TRE", "unpaired": "DSC", "multimodal": "DSC"}[kind]
    assert f"{expected}: mean" in summary and "LogJacDetStd: mean" in summary
    assert results["aggregates"][expected]["count"] == results["num_pairs"] >= 1


def test_datalist_command(tasks, tmp_path, monkeypatch, capsys):
    """``monai-mine learn2reg-datalist TASK --out FILE`` as typed (the console script's fire wiring, in process)."""
    out = tmp_path / "datalist.json"
    monkeypatch.setattr(sys, "argv", ["monai-mine", "learn2reg-datalist", str(tasks["unpaired"]), "--out", str(out)])
    main()
    printed = capsys.readouterr().out
    assert "FakeOASIS (unpaired" in printed and "overlay configs/learn2reg_unpaired_mr.json" in printed
    assert json.loads(out.read_text()) == learn2reg_datalist(tasks["unpaired"])
    monkeypatch.setattr(sys, "argv", ["monai-mine", "--help"])
    with pytest.raises(SystemExit):
        main()
    shown = "".join(capsys.readouterr())
    for command in ("learn2reg-datalist", "learn2reg-export", "learn2reg-evaluate"):
        assert command in shown
