# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A table of bad inputs through the bundles' train, evaluate and inference workflows: each stops with an error
naming the file and what was expected, or the workflow recovers and writes sound outputs. Inputs are never touched.

Every case runs through all three workflows. The four bundles share one preprocessing chain, with the same checks
in the same order (asserted below), and a bad input is stopped before any network runs, so each case-and-workflow
runs on one bundle, the bundles taking turns: every bundle meets every workflow and both kinds of cases. Inputs
without a pair of label maps also run through MIDiceRegNet's training, the one objective that needs labels. The
MIRegNet bundles run at 16^3 with their strides cut to 8 (``tiny_settings``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from robustness_runs import CONFIGS, SIZE, iterations, snapshot

from tests.helpers import BUNDLES, REPOSITORY, error_chain, smooth_noise, write_nifti

SHAPE = (16, 16, 16)


def _label(shape=SHAPE, value: int = 1) -> np.ndarray:
    label = np.zeros(shape, np.int32)
    label[tuple(slice(n // 4, max(n // 4 + 1, 3 * n // 4)) for n in shape)] = value
    return label


def _save(folder: Path, name: str, array: np.ndarray, affine=None) -> str:
    return write_nifti(folder / name, array, affine).name


def _pair(folder: Path, moving=None, fixed=None, moving_label=None, fixed_label=None) -> dict:
    """A pair item; each argument is an array, a file name already written, or ``False`` to leave the key out."""
    item = {}
    defaults = {
        "moving": smooth_noise(SHAPE, 1),
        "fixed": smooth_noise(SHAPE, 2),
        "moving_label": _label(),
        "fixed_label": _label(),
    }
    given = {"moving": moving, "fixed": fixed, "moving_label": moving_label, "fixed_label": fixed_label}
    for role, value in given.items():
        value = defaults[role] if value is None else value
        if value is False:
            continue
        key = role if role.endswith("label") else f"{role}_image"
        item[key] = value if isinstance(value, str) else _save(folder, f"{role}.nii.gz", value)
    return item


def _truncated(folder: Path, suffix: str) -> str:
    _save(folder, f"whole{suffix}", smooth_noise((32, 32, 32), 3))
    data = (folder / f"whole{suffix}").read_bytes()
    (folder / f"truncated{suffix}").write_bytes(data[: len(data) // 2])
    (folder / f"whole{suffix}").unlink()
    return f"truncated{suffix}"


def _with(value_at: tuple, value: float, array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array[value_at] = value
    return array


def _anisotropic(folder: Path) -> dict:
    affine = np.diag([0.5, 0.5, 10.0, 1.0])
    return _pair(
        folder,
        _save(folder, "moving.nii.gz", smooth_noise((40, 40, 3), 1), affine),
        _save(folder, "fixed.nii.gz", smooth_noise((40, 40, 3), 2), affine),
        _save(folder, "moving_label.nii.gz", _label((40, 40, 3)), affine),
        _save(folder, "fixed_label.nii.gz", _label((40, 40, 3)), affine),
    )


def _sized(shape) -> Callable[[Path], dict]:
    return lambda folder: _pair(folder, smooth_noise(shape, 1), smooth_noise(shape, 2), _label(shape), _label(shape))


@dataclass(frozen=True)
class Case:
    """A bad input: ``build(folder)`` writes its files and returns the pair item (``None``: it wrote a datalist of
    its own); ``error`` is the expected message
    (a regex over the exception chain), or ``None`` when the workflows recover; ``label_term`` marks inputs without
    a pair of label maps, which a bundle with a Dice term cannot train on."""

    name: str
    build: Callable[[Path], dict]
    error: str | None = None
    label_term: bool = False


CASES = [
    Case(
        "corrupt_nifti",
        lambda f: _pair(f, moving=(f / "moving.nii.gz").write_bytes(b"not an image " * 50) and "moving.nii.gz"),
        r"cannot read \S*corrupt_nifti/moving\.nii\.gz \(key 'moving_image'\) as an image: ImageFileError",
    ),
    Case(
        "empty_file",
        lambda f: _pair(f, fixed=(f / "fixed.nii.gz").write_bytes(b"") or "fixed.nii.gz"),
        r"cannot read \S*empty_file/fixed\.nii\.gz \(key 'fixed_image'\) as an image",
    ),
    Case(
        "truncated_nii_gz",
        lambda f: _pair(f, moving=_truncated(f, ".nii.gz")),
        r"cannot read \S*truncated\.nii\.gz \(key 'moving_image'\) as an image: EOFError: Compressed file ended",
    ),
    Case(
        "truncated_nii",
        lambda f: _pair(f, fixed=_truncated(f, ".nii")),
        r"cannot read \S*truncated\.nii \(key 'fixed_image'\) as an image: OSError: Expected 131072 bytes",
    ),
    Case(
        "folder_instead_of_file",
        lambda f: _pair(f, moving=(f / "scan.nii.gz").mkdir() or "scan.nii.gz"),
        r"cannot read \S*folder_instead_of_file/scan\.nii\.gz \(key 'moving_image'\) as an image",
    ),
    Case(
        "image_2d",
        lambda f: _pair(f, moving=smooth_noise((16, 16), 1)),
        r"moving\.nii\.gz \(key 'moving_image'\) has shape \(1, 16, 16\) \(2 spatial axes after the channel\); "
        r"expected channel-first data with 3 spatial axes",
    ),
    Case(
        "single_slice_volume",
        lambda f: _pair(f, smooth_noise((16, 16, 1), 1), smooth_noise((16, 16, 1), 2), False, False),
        r"moving\.nii\.gz \(key 'moving_image'\) has shape \(1, 16, 16, 1\): each spatial axis needs at least 2 voxels",
    ),
    Case(
        "image_4d",
        lambda f: _pair(f, fixed=np.stack([smooth_noise(SHAPE, 2), smooth_noise(SHAPE, 3)], axis=-1)),
        r"fixed_image \(\S*image_4d/fixed\.nii\.gz\) must be a \(B, 1, X, Y, Z\) batch, got shape \(1, 2, 16, 16, 16\)",
    ),
    Case(
        "label_4d",
        lambda f: _pair(f, moving_label=np.stack([_label(), _label()], axis=-1)),
        r"moving_label \(\S*label_4d/moving_label\.nii\.gz\) must be a \(B, 1, X, Y, Z\) batch",
    ),
    Case(
        "complex_voxels",
        lambda f: _pair(f, moving=(smooth_noise(SHAPE, 1) + 1j * smooth_noise(SHAPE, 4)).astype(np.complex64)),
        r"moving\.nii\.gz \(key 'moving_image'\) holds complex voxels; expected real-valued intensities",
    ),
    Case(
        "nan_voxel",
        lambda f: _pair(f, moving=_with((3, 4, 5), np.nan, smooth_noise(SHAPE, 1))),
        r"moving\.nii\.gz \(key 'moving_image'\) has 1 NaN and 0 infinite voxel\(s\) out of 4096",
    ),
    Case(
        "inf_voxel",
        lambda f: _pair(f, fixed=_with((0, 0, 0), -np.inf, smooth_noise(SHAPE, 2))),
        r"fixed\.nii\.gz \(key 'fixed_image'\) has 0 NaN and 1 infinite voxel\(s\) out of 4096",
    ),
    Case(
        "nan_in_label",
        lambda f: _pair(f, fixed_label=np.where(_label() > 0, np.nan, 0.0).astype(np.float32)),
        r"fixed_label\.nii\.gz \(key 'fixed_label'\) has 512 NaN and 0 infinite voxel\(s\)",
    ),
    Case(
        "constant_image",
        lambda f: _pair(f, fixed=np.full(SHAPE, 7.0, np.float32)),
        r"fixed\.nii\.gz \(key 'fixed_image'\) is constant \(every voxel is 7\.0\): nothing to register",
    ),
    Case(
        "missing_image_file",
        lambda f: _pair(f, moving="not_there.nii.gz"),
        r"datalist \S*datalist\.json, split '\w+', item 0, key 'moving_image': file \S*not_there\.nii\.gz does not "
        r"exist",
    ),
    Case(
        "missing_label_file",
        lambda f: _pair(f, fixed_label="gone_label.nii.gz"),
        r"item 0, key 'fixed_label': file \S*gone_label\.nii\.gz does not exist",
    ),
    Case(
        "label_shape_differs",
        lambda f: _pair(f, moving_label=_label((12, 16, 16))),
        r"Spatial shapes differ: .*moving_label\.nii\.gz \(key 'moving_label'\): \(12, 16, 16\)",
    ),
    Case(
        "label_grid_differs",
        lambda f: _pair(f, fixed_label=_save(f, "fixed_label.nii.gz", _label(), np.diag([2.0, 2.0, 2.0, 1.0]))),
        r"label map \S*fixed_label\.nii\.gz \(key 'fixed_label'\) is not on the grid of its image \S*fixed\.nii\.gz",
    ),
    Case(
        "image_shapes_differ",
        lambda f: _pair(f, moving=smooth_noise((12, 16, 16), 1), moving_label=False, fixed_label=False),
        r"Spatial shapes differ: \S*moving\.nii\.gz \(key 'moving_image'\): \(12, 16, 16\); \S*fixed\.nii\.gz",
    ),
    Case(
        "datalist_not_json",
        lambda f: (f / "datalist.json").write_bytes(b"\x1f\x8b\x08 binary") and None,
        r"Datalist file \S*datalist_not_json/datalist\.json is not valid JSON: not UTF-8 text",
    ),
    Case(
        "datalist_split_empty",
        lambda f: (f / "datalist.json").write_text('{"training": [], "validation": [], "test": []}') and None,
        r"Split '\w+' of datalist \S*datalist\.json is empty",
    ),
    Case(
        "datalist_key_typo",
        lambda f: {**_pair(f, moving=False), "moving_imag": _save(f, "moving.nii.gz", smooth_noise(SHAPE, 1))},
        r"datalist \S*datalist\.json, split '\w+', item 0: unknown key\(s\) \['moving_imag'\]; allowed keys are",
    ),
    Case("int8_image", lambda f: _pair(f, moving=(smooth_noise(SHAPE, 1) - 50).astype(np.int8))),
    Case("uint8_mask_as_image", lambda f: _pair(f, fixed=(smooth_noise(SHAPE, 2) > 50).astype(np.uint8))),
    Case("float64_image", lambda f: _pair(f, moving=smooth_noise(SHAPE, 1).astype(np.float64))),
    Case("int16_label", lambda f: _pair(f, moving_label=_label().astype(np.int16))),
    Case("empty_label", lambda f: _pair(f, moving_label=np.zeros(SHAPE, np.int32))),
    Case("no_labels", lambda f: _pair(f, moving_label=False, fixed_label=False), label_term=True),
    Case("fixed_label_only", lambda f: _pair(f, moving_label=False), label_term=True),
    Case("tiny_2x2x2", _sized((2, 2, 2))),
    Case("odd_17x19x23", _sized((17, 19, 23))),
    Case("anisotropic_0.5x0.5x10mm", _anisotropic),
    Case(
        "large_intensities",
        lambda f: _pair(f, moving=smooth_noise(SHAPE, 1) * 1e6 - 3e7, fixed=smooth_noise(SHAPE, 2) * 1e-6),
    ),
]
LABEL_TERM_ERROR = r"this objective has a label term, so every training pair needs moving_label and fixed_label"
WORKFLOWS = list(CONFIGS)


@pytest.fixture(scope="module")
def case_dirs(tmp_path_factory) -> dict[str, Path]:
    """One folder per case holding its files and a datalist with the bad pair in every split."""
    root = tmp_path_factory.mktemp("cases")
    folders = {}
    for case in CASES:
        folder = root / case.name
        folder.mkdir()
        item = case.build(folder)
        if item is not None:  # else the case wrote its own datalist
            splits = {"training": [item], "validation": [item], "test": [item]}
            (folder / "datalist.json").write_text(json.dumps(splits))
        folders[case.name] = folder
    return folders


def _expected_error(case: Case, name: str, workflow: str) -> str | None:
    if case.label_term and name == "midiceregnet" and workflow == "train":
        return LABEL_TERM_ERROR
    return case.error


def _params():
    """Every case through every workflow, on a bundle chosen in turn (plus MIDiceRegNet training for label cases)."""
    params = []
    for index, case in enumerate(CASES):
        for offset, workflow in enumerate(WORKFLOWS):
            names = [BUNDLES[(index + offset) % len(BUNDLES)]]
            if case.label_term and workflow == "train" and "midiceregnet" not in names:
                names = [*names, "midiceregnet"]
            params += [pytest.param(case, name, workflow, id=f"{case.name}-{name}-{workflow}") for name in names]
    return params


def _check_recovery(runner, case: Case, name: str, workflow: str, out: Path, fixed: Path) -> None:
    if workflow == "train":
        checkpoint = torch.load(out / "models" / "checkpoint.pt", weights_only=False)
        assert checkpoint["trainer"]["iteration"] == iterations(name)
        assert not list((out / "models").glob(".*")), "temporary files left beside the checkpoint"
    elif workflow == "evaluate":
        with open(out / "eval" / "metrics.csv") as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) == 1
        assert np.isfinite(float(rows[0]["sdlogj"])) and np.isfinite(float(rows[0]["folding_percent"]))
        if case.name == "empty_label":
            assert rows[0]["dice"] in ("nan", "0.0")  # no moving label to overlap: Dice 0 or undefined, not an error
        elif not case.label_term:
            assert 0.0 <= float(rows[0]["dice"]) <= 1.0
    else:
        ddf_path = next((out / "eval").glob("*_ddf.nii.gz"))
        ddf = nib.load(ddf_path)
        assert ddf.shape == (SIZE, SIZE, SIZE, 3) and np.isfinite(ddf.get_fdata()).all()
        source = nib.load(fixed)  # the output grid: the fixed image's field of view at 16^3
        expected = np.linalg.norm(source.affine[:3, :3], axis=0) * np.array(source.shape[:3]) / SIZE
        np.testing.assert_allclose(np.linalg.norm(ddf.affine[:3, :3], axis=0), expected, rtol=1e-4)
        written = sorted(path.name.rsplit("_", 1)[-1] for path in (out / "eval").glob("*.nii.gz"))
        outputs = (
            ["ddf.nii.gz", "warped.nii.gz"] if case.label_term else ["ddf.nii.gz", "label.nii.gz", "warped.nii.gz"]
        )
        assert written == outputs


@pytest.mark.parametrize("case, name, workflow", _params())
def test_bad_input(case, name, workflow, case_dirs, run_bundle, tmp_path):
    folder = case_dirs[case.name]
    before = snapshot(folder)
    expected = _expected_error(case, name, workflow)
    if expected is None:
        runner = run_bundle(name, workflow, folder)
        fixed = folder / json.loads((folder / "datalist.json").read_text())["test"][0]["fixed_image"]
        _check_recovery(runner, case, name, workflow, tmp_path / "out", fixed)
    else:
        with pytest.raises(Exception) as raised:
            run_bundle(name, workflow, folder)
        chain = error_chain(raised.value)
        assert re.search(expected, chain), f"expected /{expected}/ in:\n{chain[-3000:]}"
    assert snapshot(folder) == before, "an input file was modified"


def test_every_bundle_and_workflow_shares_the_checked_preprocessing():
    """What makes one case representative of all bundles: the same checks, in the same order, everywhere."""
    chains = {}
    for name in BUNDLES:
        for names in (("train.json",), ("inference.json",)):
            parser = ConfigParser()
            parser.read_config([str(REPOSITORY / "bundles" / name / "configs" / n) for n in names])
            transforms = parser["preprocessing"]["transforms"]
            chains[(name, names)] = [t if isinstance(t, str) else (t["_target_"], t.get("keys")) for t in transforms]
    reference = chains[("vtn_addd", ("train.json",))]
    assert all(chain == reference for chain in chains.values())
    targets = [entry[0] for entry in reference if isinstance(entry, tuple)]
    for check in ("CheckedLoadImaged", "CheckSpatialDimsd", "CheckFinited", "CheckNonConstantd", "CheckSameShaped",
                  "CheckLabelGridd"):  # fmt: skip
        assert f"monai_mine.transforms.{check}" in targets
