# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Faults around the bundle workflows: a full disk or read-only output folder, a training killed mid-epoch (also a
real SIGKILL), checkpoints from another bundle or version, and the MINE loss under mixed precision.

Every case either stops with an error naming the file and what was expected, or recovers; outputs are written
atomically (no partial file under a final name, no temporary file left after an error) and inputs are never touched.
Writing and loading go through code the bundles share (``atomic_output``, ``ResumableCheckpoint``,
``WeightsLoader``), so most faults run on one VTN and one MIRegNet bundle, or on the bundles in turn; resuming a
killed training, whose state differs per bundle (critic, training phases, reverse pass), runs on all four.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from robustness_runs import CONFIGS, recorder, snapshot, tiny_settings

import monai_mine.engines.checkpoint
import monai_mine.io.atomic
import monai_mine.io.nifti
from monai_mine.losses import MINELoss
from tests.helpers import BUNDLES, QUICK, error_chain, make_workflow, smooth_noise, write_nifti

OTHER_NETWORK = {"vtn_addd": "miregnet", "vtn_addd_inv": "miregnet", "miregnet": "vtn_addd", "midiceregnet": "vtn_addd"}
"""For each bundle, a bundle whose network has other weights (the two VTN bundles share one, as do the MIRegNets)."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two sound pairs with labels; every split lists both."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    items = []
    for index in range(2):
        item = {}
        for role in ("fixed", "moving"):
            image = smooth_noise((18, 16, 14), rng)
            write_nifti(folder / f"{role}{index}.nii.gz", image)
            write_nifti(folder / f"{role}{index}_seg.nii.gz", (image > 50).astype(np.uint8))
            item[f"{role}_image"], item[f"{role}_label"] = f"{role}{index}.nii.gz", f"{role}{index}_seg.nii.gz"
        items.append(item)
    (folder / "datalist.json").write_text(json.dumps({"training": items, "validation": items, "test": items}))
    return folder


@pytest.fixture
def untouched(dataset):
    """Fails the test if any input file changed."""
    before = snapshot(dataset)
    yield
    assert snapshot(dataset) == before, "an input file was modified"


def _chain_matches(raised, pattern: str) -> None:
    chain = error_chain(raised.value)
    assert re.search(pattern, chain), f"expected /{pattern}/ in:\n{chain[-3000:]}"


def _failing_on_call(real, failing_call: int, fault: BaseException, write_half):
    """Wrap a writer so that its ``failing_call``-th call writes half of its bytes and then raises ``fault``."""
    calls = []

    def writer(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) != failing_call:
            return real(obj, path, *args, **kwargs)
        write_half(obj, path)
        raise fault

    return writer, calls


def _half_torch_save(obj, path):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    Path(path).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


DISK_FULL = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("name, fault", [("vtn_addd", "disk_full"), ("midiceregnet", "ctrl_c")])
def test_fault_while_saving_the_checkpoint_keeps_the_last_one_and_resumes(name, fault, dataset, run_bundle, untouched,
                                                                           monkeypatch, tmp_path):  # fmt: skip
    """The second checkpoint write fails half-way: the first checkpoint stays whole and training resumes from it."""
    error = DISK_FULL if fault == "disk_full" else KeyboardInterrupt()
    writer, calls = _failing_on_call(torch.save, 2, error, _half_torch_save)
    monkeypatch.setattr(monai_mine.engines.checkpoint.torch, "save", writer)
    settings = {"checkpoint_interval": 1, "epoch_length": 2}
    with pytest.raises(BaseException) as raised:
        run_bundle(name, "train", dataset, **settings)
    if fault == "disk_full":
        _chain_matches(raised, r"\[Errno 28\] could not write \S*models/checkpoint\.pt: No space left on device")
    else:
        assert isinstance(raised.value, KeyboardInterrupt) or "KeyboardInterrupt" in error_chain(raised.value)
    models = tmp_path / "out" / "models"
    assert sorted(path.name for path in models.iterdir()) == ["checkpoint.pt"]  # no partial or temporary file
    assert torch.load(models / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 1
    monkeypatch.undo()

    iterations_run = []
    resumed = run_bundle(name, "train", dataset, recorder(iterations_run), resume=True, **settings)
    assert iterations_run[0] == 2 and resumed.parser.get_parsed_content("train#trainer").state.iteration >= 2


@pytest.mark.parametrize("name", ["vtn_addd", "midiceregnet"])
def test_disk_full_while_writing_inference_outputs(name, dataset, run_bundle, untouched, monkeypatch, tmp_path):
    """The DDF of the first pair cannot be written: the error names it; no output folder is left, whole or partial."""
    real = monai_mine.io.nifti.write_nifti
    writer, calls = _failing_on_call(
        real, 2, DISK_FULL, lambda image, path: Path(path).write_bytes(b"\x1f\x8b partial")
    )
    monkeypatch.setattr(monai_mine.io.nifti, "write_nifti", writer)
    with pytest.raises(Exception) as raised:
        run_bundle(name, "infer", dataset)
    _chain_matches(
        raised, r"\[Errno 28\] cannot write \S*out/eval/moving0_to_fixed0_ddf\.nii\.gz \(in folder \S+\): No space left"
    )
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == []  # no eval folder, no staging folder


@pytest.mark.parametrize("name", ["vtn_addd_inv", "miregnet"])
def test_disk_full_while_writing_metrics_keeps_the_previous_table(name, dataset, run_bundle, untouched, monkeypatch,
                                                                  tmp_path):  # fmt: skip
    metrics = tmp_path / "out" / "eval" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("pair,dice\nfrom an earlier run,0.5\n")
    real = Path.write_text

    def write_text(path, text, *args, **kwargs):
        if path.name.startswith(".metrics.csv."):
            real(path, text[: len(text) // 2])
            raise DISK_FULL
        return real(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(Exception) as raised:
        run_bundle(name, "evaluate", dataset)
    _chain_matches(raised, r"could not write \S*eval/metrics\.csv: No space left on device")
    assert metrics.read_text() == "pair,dice\nfrom an earlier run,0.5\n"
    assert sorted(path.name for path in metrics.parent.iterdir()) == ["metrics.csv"]


READ_ONLY = [("vtn_addd", "infer"), ("vtn_addd_inv", "train"), ("miregnet", "infer"), ("midiceregnet", "train")]


@pytest.mark.parametrize("name, workflow", READ_ONLY)
def test_read_only_output_folder_is_named(name, workflow, dataset, run_bundle, untouched, monkeypatch, tmp_path):
    """A read-only file system (simulated: the suite may run as root, whom permissions do not stop)."""

    def mkstemp(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(monai_mine.io.atomic.tempfile, "mkstemp", mkstemp)
    with pytest.raises(Exception) as raised:
        run_bundle(name, workflow, dataset)
    target = r"models/checkpoint\.pt" if workflow == "train" else r"eval/moving0_to_fixed0_warped\.nii\.gz"
    _chain_matches(raised, rf"\[Errno 30\] cannot write \S*{target} \(in folder \S+\): Read-only file system")


@pytest.mark.parametrize("workflow", ["train", "evaluate", "infer"])
def test_output_folder_below_a_file_is_named(workflow, dataset, run_bundle, untouched, tmp_path):
    """A real file-system error: the output folder's parent is a file."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    out = {"ckpt_dir": str(blocker / "models")} if workflow == "train" else {"output_dir": str(blocker / "eval")}
    with pytest.raises(Exception) as raised:
        run_bundle("vtn_addd", workflow, dataset, **out)
    expected = (
        r"\[Errno 20\] cannot write the folder \S*not_a_folder/eval: \S*not_a_folder is a file, not a folder"
        if workflow == "infer"  # the inference writer's whole output folder
        else r"\[Errno 20\] cannot write \S*not_a_folder/\S+ \(in folder \S+\): Not a directory"
    )
    _chain_matches(raised, expected)


class _Killed(Exception):
    """Stands for the process being killed inside an iteration."""


@pytest.mark.parametrize("name", BUNDLES)
def test_training_killed_mid_epoch_resumes_where_it_stopped(name, dataset, run_bundle, untouched, tmp_path):
    """Killed in the middle of the last epoch (after its checkpoint): resumed, the run ends the same epoch."""
    last = 2 if name.startswith("vtn") else 4  # VTN: 1 epoch of 2; MIRegNet: an affine and a deform epoch of 2
    settings = {"checkpoint_interval": 1, "epoch_length": 2}

    def kill(engine):
        raise _Killed(f"killed at iteration {engine.state.iteration}")

    with pytest.raises(Exception) as raised:
        attach = lambda trainer: trainer.add_event_handler(Events.ITERATION_COMPLETED(once=last - 1), kill)  # noqa: E731
        run_bundle(name, "train", dataset, attach, **settings)
    assert f"killed at iteration {last - 1}" in error_chain(raised.value)
    checkpoint = tmp_path / "out" / "models" / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["trainer"]["iteration"] == last - 1
    iterations_run = []
    resumed = run_bundle(name, "train", dataset, recorder(iterations_run), resume=True, **settings)
    assert iterations_run == [last]
    network = resumed.parser.get_parsed_content("network")
    final = torch.load(checkpoint, weights_only=False)
    assert final["trainer"]["iteration"] == last
    assert all(torch.equal(value, network.state_dict()[key]) for key, value in final["network"].items())
    if not name.startswith("vtn"):  # the resumed run is in the deformable phase: only the DeformNet trains
        schedule = resumed.parser.get_parsed_content("stage_schedule")
        assert schedule.current_phase == 1


def test_real_sigkill_mid_training_leaves_a_loadable_checkpoint(dataset, bundle_dirs, tmp_path):
    """``python -m monai.bundle run training`` killed with SIGKILL while training; the checkpoint loads and resumes."""
    bundle = bundle_dirs["vtn_addd"]
    models = tmp_path / "models"
    settings = {**tiny_settings("vtn_addd", "train"), "epoch_length": 10000, "checkpoint_interval": 1}
    command = [
        sys.executable, "-m", "monai.bundle", "run", "training",
        "--config_file", json.dumps([str(bundle / "configs" / "train.json"), str(QUICK)]),
        "--meta_file", str(bundle / "configs" / "metadata.json"),
        "--logging_file", str(bundle / "configs" / "logging.conf"),
        "--bundle_root", str(bundle), "--dataset_dir", str(dataset), "--ckpt_dir", str(models),
        "--tensorboard_dir", str(tmp_path / "runs"), "--output_dir", str(tmp_path / "eval"),
    ]  # fmt: skip
    for key, value in settings.items():
        command += [f"--{key}", json.dumps(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, iteration = time.monotonic() + 240, 0
        while iteration < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            if (models / "checkpoint.pt").is_file():
                iteration = torch.load(models / "checkpoint.pt", weights_only=False)["trainer"]["iteration"]
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert iteration >= 3, "the training did not save 3 checkpoints in time"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    saved = torch.load(models / "checkpoint.pt", weights_only=False)  # whole: the atomic rename never tears it
    assert {"network", "objective", "optimizer", "lr_scheduler", "best_model", "trainer"} <= set(saved)
    iteration = saved["trainer"]["iteration"]
    assert iteration >= 3

    resumed = make_workflow(bundle, CONFIGS["train"], "train", **settings, dataset_dir=str(dataset),
                            ckpt_dir=str(models), tensorboard_dir=str(tmp_path / "runs"), resume=True)  # fmt: skip
    resumed.initialize()
    trainer = resumed.parser.get_parsed_content("train#trainer")
    iterations_run = []

    def record(engine):
        iterations_run.append(engine.state.iteration)
        if len(iterations_run) == 2:
            engine.terminate()

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    resumed.run()
    assert iterations_run == [iteration + 1, iteration + 2]
    leftovers = [path.name for path in models.iterdir() if path.name != "checkpoint.pt"]
    assert all(name.startswith(".checkpoint.pt.") for name in leftovers)  # at most a temporary of the killed write


def _weights(bundle_dirs, name: str, **settings) -> dict:
    workflow = make_workflow(
        bundle_dirs[name], CONFIGS["infer"], "infer", **{**tiny_settings(name, "infer"), **settings}
    )
    workflow.initialize()
    return workflow.parser.get_parsed_content("network_def").state_dict()


def _write_model(kind: str, name: str, bundle_dirs, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt"
    if kind == "other_bundle":
        torch.save(_weights(bundle_dirs, OTHER_NETWORK[name]), path)
    elif kind == "other_channels":
        torch.save(_weights(bundle_dirs, name, network_channels=6), path)
    elif kind == "training_checkpoint":
        torch.save(
            {"network": _weights(bundle_dirs, name), "optimizer": {"state": {}}, "trainer": {"iteration": 3}}, path
        )
    elif kind == "truncated":
        data = (bundle_dirs[name] / "models" / "model.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


MODEL_CASES = {
    "other_bundle": r"cannot load \S*model\.pt into \['model'\]: its weights do not fit this bundle's network "
    r"\(\d+ missing",
    "other_channels": r"its weights do not fit this bundle's network \(\d+ of another shape \(e\.g\. '[\w.]+': file "
    r"\(\d+",
    "training_checkpoint": r"it holds the entries \['network', 'optimizer', 'trainer'\] of a training checkpoint, "
    r"not network weights",
    "truncated": r"cannot read checkpoint \S*model\.pt: not a complete PyTorch file \(truncated or corrupt\?\)",
    "missing": r"no network weights at \S*model\.pt: train the bundle first",
}


def _model_params():
    """Weights of another bundle into every bundle; each other kind through both workflows, bundles in turn."""
    params = [pytest.param(name, "other_bundle", "infer", id=f"{name}-other_bundle-infer") for name in BUNDLES]
    kinds = [kind for kind in MODEL_CASES if kind != "other_bundle"]
    for index, (kind, workflow) in enumerate((kind, workflow) for kind in kinds for workflow in ("evaluate", "infer")):
        name = BUNDLES[index % len(BUNDLES)]
        params.append(pytest.param(name, kind, workflow, id=f"{name}-{kind}-{workflow}"))
    return params


@pytest.mark.parametrize("name, kind, workflow", _model_params())
def test_unfit_model_weights_are_named(name, kind, workflow, dataset, bundle_dirs, run_bundle, untouched, tmp_path):
    folder = tmp_path / "weights"
    _write_model(kind, name, bundle_dirs, folder)
    with pytest.raises(Exception) as raised:
        run_bundle(name, workflow, dataset, ckpt_dir=str(folder))
    _chain_matches(raised, MODEL_CASES[kind])
    assert not (tmp_path / "out" / "eval").exists() or not any((tmp_path / "out" / "eval").iterdir())


def _checkpoint_from(name: str, dataset, run_bundle, tmp_path, **settings) -> Path:
    run_bundle(name, "train", dataset, ckpt_dir=str(tmp_path / "source"), **settings)
    return tmp_path / "source" / "checkpoint.pt"


RESUME_CASES = {
    "other_bundle": r"checkpoint \S*checkpoint\.pt lacks \['stage_schedule'\]|cannot load 'network': it does not fit "
    r"this bundle's network",
    "older_version": r"checkpoint \S*checkpoint\.pt lacks \['best_model', 'model_record'\]; it has \['lr_scheduler', "
    r"'network'",
    "other_channels": r"cannot load 'network': it does not fit this bundle's network \(\d+ of another shape",
    "truncated": r"cannot read checkpoint \S*checkpoint\.pt: not a complete PyTorch file \(truncated or corrupt\?\)",
}


@pytest.mark.parametrize(
    "name, kind",
    [
        ("vtn_addd", "other_bundle"),
        ("miregnet", "other_bundle"),
        ("midiceregnet", "older_version"),
        ("vtn_addd_inv", "other_channels"),
        ("vtn_addd", "truncated"),
    ],
)
def test_resume_from_an_unfit_checkpoint_is_named(name, kind, dataset, run_bundle, untouched, tmp_path):
    source = {"other_bundle": OTHER_NETWORK[name]}.get(kind, name)
    checkpoint = _checkpoint_from(source, dataset, run_bundle, tmp_path, **({"network_channels": 6} if kind ==
                                  "other_channels" else {}))  # fmt: skip
    if kind == "older_version":  # what an older release wrote: no best-model state nor model record yet
        state = torch.load(checkpoint, weights_only=True)
        del state["best_model"], state["model_record"]
        torch.save(state, checkpoint)
    elif kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    target = tmp_path / "out" / "models"
    target.mkdir(parents=True)
    shutil.copy(checkpoint, target / "checkpoint.pt")
    kept = (target / "checkpoint.pt").read_bytes()
    with pytest.raises(Exception) as raised:
        run_bundle(name, "train", dataset, resume=True)
    _chain_matches(raised, RESUME_CASES[kind])
    assert (target / "checkpoint.pt").read_bytes() == kept  # a failed resume leaves the checkpoint alone


def test_resume_across_compatible_variants_continues(dataset, run_bundle, untouched, tmp_path):
    """VTN-ADDD and VTN-ADDD+inv share network and state: fine-tuning one from the other resumes (by design)."""
    checkpoint = _checkpoint_from("vtn_addd", dataset, run_bundle, tmp_path)
    target = tmp_path / "out" / "models"
    target.mkdir(parents=True)
    shutil.copy(checkpoint, target / "checkpoint.pt")
    iterations_run = []
    run_bundle("vtn_addd_inv", "train", dataset, recorder(iterations_run), resume=True, max_epochs=2)
    assert iterations_run == [2]


@pytest.mark.parametrize("kind", ["random", "identical", "constant_fixed", "huge_values", "tiny_values"])
def test_mine_loss_is_finite_under_bf16_autocast(kind):
    """Fast critic updates push its scores up; under bfloat16 autocast the bound, loss and gradients stay finite."""
    generator = torch.Generator().manual_seed(0)
    moving = torch.rand(2, 1, 8, 8, 8, generator=generator)
    fixed = {
        "random": torch.rand(2, 1, 8, 8, 8, generator=generator),
        "identical": moving.clone(),
        "constant_fixed": torch.full_like(moving, 0.5),
        "huge_values": moving * 1e4,
        "tiny_values": moving * 1e-6,
    }[kind]
    if kind == "huge_values":
        moving = moving * 1e4
    loss_fn = MINELoss(ema_decay=0.99)
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.05)
    for _ in range(10):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(moving, fixed)
        assert torch.isfinite(loss) and torch.isfinite(loss_fn.last_bound), (kind, float(loss))
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in loss_fn.parameters() if p.grad is not None), kind
        optimizer.step()


def test_mine_bound_learns_under_bf16():
    """Identical images under bfloat16 autocast: the critic learns, its bound climbs well above 0 (float32 reaches
    about 0.5-0.7 nats in these steps too)."""
    moving = torch.rand(2, 1, 12, 12, 12, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    loss_fn = MINELoss(ema_decay=0.99)
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.01)
    for _ in range(35):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(moving, moving.clone())
        loss.backward()
        optimizer.step()
    assert float(loss_fn.last_bound) > 0.3


@pytest.mark.parametrize("name", ["midiceregnet"])
def test_mine_bundles_train_under_amp(name, dataset, run_bundle, untouched):
    """``amp: true`` on the CPU is bfloat16 autocast: every loss term (MINE, Dice, TV) and the MINE bound stay
    finite (MIDiceRegNet has MIRegNet's network and terms, plus the Dice term)."""
    losses = []
    runner = run_bundle(name, "train", dataset, recorder(losses, lambda e: e.state.output["loss"]), amp=True)
    assert len(losses) == 2 and all(torch.isfinite(loss) for loss in losses)  # one affine, one deformable iteration
    mine = runner.parser.get_parsed_content("mine")
    assert torch.isfinite(mine.last_bound)


@pytest.mark.parametrize(
    "name, workflow, settings, pattern",
    [
        (
            "vtn_addd",
            "infer",
            {"image_size": 20},
            r"needs each spatial size divisible by its total stride 8, got spatial shape \(20, 20, 20\)",
        ),
        (
            "miregnet",
            "train",
            {"image_size": 32, "network_def#affine_strides": [2, 2, 2, 1, 2, 1, 2, 1]},
            r"AffineNet with instance normalisation trains on inputs of at least 64 voxels along some axis \(more than "
            r"one voxel at its deepest level, total stride 32\), got spatial shape \(32, 32, 32\)",
        ),
    ],
)
def test_working_size_the_network_cannot_take_is_named(name, workflow, settings, pattern, dataset, run_bundle):
    with pytest.raises(Exception) as raised:
        run_bundle(name, workflow, dataset, **settings)
    _chain_matches(raised, pattern)


def test_resume_trains_to_this_runs_max_epochs(dataset, run_bundle, untouched, tmp_path):
    """A checkpoint of a run of 3 epochs stopped after its first, resumed with max_epochs 2: one more epoch, not
    two; max_epochs below the epochs trained already is refused, naming the checkpoint."""
    run_bundle("vtn_addd", "train", dataset, max_epochs=1)
    checkpoint = tmp_path / "out" / "models" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["trainer"]["max_epochs"] = 3
    torch.save(state, checkpoint)
    iterations_run = []
    resumed = run_bundle("vtn_addd", "train", dataset, recorder(iterations_run), resume=True, max_epochs=2)
    assert iterations_run == [2]
    assert resumed.parser.get_parsed_content("train#trainer").state.max_epochs == 2
    with pytest.raises(Exception) as raised:
        run_bundle("vtn_addd", "train", dataset, resume=True, max_epochs=1)
    _chain_matches(raised, r"cannot resume from \S*checkpoint\.pt with max_epochs 1: it has trained 2 epoch")
