# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Input that would give silent nonsense, runs that would lose results, and requests beyond what the machine or the
command can do, through ``monai-mine register`` as typed (issue 27): each ends in one line naming the input and
what was expected (exit status 1, no traceback), or does the right thing."""

from __future__ import annotations

import gzip
import logging
import os
import re
import signal
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import monai_mine.apps.registration.io
import monai_mine.apps.registration.register
import monai_mine.apps.registration.resources
import monai_mine.optimization.instance
from monai_mine.apps.cli import main
from monai_mine.io.lock import lock_path, output_lock
from monai_mine.optimization import InstanceOptimizer
from tests.helpers import smooth_noise, write_dicom_series, write_nifti

SHAPE = (16, 16, 16)
REGISTER = "monai-mine register: error: "
OUTPUTS = ["ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.nii.gz"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A fixed and a moving image and a label map of the moving one, 16^3."""
    folder = tmp_path_factory.mktemp("pair")
    for name, seed in (("fixed", 1), ("moving", 2)):
        write_nifti(folder / f"{name}.nii.gz", smooth_noise(SHAPE, seed))
    label = np.zeros(SHAPE, np.int16)
    label[4:12, 4:12, 4:12] = 1
    write_nifti(folder / "label.nii.gz", label)
    return folder


def _run(argv: list[str], monkeypatch) -> str:
    """Run ``monai-mine ARGV``; its one-line error (exit status 1), or ``""`` when it succeeds."""
    monkeypatch.setattr(sys, "argv", ["monai-mine", *map(str, argv)])
    try:
        main()
    except SystemExit as raised:
        message = str(raised.code)
        assert raised.code not in (0, None) and "\n" not in message and "Traceback" not in message, message
        return message
    return ""


def _register(pair: Path, bundle: Path, out: Path, *extra, fixed=None, moving=None) -> list:
    return [
        "register",
        "--fixed",
        fixed or pair / "fixed.nii.gz",
        "--moving",
        moving or pair / "moving.nii.gz",
        "--bundle",
        bundle,
        "--out",
        out,
        *extra,
    ]


def _assert_refused(message: str, pattern: str, out: Path) -> None:
    assert re.search(REGISTER + pattern, message), message
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*")), "partial output or lock left behind"


# no silent nonsense


def test_weights_giving_nan_are_named(pair, tiny_bundle, monkeypatch, tmp_path):
    state = torch.load(tiny_bundle / "models" / "model.pt", weights_only=True)
    torch.save({name: torch.full_like(value, float("nan")) for name, value in state.items()}, tmp_path / "nan.pt")
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, "--checkpoint", tmp_path / "nan.pt"), monkeypatch)
    _assert_refused(message, r"the network of bundle 'vtn_addd' \(weights \S*nan\.pt\) gave \d+ NaN or infinite", out)


def test_gzip_checksum_error_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    data = bytearray((pair / "moving.nii.gz").read_bytes())
    data[-8:] = b"\x00\x11\x22\x33\x44\x55\x66\x77"  # the gzip trailer: CRC-32 and length
    (tmp_path / "crc.nii.gz").write_bytes(bytes(data))
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, moving=tmp_path / "crc.nii.gz"), monkeypatch)
    _assert_refused(message, r"cannot read moving image \S*crc\.nii\.gz: its gzip data is damaged", out)


@pytest.mark.parametrize("dtype", [np.uint32, np.float32])
def test_label_numbers_beyond_32_bits_are_refused(dtype, pair, tiny_bundle, monkeypatch, tmp_path):
    label = np.zeros(SHAPE, dtype)
    label[4:12, 4:12, 4:12] = 3e9
    write_nifti(tmp_path / "big_label.nii.gz", label)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, "--moving_label", tmp_path / "big_label.nii.gz"), monkeypatch)
    _assert_refused(
        message, r"moving label \S*big_label\.nii\.gz holds label numbers from 0 to 3000000000; expected", out
    )


def test_label_outside_its_image_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    far = np.eye(4)
    far[:3, 3] = 500.0
    write_nifti(tmp_path / "far_label.nii.gz", np.ones(SHAPE, np.int16), far)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, "--moving_label", tmp_path / "far_label.nii.gz"), monkeypatch)
    _assert_refused(message, r"the moving image \S*moving\.nii\.gz .* and the moving label \S*far_label\.nii\.gz", out)


def _series(folder: Path, series: str = "1.2.826.0.1.3680043.2.1125.1") -> None:
    volume = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97).astype(np.int16)
    write_dicom_series(volume, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), folder, series)


def test_dicom_series_with_a_missing_slice_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    _series(tmp_path / "dicom")
    sorted((tmp_path / "dicom").iterdir())[7].unlink()
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, fixed=tmp_path / "dicom"), monkeypatch)
    uneven = r"fixed image \S*dicom: the slices of DICOM series \S+ are not evenly spaced: 1 mm apart, but 2 mm"
    _assert_refused(message, uneven, out)


def test_folder_of_two_dicom_series_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    _series(tmp_path / "dicom", "1.2.826.0.1.3680043.2.1125.1")
    _series(tmp_path / "dicom", "1.2.826.0.1.3680043.2.1125.7")
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, fixed=tmp_path / "dicom"), monkeypatch)
    _assert_refused(message, r"fixed image \S*dicom holds 2 DICOM series: \S+ \(16 files\), \S+ \(16 files\)", out)


def test_float64_beyond_float32_is_not_called_nan(pair, tiny_bundle, monkeypatch, tmp_path):
    volume = nib.load(pair / "moving.nii.gz").get_fdata()
    volume[3, 4, 5] = 1e300
    write_nifti(tmp_path / "huge.nii.gz", volume)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, moving=tmp_path / "huge.nii.gz"), monkeypatch)
    _assert_refused(message, r"moving image \S*huge\.nii\.gz holds values up to 1e\+300, beyond float32's range", out)


@pytest.mark.parametrize("role", ["--moving", "--moving_label"])
def test_rgb_nifti_is_refused(role, pair, tiny_bundle, monkeypatch, tmp_path):
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    write_nifti(tmp_path / "rgb.nii.gz", rgb)
    out = tmp_path / "out"
    argv = _register(pair, tiny_bundle, out)
    if role == "--moving":
        argv[argv.index("--moving") + 1] = tmp_path / "rgb.nii.gz"
    else:
        argv += ["--moving_label", tmp_path / "rgb.nii.gz"]
    message = _run(argv, monkeypatch)
    what = "moving image" if role == "--moving" else "moving label"
    _assert_refused(message, what + r" \S*rgb\.nii\.gz holds voxels of type .*expected one real value per voxel", out)


def test_symlink_loop_is_named(pair, tiny_bundle, monkeypatch, tmp_path):
    os.symlink(tmp_path / "loop_b.nii.gz", tmp_path / "loop_a.nii.gz")
    os.symlink(tmp_path / "loop_a.nii.gz", tmp_path / "loop_b.nii.gz")
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, moving=tmp_path / "loop_a.nii.gz"), monkeypatch)
    _assert_refused(message, r"moving image \S*loop_a\.nii\.gz is a symbolic link to nothing \(a loop", out)


def test_gzip_bomb_is_refused_before_reading(pair, tiny_bundle, monkeypatch, tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((2000, 2000, 2000))
    header.set_data_dtype(np.float32)
    header.set_sform(np.eye(4), code=1)
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + bytes(1 << 20)))
    monkeypatch.setattr(monai_mine.apps.registration.io, "available_memory", lambda: 2**30)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, moving=tmp_path / "bomb.nii.gz"), monkeypatch)
    _assert_refused(
        message, r"reading moving image \S*bomb\.nii\.gz needs 59\.6 GiB for its 2000x2000x2000 voxels, and", out
    )


def test_out_of_memory_while_reading_is_named(pair, tiny_bundle, monkeypatch, tmp_path):
    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", exhausted)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out), monkeypatch)
    _assert_refused(
        message, r"out of memory reading the voxels of fixed image \S*fixed\.nii\.gz \(16x16x16 voxels\)", out
    )


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (("--checkpoint", "{folder}"), r"checkpoint \S+ is a folder; expected a weights file"),
        (("--checkpoint", "{evil}"), r"cannot read checkpoint \S*evil\.pt: it holds Python objects that would run"),
        (("--device", "tpu"), r"--device 'tpu' is not a device name; expected cpu, cuda"),
    ],
    ids=["checkpoint_folder", "pickle", "device_tpu"],
)
def test_unfit_checkpoint_or_device_is_named(argv, pattern, pair, tiny_bundle, monkeypatch, tmp_path):
    torch.save({"weights": logging.getLogger}, tmp_path / "evil.pt")  # a global the weights-only reader refuses
    out = tmp_path / "out"
    extra = [value.format(folder=tmp_path, evil=tmp_path / "evil.pt") for value in argv]
    message = _run(_register(pair, tiny_bundle, out, *extra), monkeypatch)
    _assert_refused(message, pattern, out)
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_named(pair, tiny_bundle, monkeypatch, tmp_path):
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, "--device", "cuda"), monkeypatch)
    _assert_refused(message, r"--device cuda: this machine \(torch \S+\) has no cuda device; use --device cpu", out)


# bounded and honest


@pytest.mark.parametrize("steps", ["1.5", "1000000", "-3", "fastest", "50/x/20", "50/50/20000"])
def test_instance_optimization_outside_its_bound_is_refused(steps, pair, tiny_bundle, monkeypatch, tmp_path):
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out, "--instance_optimization", steps), monkeypatch)
    _assert_refused(
        message, r"instance_optimization \S+: expected a whole number of Adam steps per level from 0 to 10000", out
    )


def test_instance_optimization_reports_progress(monkeypatch, caplog):
    monkeypatch.setattr(monai_mine.optimization.instance, "PROGRESS_EVERY", 2)
    images = torch.rand(2, 1, 1, 8, 8, 8)
    with caplog.at_level(logging.INFO, logger="monai_mine.optimization.instance"):
        InstanceOptimizer(steps=5, levels=(8,))(images[0], images[1])
    steps = [record.getMessage().split(": ")[1].split(",")[0] for record in caplog.records]
    assert steps == ["step 2 of 5", "step 4 of 5"]


def test_registration_beyond_the_available_memory_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    monkeypatch.setattr(monai_mine.apps.registration.resources, "available_memory", lambda: 100 * 2**20)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out), monkeypatch)
    _assert_refused(
        message,
        r"registering \S*fixed\.nii\.gz \(16x16x16 voxels\) with \S*moving\.nii\.gz needs about 0\.\d GiB of memory, "
        r"and this machine has 0\.1 GiB available: resample the fixed image to coarser voxels .*--device cuda",
        out,
    )


def test_running_out_of_memory_is_named(pair, tiny_bundle, monkeypatch, tmp_path):
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 15000000000 bytes.")

    monkeypatch.setattr(monai_mine.apps.registration.register, "register_volumes", exhausted)
    out = tmp_path / "out"
    message = _run(_register(pair, tiny_bundle, out), monkeypatch)
    _assert_refused(
        message, r"out of memory registering \S*fixed\.nii\.gz \(16x16x16 voxels\) with .*--device cuda", out
    )


# nothing lost


def test_second_run_to_an_output_being_written_is_refused(pair, tiny_bundle, monkeypatch, tmp_path):
    out = tmp_path / "out"
    with output_lock(out):  # the first run, still writing
        message = _run(_register(pair, tiny_bundle, out), monkeypatch)
        expected = rf"\[Errno 16\] the output \S*out is being written by another run \(process {os.getpid()}, lock"
        assert re.search(REGISTER + expected, message), message
        assert not out.exists()
    assert not lock_path(out).exists()
    assert _run(_register(pair, tiny_bundle, out), monkeypatch) == ""  # the lock is released: the next run writes


def test_killed_runs_leave_nothing_the_next_run_keeps(pair, tiny_bundle, monkeypatch, tmp_path):
    """A SIGKILLed run leaves its hidden folders and its lock file (with a dead process id): the next run to that
    output takes the lock over and removes them, with and without --overwrite."""
    out = tmp_path / "out"
    for overwrite in ((), ("--overwrite",)):
        for stale in (f".{out.name}.partial-x1y2", f".{out.name}.earlier-z3"):
            (tmp_path / stale).mkdir()
            (tmp_path / stale / "ddf.nii.gz").write_bytes(b"half a DDF")
        lock_path(out).write_text("999999999\n")
        assert _run(_register(pair, tiny_bundle, out, *overwrite), monkeypatch) == ""
        assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
        assert sorted(path.name for path in out.iterdir()) == OUTPUTS


@pytest.fixture
def sigterm_handler():
    """Restore the SIGTERM handler that ``main`` installs."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def test_sigterm_mid_run_leaves_no_partial_output(pair, tiny_bundle, monkeypatch, tmp_path, sigterm_handler):
    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(monai_mine.apps.registration.register, "register_volumes", terminated)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["monai-mine", *map(str, _register(pair, tiny_bundle, out))])
    with pytest.raises(SystemExit, match="monai-mine: stopped by signal SIGTERM"):
        main()
    assert list(tmp_path.iterdir()) == [], "partial output or lock left behind"
