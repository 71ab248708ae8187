"""The command line: `python -m monai_mine --help` lists the commands and `demo` registers and writes NIfTI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_mine.cli import demo, main


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


REPOSITORY = Path(__file__).resolve().parents[1]


def blob_pair(folder: Path) -> dict[str, Path]:
    """A fixed image (LPS header, anisotropic), a moving image on another grid and two moving label maps."""
    fixed_affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    fixed_affine[:3, 3] = [30.0, 30.0, -30.0]
    moving_affine = np.diag([1.2, 1.3, 1.6, 1.0])
    moving_affine[:3, 3] = [-30.0, -30.0, -32.0]

    def blob(shape, affine, centre):
        index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
        world = index @ affine[:3, :3].T + affine[:3, 3]
        return np.exp(-((world - centre) ** 2).sum(-1) / 98.0).astype(np.float32)

    moving = blob((50, 46, 40), moving_affine, [4.0, -3.0, 2.0])
    files = {
        "fixed": (blob((40, 40, 30), fixed_affine, [0.0, 0.0, 0.0]), fixed_affine),
        "moving": (moving, moving_affine),
        "lesion": ((moving > 0.5).astype(np.uint8), moving_affine),
        "halo": ((moving > 0.2).astype(np.int16) * 7, moving_affine),
    }
    for name, (data, affine) in files.items():
        nib.save(nib.Nifti1Image(data, affine), folder / f"{name}.nii.gz")
    return {name: folder / f"{name}.nii.gz" for name in files}


def save_untrained(bundle: str, path: Path) -> Path:
    """The freshly initialised network weights of a repository bundle."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPOSITORY / "bundles" / bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(REPOSITORY / "bundles" / bundle)
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def run_main(monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["monai-mine", *argv])
    main()


def test_help_lists_registration_commands(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "--help")
    assert exit_info.value.code == 0
    shown = capsys.readouterr()
    for command in ("register", "warp", "jacobian"):
        assert f"     {command}\n" in shown.out + shown.err


def test_register_warp_and_jacobian_commands(tmp_path, monkeypatch, capsys):
    """register (a real bundle network, untrained weights), then warp and jacobian on its DDF."""
    files = blob_pair(tmp_path)
    save_untrained("vtn_addd", tmp_path / "untrained.pt")
    out = tmp_path / "out"
    run_main(
        monkeypatch, "register", "--fixed", str(files["fixed"]), "--moving", str(files["moving"]),
        "--bundle", str(REPOSITORY / "bundles" / "vtn_addd"), "--checkpoint", str(tmp_path / "untrained.pt"),
        "--moving_label", str(files["lesion"]), "--moving_label", str(files["halo"]), "--out", str(out),
    )  # fmt: skip
    assert "registered in" in capsys.readouterr().out
    expected = {"ddf", "jacobian", "warped", "warped_lesion", "warped_halo"}
    assert {p.name for p in out.iterdir()} == {f"{name}.nii.gz" for name in expected} | {"qc.png"}
    fixed = nib.load(files["fixed"])
    for name in expected:
        np.testing.assert_allclose(nib.load(out / f"{name}.nii.gz").affine, fixed.affine, atol=1e-6)
    assert nib.load(out / "ddf.nii.gz").shape == (40, 40, 30, 1, 3)
    assert set(np.unique(np.asarray(nib.load(out / "warped_halo.nii.gz").dataobj))) <= {0, 7}

    run_main(monkeypatch, "warp", "--image", str(files["halo"]), "--ddf", str(out / "ddf.nii.gz"),
             "--out", str(tmp_path / "halo_again.nii.gz"), "--label", "true")  # fmt: skip
    assert "sampled through world coordinates" in capsys.readouterr().out
    np.testing.assert_array_equal(
        np.asarray(nib.load(tmp_path / "halo_again.nii.gz").dataobj),
        np.asarray(nib.load(out / "warped_halo.nii.gz").dataobj),
    )
    run_main(monkeypatch, "jacobian", "--ddf", str(out / "ddf.nii.gz"), "--out", str(tmp_path / "det.nii.gz"))
    printed = capsys.readouterr().out
    assert "folding" in printed and "SDlogJ" in printed and "min det" in printed
    np.testing.assert_allclose(
        nib.load(tmp_path / "det.nii.gz").get_fdata(), nib.load(out / "jacobian.nii.gz").get_fdata(), atol=1e-5
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["jacobian", "--ddf", "{tmp}/absent.nii.gz", "--out", "{tmp}/det.nii.gz"], "DDF {tmp}/absent.nii.gz does not"),
        (["warp", "--image", "{tmp}/fixed.nii.gz", "--ddf", "{tmp}/fixed.nii.gz", "--out", "{tmp}/w.nii.gz"],
         "DDF {tmp}/fixed.nii.gz has shape (40, 40, 30); expected a displacement field"),
        (["register", "--fixed", "{tmp}/fixed.nii.gz", "--moving", "{tmp}/moving.nii.gz", "--bundle",
          "{repo}/bundles/vtn_addd", "--checkpoint", "{tmp}/other.pt", "--out", "{tmp}/out"],
         "checkpoint {tmp}/other.pt does not fit the network of bundle 'vtn_addd'"),
        (["register", "--fixed", "{tmp}/fixed.nii.gz", "--moving", "{tmp}/slice.nii.gz", "--bundle",
          "{repo}/bundles/vtn_addd", "--out", "{tmp}/out"],
         "moving image {tmp}/slice.nii.gz has shape (40, 40); expected a 3D volume"),
    ],
    ids=["missing-ddf", "image-as-ddf", "other-variant", "2d-moving"],
)  # fmt: skip
def test_command_errors_name_the_file(tmp_path, monkeypatch, argv, message):
    """Bad input ends the command with exit status 1 and one line naming the file (SystemExit with a message)."""
    blob_pair(tmp_path)
    nib.save(nib.Nifti1Image(np.random.rand(40, 40).astype(np.float32), np.eye(4)), tmp_path / "slice.nii.gz")
    save_untrained("miregnet", tmp_path / "other.pt")
    names = {"tmp": str(tmp_path), "repo": str(REPOSITORY)}
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, *[item.format(**names) for item in argv])
    assert str(exit_info.value.code).startswith(f"monai-mine {argv[0]}: error: ")
    assert message.format(**names) in str(exit_info.value.code)
    assert not (tmp_path / "out").exists() and not (tmp_path / "w.nii.gz").exists()
