"""The command line: `python -m monai_mine --help` lists the commands and `demo` registers and writes NIfTI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_mine.apps.cli import demo, main
from tests.helpers import REPOSITORY, untrained_checkpoint, world_blob, write_nifti


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

    assert result.stdout.strip() == __version__  # python -m monai_mine ends through cli.run as the script does


def test_the_quick_exit_waits_for_a_running_thread(monkeypatch):
    # cli.run ends the process without tearing it down, but not while a non-daemon thread still works: then it
    # returns, and the interpreter's normal exit waits for the thread (ending the process here would end pytest)
    import threading

    from monai_mine.apps import cli

    done = threading.Event()
    worker = threading.Thread(target=lambda: (time.sleep(0.2), done.set()))
    monkeypatch.setattr(cli, "main", worker.start)
    cli.run()
    worker.join()
    assert done.is_set()


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
    # the script leaves without tearing the interpreter down (cli.run): a result still reaches stdout whole, and an
    # error still exits with status 1 and its message
    result = subprocess.run([script, "jacobian", "--ddf", "absent.nii.gz", "--out", "det.nii.gz"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "monai-mine jacobian: error: DDF absent.nii.gz does not" in result.stderr


def blob_pair(folder: Path) -> dict[str, Path]:
    """A fixed image (LPS header, anisotropic), a moving image on another grid and two moving label maps."""
    fixed_affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    fixed_affine[:3, 3] = [30.0, 30.0, -30.0]
    moving_affine = np.diag([1.2, 1.3, 1.6, 1.0])
    moving_affine[:3, 3] = [-30.0, -30.0, -32.0]

    moving = world_blob((50, 46, 40), moving_affine, [4.0, -3.0, 2.0], sigma=7.0)
    files = {
        "fixed": (world_blob((40, 40, 30), fixed_affine, [0.0, 0.0, 0.0], sigma=7.0), fixed_affine),
        "moving": (moving, moving_affine),
        "lesion": ((moving > 0.5).astype(np.uint8), moving_affine),
        "halo": ((moving > 0.2).astype(np.int16) * 7, moving_affine),
    }
    return {name: write_nifti(folder / f"{name}.nii.gz", data, affine) for name, (data, affine) in files.items()}


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
    untrained_checkpoint("vtn_addd", tmp_path / "untrained.pt")
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
    # --qc false (fire passes the text "false" on): the same registration without the figure
    run_main(
        monkeypatch, "register", "--fixed", str(files["fixed"]), "--moving", str(files["moving"]),
        "--bundle", str(REPOSITORY / "bundles" / "vtn_addd"), "--checkpoint", str(tmp_path / "untrained.pt"),
        "--out", str(tmp_path / "no_figure"), "--qc", "false",
    )  # fmt: skip
    assert "registered in" in capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "no_figure").iterdir())
    assert written == ["ddf.nii.gz", "jacobian.nii.gz", "warped.nii.gz"]
    np.testing.assert_array_equal(
        nib.load(tmp_path / "no_figure" / "ddf.nii.gz").get_fdata(), nib.load(out / "ddf.nii.gz").get_fdata()
    )

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
        (["register", "--fixed", "{tmp}/fixed.nii.gz", "--moving", "{tmp}/moving.nii.gz", "--bundle",
          "{repo}/bundles/vtn_addd", "--out", "{tmp}/out", "--overwrite", "maybe"],
         "--overwrite takes true or false (or --overwrite / --nooverwrite), got 'maybe'"),
    ],
    ids=["missing-ddf", "image-as-ddf", "other-variant", "2d-moving", "unclear-switch"],
)  # fmt: skip
def test_command_errors_name_the_file(tmp_path, monkeypatch, argv, message):
    """Bad input ends the command with exit status 1 and one line naming the file (SystemExit with a message)."""
    blob_pair(tmp_path)
    write_nifti(tmp_path / "slice.nii.gz", np.random.rand(40, 40).astype(np.float32))
    untrained_checkpoint("miregnet", tmp_path / "other.pt")
    names = {"tmp": str(tmp_path), "repo": str(REPOSITORY)}
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, *[item.format(**names) for item in argv])
    assert str(exit_info.value.code).startswith(f"monai-mine {argv[0]}: error: ")
    assert message.format(**names) in str(exit_info.value.code)
    assert not (tmp_path / "out").exists() and not (tmp_path / "w.nii.gz").exists()


def test_template_command_writes_the_mni_template_on_one_grid(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["monai-mine", "template", "--out", str(tmp_path / "mni"), "--size", "16"])
    main()
    written = capsys.readouterr().out.split()
    assert [Path(path).name for path in written] == ["t1.nii.gz", "t2_like.nii.gz", "labels.nii.gz", "mask.nii.gz"]
    images = {Path(path).name: nib.load(path) for path in written}
    for image in images.values():
        assert image.shape == (16, 16, 16)
        np.testing.assert_allclose(image.affine, images["t1.nii.gz"].affine)
    np.testing.assert_allclose(np.diag(images["t1.nii.gz"].affine)[:3], 12.0)  # 192 mm / 16 voxels
    assert set(np.unique(np.asarray(images["labels.nii.gz"].dataobj))) == {0, 1, 2, 3}


TYPED_NAMES = ["1e3", "2024_01", "a,b", "0x1F", "True", "None"]


@pytest.mark.parametrize("name", TYPED_NAMES)
def test_names_reach_the_command_as_typed(name, tmp_path, monkeypatch):
    """fire would read these as 1000.0, 202401, ('a', 'b'), 31, True and None; the commands get the strings."""
    received = {}

    def fake_warp(image: str, ddf: str, out: str, label: bool = False, device: str = "cpu") -> str:
        received.update(image=image, ddf=ddf, out=out, label=label)
        return "done"

    monkeypatch.setattr("monai_mine.apps.cli.warp", fake_warp)
    run_main(monkeypatch, "warp", name, f"--ddf={name}", "--out", name, "--label")
    assert received == {"image": name, "ddf": name, "out": name, "label": True}


def test_repeated_and_listed_label_flags_give_every_file():
    from monai_mine.apps.cli import _paths, _typed_argv, register

    argv = _typed_argv(register, ["--fixed", "f", "--moving", "m", "--moving_label", "a,b", "--moving_label", "1e3"])
    assert argv[argv.index("--moving_label") + 1] == repr(["a,b", "1e3"])
    assert _paths("a,b") == ["a,b"] and _paths("[x.nii.gz, y.nii.gz]") == ["x.nii.gz", "y.nii.gz"]


def test_template_writes_into_a_folder_named_as_typed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_main(monkeypatch, "template", "--out", "1e3", "--size", "8")
    assert (tmp_path / "1e3" / "t1.nii.gz").is_file() and not (tmp_path / "1000.0").exists()
