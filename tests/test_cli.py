"""The command line: `python -m monai_mine --help` lists the commands and `demo` registers and writes NIfTI."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np

from monai_mine.cli import demo


def test_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "monai_mine", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr  # fire writes help to stderr when not on a terminal
    for command in ("demo", "version"):
        assert f"     {command}\n" in shown


def test_version_command():
    result = subprocess.run(
        [sys.executable, "-m", "monai_mine", "version"], capture_output=True, text=True, timeout=120, check=True
    )
    from monai_mine import __version__

    assert result.stdout.strip() == __version__


def test_demo_writes_registered_pair(tmp_path):
    summary = demo(out_dir=str(tmp_path), size=16, steps=3, seed=1)
    assert "mean Dice" in summary
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {
        f"{n}.nii.gz" for n in ("fixed", "moving", "warped", "ddf", "fixed_label", "moving_label", "warped_label")
    }
    ddf = nib.load(tmp_path / "ddf.nii.gz")
    assert ddf.shape == (16, 16, 16, 3)
    np.testing.assert_allclose(ddf.affine, np.eye(4))
    label = nib.load(tmp_path / "warped_label.nii.gz")
    assert np.issubdtype(label.get_data_dtype(), np.integer)


def test_console_script_is_installed():
    script = shutil.which("monai-mine")
    assert script is not None, "the monai-mine console script is missing: install with pip install -e ."
    result = subprocess.run([script, "version"], capture_output=True, text=True, timeout=120, check=True)
    from monai_mine import __version__

    assert result.stdout.strip() == __version__
