"""``monai-mine register`` as a user waits for it: ``import monai_mine.apps.cli`` pulls neither torch nor MONAI, the
wall time is broken down by stage (``--timings``), and many pairs (a datalist or folders) run in one process with one
model load, one output folder per pair and a progress line per pair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import monai_mine.bundle
from monai_mine.apps.cli import register
from monai_mine.apps.registration import register_files
from monai_mine.apps.registration.many import pairs_from_datalist, pairs_from_folders, register_pairs
from monai_mine.timing import REGISTER_STAGES, StageTimer
from tests.helpers import smooth_noise, write_nifti

SHAPE = (16, 16, 16)
HEAVY = ("torch", "monai", "monai.data", "ignite", "ignite.handlers.checkpoint", "torch.distributed")
AFFINE = np.diag([1.5, 1.5, 1.5, 1.0])


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """A fixed and a moving folder of three 16^3 images each, paired by name (one as .nii, the others .nii.gz)."""
    root = tmp_path_factory.mktemp("folders")
    fixed, moving = root / "fixed", root / "moving"
    fixed.mkdir(), moving.mkdir()
    for index, name in enumerate(("a.nii.gz", "b.nii.gz", "c.nii")):
        write_nifti(fixed / name, smooth_noise(SHAPE, 10 + index), AFFINE)
        write_nifti(moving / name, smooth_noise(SHAPE, 20 + index), AFFINE)
    (moving / "notes.txt").write_text("not an image")
    return fixed, moving


def test_importing_the_command_line_pulls_neither_torch_nor_monai():
    code = f"import sys, monai_mine.apps.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import monai_mine; print(monai_mine.losses.MINELoss.__module__, monai_mine.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["monai_mine.losses.mine", "0.1.0"]  # the plugin subpackages load when named


def test_a_registration_reports_its_wall_time_by_stage(folders, tiny_bundle, tmp_path):
    fixed, moving = folders
    timer = StageTimer()
    report = register_files(fixed / "a.nii.gz", moving / "a.nii.gz", tiny_bundle, tmp_path / "out", timer=timer)
    expected = {"config parsing", "model build + weight load", "reading", "resampling", "network"}
    expected |= {"full-resolution warping", "Jacobian", "QC figure", "writing"}
    assert set(report.timings) == expected and set(report.timings) <= set(REGISTER_STAGES)
    assert all(seconds >= 0 for seconds in report.timings.values()) and timer.seconds == report.timings
    refined = register_files(
        fixed / "a.nii.gz", moving / "a.nii.gz", tiny_bundle, tmp_path / "io", instance_optimization=2
    )
    assert refined.timings["instance optimisation"] > 0
    table = report.timings_table(wall_s=report.timings["reading"] + 1e6)
    assert table.splitlines()[0].split() == ["stage", "seconds", "share"] and "other" in table and "total" in table


def test_the_command_line_prints_the_breakdown_from_process_start(folders, tiny_bundle, tmp_path):
    fixed, moving = folders
    out = register(
        str(fixed / "b.nii.gz"), str(moving / "b.nii.gz"), str(tiny_bundle), str(tmp_path / "o"), timings=True
    )
    assert "folding" in out and "wall time by stage:" in out
    stages = [line.split("  ")[0].strip() for line in out.split("wall time by stage:")[1].strip().splitlines()[1:]]
    assert stages[:3] == ["start-up (interpreter, command line)", "imports (torch, MONAI, monai_mine)", "reading"]
    assert {"config parsing", "network", "writing", "QC figure", "total"} <= set(stages)
    assert "wall time" not in register(
        str(fixed / "b.nii.gz"), str(moving / "b.nii.gz"), str(tiny_bundle), str(tmp_path / "p")
    )


def test_folders_are_paired_by_name_or_one_fixed_image_with_many_moving(folders, tmp_path):
    fixed, moving = folders
    pairs = pairs_from_folders(fixed, moving)
    assert [(p.name, p.fixed.name, p.moving.name) for p in pairs] == [
        ("a", "a.nii.gz", "a.nii.gz"),
        ("b", "b.nii.gz", "b.nii.gz"),
        ("c", "c.nii", "c.nii"),
    ]
    assert [p.fixed for p in pairs_from_folders(fixed / "a.nii.gz", moving)] == [fixed / "a.nii.gz"] * 3
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    write_nifti(lonely / "a.nii.gz", smooth_noise(SHAPE, 1), AFFINE)
    write_nifti(lonely / "z.nii.gz", smooth_noise(SHAPE, 2), AFFINE)
    with pytest.raises(ValueError, match=r"\['b', 'c', 'z'\] are in only one of them"):
        pairs_from_folders(lonely, moving)
    with pytest.raises(FileNotFoundError, match="holds no image"):
        pairs_from_folders(fixed, tmp_path / "lonely" / ".." / "lonely" / "..")


def test_many_pairs_load_the_model_once_and_write_a_folder_each(folders, tiny_bundle, tmp_path, monkeypatch, caplog):
    fixed, moving = folders
    datalist = tmp_path / "pairs.json"
    items = [
        {"fixed_image": str(fixed / "a.nii.gz"), "moving_image": str(moving / "b.nii.gz")},
        {"fixed_image": str(fixed / "c.nii"), "moving_image": str(moving / "c.nii")},
    ]
    datalist.write_text(json.dumps({"training": items[:1], "test": items}))
    loads = []
    original = monai_mine.bundle.load_trained_model

    def counted(*args, **kwargs):
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(monai_mine.bundle, "load_trained_model", counted)
    with caplog.at_level("INFO", logger="monai_mine.apps.registration"):
        out = register(bundle=str(tiny_bundle), out=str(tmp_path / "out"), datalist=str(datalist))
    assert len(loads) == 1 and "registered 2 pairs" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000_b", "001_c"]
    assert (tmp_path / "out" / "001_c" / "warped.nii").is_file()  # the fixed image's format
    alone = register_files(fixed / "a.nii.gz", moving / "b.nii.gz", tiny_bundle, tmp_path / "alone")
    np.testing.assert_array_equal(
        nib.load(alone.ddf).get_fdata(), nib.load(tmp_path / "out" / "000_b" / "ddf.nii.gz").get_fdata()
    )
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert [line.split(" ")[0] for line in progress] == ["[1/2]", "[2/2]"]
    assert [p.name for p in pairs_from_datalist(datalist, "training")] == ["000_b"]
    out = register(str(fixed), str(moving), str(tiny_bundle), str(tmp_path / "folders"), instance_optimization="fast")
    assert sorted(p.name for p in (tmp_path / "folders").iterdir()) == ["a", "b", "c"] and "3 pairs" in out


def test_bad_many_pair_input_is_refused_naming_it(folders, tiny_bundle, tmp_path):
    fixed, moving = folders
    datalist = tmp_path / "pairs.json"
    datalist.write_text(json.dumps({"test": [{"fixed_image": "a.nii.gz"}]}))
    with pytest.raises(ValueError, match="test item 0: expected fixed_image and moving_image"):
        pairs_from_datalist(datalist)
    with pytest.raises(ValueError, match=r"has no pairs in split 'validation' \(lists found: \['test'\]\)"):
        pairs_from_datalist(datalist, "validation")
    pairs = pairs_from_folders(fixed, moving)
    pairs[1].moving = tmp_path / "missing.nii.gz"
    with pytest.raises(FileNotFoundError, match=r"pair 2 of 3 \(b: .*missing\.nii\.gz"):
        register_pairs(pairs, tiny_bundle, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "ddf.nii.gz").is_file() and not (tmp_path / "out" / "b").exists()
    with pytest.raises(ValueError, match="instance_optimization 'fastest'"):
        register_pairs(pairs, tiny_bundle, tmp_path / "out2", instance_optimization="fastest")
    with pytest.raises(SystemExit, match="needs --bundle, --out and either --fixed and --moving"):
        register(bundle=str(tiny_bundle), out=str(tmp_path / "o"))
