# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A table of bad inputs and faults through the command line (``monai-mine register``, ``warp``, ``jacobian`` and
``learn2reg-*``) as typed: each ends in a one-line error naming the file (exit status 1, no traceback) or succeeds.
Inputs are never touched and a failed command leaves no partial output."""

from __future__ import annotations

import errno
import re
import shutil
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest
from robustness_runs import snapshot

import monai_mine.apps.registration.io
import monai_mine.io.atomic
from monai_mine.apps.cli import main
from tests.helpers import smooth_noise, write_nifti

SHAPE = (16, 16, 16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good and bad input files, side by side."""
    folder = tmp_path_factory.mktemp("inputs")
    write_nifti(folder / "fixed.nii.gz", smooth_noise(SHAPE, 1))
    write_nifti(folder / "moving.nii.gz", smooth_noise(SHAPE, 2))
    itk.imwrite(itk.imread(str(folder / "moving.nii.gz")), str(folder / "moving.nrrd"))
    label = np.zeros(SHAPE, np.int16)
    label[4:12, 4:12, 4:12] = 1
    write_nifti(folder / "label.nii.gz", label)
    write_nifti(folder / "empty_label.nii.gz", np.zeros(SHAPE, np.uint8))
    write_nifti(folder / "label_2mm.nii.gz", label[::2, ::2, ::2], np.diag([2.0, 2.0, 2.0, 1.0]))
    write_nifti(folder / "nan_label.nii.gz", np.where(label > 0, np.nan, 0).astype(np.float32))
    (folder / "corrupt.nii.gz").write_bytes(b"not an image" * 40)
    write_nifti(folder / "whole.nii.gz", smooth_noise((32, 32, 32), 3))
    data = (folder / "whole.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    write_nifti(folder / "slice_2d.nii.gz", smooth_noise((16, 16), 4))
    write_nifti(folder / "series_4d.nii.gz", np.stack([smooth_noise(SHAPE, 5), smooth_noise(SHAPE, 6)], axis=-1))
    write_nifti(folder / "complex.nii.gz", (smooth_noise(SHAPE, 7) + 1j * smooth_noise(SHAPE, 8)).astype(np.complex64))
    nan = smooth_noise(SHAPE, 9)
    nan[2, 3, 4] = np.nan
    write_nifti(folder / "nan.nii.gz", nan)
    write_nifti(folder / "constant.nii.gz", np.full(SHAPE, 3.0, np.float32))
    write_nifti(folder / "int8.nii.gz", (smooth_noise(SHAPE, 10) - 50).astype(np.int8))
    write_nifti(folder / "odd_fixed.nii.gz", smooth_noise((17, 19, 23), 11))
    write_nifti(folder / "aniso_moving.nii.gz", smooth_noise((40, 40, 3), 12), np.diag([0.5, 0.5, 10.0, 1.0]))
    ddf = np.zeros((*SHAPE, 3), np.float32)
    ddf[..., 0] = 1.0
    write_nifti(folder / "ddf.nii.gz", ddf)
    write_nifti(folder / "ddf_two_components.nii.gz", ddf[..., :2])
    write_nifti(folder / "ddf_nan.nii.gz", np.where(ddf > 0, np.nan, 0).astype(np.float32))
    (folder / "not_a_folder").write_text("a file")
    unplaced = nib.Nifti1Image(smooth_noise(SHAPE, 13), np.eye(4))
    unplaced.set_sform(None, code=0)
    unplaced.set_qform(None, code=0)
    nib.save(unplaced, str(folder / "no_orientation.nii.gz"))
    far = np.eye(4)
    far[:3, 3] = 1000.0
    write_nifti(folder / "far_away.nii.gz", smooth_noise(SHAPE, 14), far)
    write_nifti(folder / "bad_scaling.nii", (smooth_noise(SHAPE, 15)).astype(np.int16))
    with open(folder / "bad_scaling.nii", "r+b") as stream:  # scl_slope 1, scl_inter NaN (header bytes 112-119)
        stream.seek(112)
        stream.write(struct.pack("<ff", 1.0, float("nan")))
    return folder


@dataclass(frozen=True)
class Command:
    """``argv(inputs, bundle, out)`` builds the command line; ``error`` is the expected message (regex) or ``None``
    when the command succeeds; ``fault(monkeypatch)`` injects a fault first."""

    name: str
    argv: Callable[[Path, Path, Path], list[str]]
    error: str | None = None
    fault: Callable | None = None


def _register(fixed="fixed.nii.gz", moving="moving.nii.gz", *extra):
    """``monai-mine register`` on files of the input folder (extra ``*.nii.gz`` arguments too)."""

    def argv(i: Path, b: Path, o: Path) -> list[str]:
        files = ["--fixed", str(i / fixed), "--moving", str(i / moving)]
        return [
            "register",
            *files,
            "--bundle",
            str(b),
            "--out",
            str(o),
            *[str(i / e) if ".nii" in e else e for e in extra],
        ]

    return argv


def _disk_full(monkeypatch):
    def save(image, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(monai_mine.io.nifti, "write_nifti", save)


def _read_only(monkeypatch):
    def mkstemp(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(monai_mine.io.atomic.tempfile, "mkstemp", mkstemp)


def _tool(command: str, *names: str, flags: tuple[str, ...] = ()) -> Callable[[Path, Path, Path], list[str]]:
    """``monai-mine COMMAND input... output`` with the inputs taken from the input folder and the output in ``out``."""
    return lambda i, b, o: [command, *(str(i / name) for name in names[:-1]), str(o / names[-1]), *flags]


def _l2r(command: str, name: str) -> Callable[[Path, Path, Path], list[str]]:
    return lambda i, b, o: [command, str(i / name)]


def _with_checkpoint(i: Path, b: Path, o: Path) -> list[str]:
    return _register()(i, b, o) + ["--checkpoint", str(b.parent / "miregnet_model.pt")]


REGISTER = r"monai-mine register: error: "
WARP = r"monai-mine warp: error: "
COMMANDS = [
    Command("register_ok", _register("fixed.nii.gz", "moving.nii.gz", "--moving_label", "label.nii.gz")),
    Command("register_nrrd_moving", _register("fixed.nii.gz", "moving.nrrd")),
    Command("register_int8_moving", _register("fixed.nii.gz", "int8.nii.gz")),
    Command("register_odd_fixed_anisotropic_moving", _register("odd_fixed.nii.gz", "aniso_moving.nii.gz")),
    Command("register_empty_label", _register("fixed.nii.gz", "moving.nii.gz", "--moving_label", "empty_label.nii.gz")),
    Command(
        "register_label_on_a_2mm_grid", _register("fixed.nii.gz", "moving.nii.gz", "--moving_label", "label_2mm.nii.gz")
    ),
    Command(
        "register_corrupt",
        _register("corrupt.nii.gz"),
        REGISTER + r"cannot read fixed image \S*corrupt\.nii\.gz as a NIfTI",
    ),
    Command(
        "register_truncated",
        _register("fixed.nii.gz", "truncated.nii.gz"),
        REGISTER + r"cannot read the voxels of moving image \S*truncated\.nii\.gz \(truncated or corrupt file\?\)",
    ),
    Command(
        "register_2d",
        _register("slice_2d.nii.gz"),
        REGISTER + r"fixed image \S*slice_2d\.nii\.gz has shape \(16, 16\); expected a 3D volume",
    ),
    Command(
        "register_4d",
        _register("fixed.nii.gz", "series_4d.nii.gz"),
        REGISTER + r"moving image \S*series_4d\.nii\.gz has shape \(16, 16, 16, 2\); expected a 3D volume",
    ),
    Command(
        "register_complex",
        _register("fixed.nii.gz", "complex.nii.gz"),
        REGISTER + r"moving image \S*complex\.nii\.gz holds complex voxels; expected real values",
    ),
    Command("register_nan", _register("nan.nii.gz"), REGISTER + r"fixed image \S*nan\.nii\.gz has 1 NaN or infinite"),
    Command(
        "register_constant",
        _register("fixed.nii.gz", "constant.nii.gz"),
        REGISTER + r"moving image \S*constant\.nii\.gz is constant",
    ),
    Command(
        "register_missing",
        _register("fixed.nii.gz", "absent.nii.gz"),
        REGISTER + r"moving image \S*absent\.nii\.gz does not exist",
    ),
    Command(
        "register_no_orientation",
        _register("no_orientation.nii.gz"),
        REGISTER + r"fixed image \S*no_orientation\.nii\.gz has qform_code and sform_code 0: .* --assume_affine",
    ),
    Command("register_no_orientation_assumed", _register("no_orientation.nii.gz", "moving.nii.gz", "--assume_affine")),
    Command(
        "register_boxes_far_apart",
        _register("fixed.nii.gz", "far_away.nii.gz"),
        REGISTER + r"the fixed image \S*fixed\.nii\.gz \(world box \[0\.0\.\.15\.0, .*\) and the moving image "
        r"\S*far_away\.nii\.gz \(world box \[1000\.0\.\.1015\.0, .*\) overlap by 0\.0 %",
    ),
    Command(
        "register_bad_scaling",
        _register("fixed.nii.gz", "bad_scaling.nii"),
        REGISTER + r"cannot read moving image \S*bad_scaling\.nii as a NIfTI image: Valid slope but invalid intercept",
    ),
    Command(
        "register_nan_label",
        _register("fixed.nii.gz", "moving.nii.gz", "--moving_label", "nan_label.nii.gz"),
        REGISTER + r"moving label \S*nan_label\.nii\.gz has \d+ NaN",
    ),
    Command(
        "register_checkpoint_of_another_bundle",
        _with_checkpoint,
        REGISTER + r"checkpoint \S*miregnet_model\.pt does not fit the network of bundle 'vtn_addd'",
    ),
    Command(
        "register_out_below_a_file",
        lambda i, b, o: _register()(i, b, i / "not_a_folder" / "out"),
        REGISTER + r"\[Errno 20\] cannot write the folder \S*not_a_folder/out: \S*not_a_folder is a file, not a folder",
    ),
    Command(
        "register_disk_full",
        _register(),
        REGISTER + r"\[Errno 28\] could not write \S+\.nii\.gz: No space left on device",
        _disk_full,
    ),
    Command(
        "register_read_only_out",
        _register(),
        REGISTER + r"\[Errno 30\] cannot write \S+ \(in folder \S+\): Read-only file system",
        _read_only,
    ),
    Command("warp_ok", _tool("warp", "label.nii.gz", "ddf.nii.gz", "w.nii.gz", flags=("--label",))),
    Command(
        "warp_corrupt_image",
        _tool("warp", "corrupt.nii.gz", "ddf.nii.gz", "w.nii.gz"),
        WARP + r"cannot read image \S*corrupt\.nii\.gz as a NIfTI image",
    ),
    Command(
        "warp_ddf_with_two_components",
        _tool("warp", "moving.nii.gz", "ddf_two_components.nii.gz", "w.nii.gz"),
        WARP + r"DDF \S*ddf_two_components\.nii\.gz has shape \(16, 16, 16, 2\); expected a displacement field",
    ),
    Command(
        "warp_ddf_with_nan",
        _tool("warp", "moving.nii.gz", "ddf_nan.nii.gz", "w.nii.gz"),
        WARP + r"DDF \S*ddf_nan\.nii\.gz has \d+ NaN",
    ),
    Command("jacobian_ok", _tool("jacobian", "ddf.nii.gz", "j.nii.gz")),
    Command(
        "jacobian_missing_ddf",
        _tool("jacobian", "absent_ddf.nii.gz", "j.nii.gz"),
        r"monai-mine jacobian: error: DDF \S*absent_ddf\.nii\.gz does not exist",
    ),
    Command(
        "learn2reg_datalist_missing",
        _l2r("learn2reg-datalist", "Task_dataset.json"),
        r"monai-mine learn2reg-datalist: error: Learn2Reg dataset file \S*Task_dataset\.json does not exist",
    ),
    Command(
        "learn2reg_datalist_binary_file",
        _l2r("learn2reg-datalist", "fixed.nii.gz"),
        r"monai-mine learn2reg-datalist: error: Learn2Reg dataset file \S*fixed\.nii\.gz is not valid JSON",
    ),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[command.name for command in COMMANDS])
def test_command(command, inputs, tiny_bundle, monkeypatch, capsys, tmp_path, request):
    if command.name == "register_checkpoint_of_another_bundle":  # the untrained 16^3 MIRegNet of the conftest
        bundle_dirs = request.getfixturevalue("bundle_dirs")
        shutil.copyfile(bundle_dirs["miregnet"] / "models" / "model.pt", tiny_bundle.parent / "miregnet_model.pt")
    out = tmp_path / "out"
    before = snapshot(inputs)
    if command.fault is not None:
        command.fault(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["monai-mine", *command.argv(inputs, tiny_bundle, out)])
    if command.error is None:
        main()
        printed = capsys.readouterr().out
        assert printed.strip(), "the command printed no summary"
        assert all(path.stat().st_size > 0 for path in out.rglob("*") if path.is_file())
    else:
        with pytest.raises(SystemExit) as raised:
            main()
        message = str(raised.value.code)
        assert message.count("\n") == 0 and re.search(command.error, message), message
        assert not out.exists() or not [path for path in out.rglob("*") if path.is_file()]  # no partial output
    assert snapshot(inputs) == before, "an input file was modified"


def test_register_replaces_earlier_results_only_with_overwrite(inputs, tiny_bundle, monkeypatch, capsys, tmp_path):
    """A folder of an earlier run (with a temporary file a killed run left) is refused, then replaced as a whole."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "ddf.nii.gz").write_bytes(b"an earlier run's DDF")
    (out / ".ddf.nii.gz.x1y2.nii.gz").write_bytes(b"left by a killed run")
    argv = ["monai-mine", *_register("fixed.nii.gz", "moving.nii.gz")(inputs, tiny_bundle, out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as raised:
        main()
    assert re.search(r"output folder \S*out holds 2 file\(s\) of an earlier run .*--overwrite", str(raised.value.code))
    monkeypatch.setattr(sys, "argv", [*argv, "--overwrite"])
    main()
    assert sorted(path.name for path in out.iterdir()) == ["ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.nii.gz"]
    assert (out / "ddf.nii.gz").stat().st_size > 100
