"""Registering real files: a known translation in mm across different shapes, spacings and orientations is recovered
physically; outputs sit on the fixed image's grid; inputs are never modified; instance optimisation refines the DDF
on the fixed grid, a preset as its explicit schedule."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from registration_cases import CentreOfMassNet, ConstantNet, grid_affine, sha256, shifted_pair, two_blobs

from monai_mine.apps.registration import (
    Volume,
    physical_displacement,
    register_files,
    register_volumes,
)
from monai_mine.apps.registration.geometry import to_closest_ras
from monai_mine.bundle import TrainedModel, load_trained_model
from monai_mine.optimization import InstanceOptimizer
from tests.helpers import REPOSITORY, untrained_checkpoint, world_points, write_nifti

SIZE = 32
FIXED_SHAPE, FIXED_SPACING, FIXED_CENTRE = (40, 34, 30), (1.5, 1.8, 2.0), (1.0, -2.0, 0.5)
MOVING_SHAPE, MOVING_SPACING, MOVING_CENTRE = (46, 40, 52), (1.3, 1.5, 1.2), (3.0, -1.0, 2.0)
SHIFT = np.array([4.0, -3.0, 2.5])  # mm: the moving content is the fixed content moved by SHIFT
HALF_VOXEL = 0.5 * min(FIXED_SPACING)


def stored_as(data: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """The same physical image stored in another axis order and direction (header orientation)."""
    image = nib.Nifti1Image(data, affine)
    start = nib.orientations.io_orientation(affine)
    reoriented = image.as_reoriented(nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(axcodes)))
    return np.asarray(reoriented.dataobj), reoriented.affine


def fixed_volume(axcodes: str = "RAS") -> Volume:
    affine = grid_affine(FIXED_SPACING, FIXED_CENTRE, "RAS", shape=FIXED_SHAPE)
    return Volume(*stored_as(two_blobs(FIXED_SHAPE, affine), affine, axcodes))


def moving_volume(axcodes: str = "RAS") -> Volume:
    affine = grid_affine(MOVING_SPACING, MOVING_CENTRE, "RAS", shape=MOVING_SHAPE)
    return Volume(*stored_as(two_blobs(MOVING_SHAPE, affine, SHIFT), affine, axcodes))


def physical_in_ras(ddf: torch.Tensor, volume: Volume) -> np.ndarray:
    """World displacement (mm) per voxel, arranged in the closest RAS voxel order: comparable across headers."""
    return to_closest_ras(physical_displacement(ddf.double(), volume.grid).numpy(), volume.grid)[0]


def test_centre_of_mass_net_is_exact_on_one_grid():
    """The stand-in network itself: a shift of 2 voxels along each axis is measured as 2 voxels."""
    axes = torch.meshgrid(*[torch.arange(24.0)] * 3, indexing="ij")
    image = lambda c: torch.exp(-sum((a - c) ** 2 for a in axes) / 8.0)[None, None]  # noqa: E731
    ddf = CentreOfMassNet()(torch.cat([image(13.0), image(11.0)], dim=1))
    np.testing.assert_allclose(ddf[0, :, 0, 0, 0].numpy(), [2.0, 2.0, 2.0], atol=1e-4)


@pytest.mark.parametrize(
    "fixed_codes, moving_codes", [("RAS", "RAS"), ("LPS", "RAS"), ("RAS", "LPI"), ("PIR", "SAL"), ("ASL", "LPS")]
)
def test_known_translation_in_mm_is_recovered(fixed_codes, moving_codes):
    fixed, moving = fixed_volume(fixed_codes), moving_volume(moving_codes)
    assert fixed.grid.axcodes == fixed_codes and moving.grid.axcodes == moving_codes
    result = register_volumes(fixed, moving, TrainedModel(CentreOfMassNet(), SIZE))
    assert result.ddf.shape == (3, *fixed.data.shape) and result.warped.shape == (1, *fixed.data.shape)
    assert result.working.axcodes == "RAS" and result.working.shape == (SIZE,) * 3
    displacement = physical_in_ras(result.ddf, fixed)  # (3, X, Y, Z) mm
    error = np.linalg.norm(displacement - SHIFT[:, None, None, None], axis=0)
    assert error.max() < HALF_VOXEL, f"physical displacement off by up to {error.max():.3f} mm"
    # the warped moving image is the fixed image: moving sampled at world(x) + SHIFT
    np.testing.assert_allclose(result.warped[0].numpy(), fixed.data, atol=0.03)
    # the same physical answer whatever the headers' orientations
    reference = register_volumes(fixed_volume(), moving_volume(), TrainedModel(CentreOfMassNet(), SIZE))
    np.testing.assert_allclose(displacement, physical_in_ras(reference.ddf, fixed_volume()), atol=1e-3)


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "IRP"])
def test_network_ddf_in_working_voxels_maps_to_mm(axcodes):
    """A network DDF d (working voxels) is the world displacement L_W d, L_W = diag(RAS box size / SIZE)."""
    fixed = fixed_volume(axcodes)
    d = torch.tensor([1.5, -0.5, 2.0])
    result = register_volumes(fixed, moving_volume(), TrainedModel(ConstantNet(d), SIZE))
    working_spacing = np.asarray(FIXED_SPACING) * np.asarray(FIXED_SHAPE) / SIZE  # the RAS box over SIZE voxels
    expected = working_spacing * d.numpy()
    displacement = physical_in_ras(result.ddf, fixed).reshape(3, -1)
    np.testing.assert_allclose(displacement, np.repeat(expected[:, None], displacement.shape[1], 1), atol=1e-4)


def test_register_files_writes_everything_on_the_fixed_grid(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    fixed, moving = fixed_volume("LPS"), moving_volume("PIR")
    fixed_path = write_nifti(inputs / "fixed.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(inputs / "moving.nii.gz", moving.data, moving.affine)
    # labels on a third grid: two blobs thresholded, moved by SHIFT like the moving image
    label_affine = grid_affine((1.0, 1.0, 1.0), MOVING_CENTRE, "LAS", shape=(50, 52, 48))
    label_points = world_points((50, 52, 48), label_affine) - SHIFT
    labels = np.zeros((50, 52, 48), dtype=np.uint8)
    labels[np.linalg.norm(label_points - [3.0, -2.0, 4.0], axis=-1) < 8.0] = 1
    labels[np.linalg.norm(label_points - [-9.0, 7.0, -6.0], axis=-1) < 5.0] = 2
    label_path = write_nifti(inputs / "parcels.nii.gz", labels, label_affine)
    hashes = {path: sha256(path) for path in (fixed_path, moving_path, label_path)}

    report = register_files(
        fixed_path, moving_path, TrainedModel(CentreOfMassNet(), SIZE), tmp_path / "out", moving_labels=[label_path]
    )

    assert {path: sha256(path) for path in hashes} == hashes  # inputs unchanged
    assert sorted(p.name for p in inputs.iterdir()) == ["fixed.nii.gz", "moving.nii.gz", "parcels.nii.gz"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.nii.gz", "warped_parcels.nii.gz"]
    assert report.warped_labels == [tmp_path / "out" / "warped_parcels.nii.gz"]
    for path in (report.warped, report.ddf, report.jacobian, *report.warped_labels):
        image = nib.load(path)
        np.testing.assert_allclose(image.affine, fixed.affine, atol=1e-6)
        assert image.shape[:3] == fixed.data.shape
    ddf_image = nib.load(report.ddf)
    assert ddf_image.shape == (*fixed.data.shape, 1, 3) and ddf_image.header.get_intent()[0] == "vector"
    ddf = torch.from_numpy(np.moveaxis(ddf_image.get_fdata()[:, :, :, 0], -1, 0))
    error = np.linalg.norm(physical_in_ras(ddf, fixed) - SHIFT[:, None, None, None], axis=0)
    assert error.max() < HALF_VOXEL
    # a translation has Jacobian determinant 1 everywhere, no folding
    np.testing.assert_allclose(nib.load(report.jacobian).get_fdata(), 1.0, atol=1e-4)
    assert report.folding_percent == 0.0 and report.min_det == pytest.approx(1.0, abs=1e-4)
    # warped labels: integer, the input's labels, where the fixed content has them
    warped_labels = nib.load(report.warped_labels[0])
    assert warped_labels.get_data_dtype() == np.uint8
    warped = np.asarray(warped_labels.dataobj)
    fixed_points = world_points(fixed.data.shape, fixed.affine)
    expected = np.zeros(fixed.data.shape, dtype=np.uint8)
    expected[np.linalg.norm(fixed_points - [3.0, -2.0, 4.0], axis=-1) < 8.0] = 1
    expected[np.linalg.norm(fixed_points - [-9.0, 7.0, -6.0], axis=-1) < 5.0] = 2
    for value in (1, 2):
        dice = (
            2 * ((warped == value) & (expected == value)).sum() / ((warped == value).sum() + (expected == value).sum())
        )
        assert dice > 0.9, f"label {value}: Dice {dice:.3f}"
    assert report.qc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.runtime_s > 0 and "folding 0.000 %" in report.summary()


def test_real_bundle_network_end_to_end(tmp_path):
    """vtn_addd with untrained weights from a temporary checkpoint: files, shapes and affines."""
    fixed, moving = fixed_volume("LPS"), moving_volume()
    fixed_path = write_nifti(tmp_path / "f.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "m.nii.gz", moving.data, moving.affine)
    checkpoint = untrained_checkpoint("vtn_addd", tmp_path / "untrained.pt")
    bundle = load_trained_model(REPOSITORY / "bundles" / "vtn_addd", checkpoint, overrides={"image_size": 16})
    report = register_files(fixed_path, moving_path, bundle, tmp_path / "out")
    for path in (report.warped, report.ddf, report.jacobian):
        image = nib.load(path)
        np.testing.assert_allclose(image.affine, fixed.affine, atol=1e-6)
        assert image.shape[:3] == fixed.data.shape
    assert np.isfinite(nib.load(report.ddf).get_fdata()).all()
    assert 0.0 <= report.folding_percent <= 100.0 and report.network_s > 0


def test_outputs_never_overwrite_inputs(tmp_path):
    fixed, moving = fixed_volume(), moving_volume()
    fixed_path = write_nifti(tmp_path / "warped.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "moving.nii.gz", moving.data, moving.affine)
    before = sha256(fixed_path)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"input \[.*warped\.nii\.gz.*\] lies inside the output folder"):
            register_files(
                fixed_path, moving_path, TrainedModel(CentreOfMassNet(), SIZE), tmp_path, overwrite=overwrite
            )
    assert sha256(fixed_path) == before


def test_a_result_folder_is_replaced_whole_and_only_with_overwrite(tmp_path):
    fixed, moving = fixed_volume(), moving_volume()
    (tmp_path / "in").mkdir()
    fixed_path = write_nifti(tmp_path / "in" / "fixed.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "in" / "moving.nii.gz", moving.data, moving.affine)
    label_path = write_nifti(tmp_path / "in" / "seg.nii.gz", (moving.data > 0.5).astype(np.int16), moving.affine)
    model, out = TrainedModel(CentreOfMassNet(), SIZE), tmp_path / "out"
    register_files(fixed_path, moving_path, model, out, moving_labels=[label_path])
    assert sorted(path.name for path in out.iterdir()) == [
        "ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.nii.gz", "warped_seg.nii.gz"
    ]  # fmt: skip
    with pytest.raises(FileExistsError, match=r"output folder \S*out holds 5 file\(s\) of an earlier run.*--overwrite"):
        register_files(fixed_path, moving_path, model, out)
    register_files(fixed_path, moving_path, model, out, overwrite=True)  # no labels this time
    assert sorted(path.name for path in out.iterdir()) == ["ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.nii.gz"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds files that this command does not write \(notes\.txt\)"):
        register_files(fixed_path, moving_path, model, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_the_qc_figure_is_optional(tmp_path):
    fixed, moving = fixed_volume(), moving_volume()
    fixed_path = write_nifti(tmp_path / "fixed.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "moving.nii.gz", moving.data, moving.affine)
    model, out = TrainedModel(CentreOfMassNet(), SIZE), tmp_path / "out"
    report = register_files(fixed_path, moving_path, model, out, qc=False)
    assert report.qc is None and "QC figure" not in report.timings
    assert sorted(path.name for path in out.iterdir()) == ["ddf.nii.gz", "jacobian.nii.gz", "warped.nii.gz"]
    report = register_files(fixed_path, moving_path, model, out, overwrite=True)  # the figure added on a rerun
    assert report.qc == out / "qc.png" and report.qc.is_file() and report.timings["QC figure"] > 0


def test_a_failed_registration_leaves_no_folder(tmp_path, monkeypatch):
    fixed, moving = fixed_volume(), moving_volume()
    fixed_path = write_nifti(tmp_path / "fixed.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "moving.nii.gz", moving.data, moving.affine)

    def fail(*args, **kwargs):
        raise RuntimeError("killed while writing the QC picture")

    monkeypatch.setattr("monai_mine.apps.registration.register._write_qc", fail)
    with pytest.raises(RuntimeError, match="killed"):
        register_files(fixed_path, moving_path, TrainedModel(CentreOfMassNet(), SIZE), tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fixed.nii.gz", "moving.nii.gz"]


def test_label_outputs_must_have_distinct_names(tmp_path):
    fixed, moving = fixed_volume(), moving_volume()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [
        write_nifti(tmp_path / sub / "seg.nii.gz", np.zeros(MOVING_SHAPE, np.uint8), moving.affine)
        for sub in ("a", "b")
    ]
    fixed_path = write_nifti(tmp_path / "f.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "m.nii.gz", moving.data, moving.affine)
    with pytest.raises(ValueError, match=r"same output \['warped_seg\.nii\.gz'\]"):
        register_files(
            fixed_path, moving_path, TrainedModel(CentreOfMassNet(), SIZE), tmp_path / "out", moving_labels=paths
        )
    assert not (tmp_path / "out").exists()


class FoldingNet(torch.nn.Module):
    """A "network" whose DDF mirrors the first axis about the grid's centre: x + ddf(x) = c - (x - c), it folds
    everywhere."""

    total_stride = 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[2]
        ddf = torch.zeros(image.shape[0], 3, *image.shape[2:])
        ddf[:, 0] = (-2.0 * (torch.arange(size, dtype=torch.float32) - (size - 1) / 2)).view(1, size, 1, 1)
        return ddf


def test_register_prints_folding_and_warns_above_one_percent(tmp_path, caplog):
    fixed, moving = fixed_volume(), moving_volume()
    fixed_path = write_nifti(tmp_path / "f.nii.gz", fixed.data, fixed.affine)
    moving_path = write_nifti(tmp_path / "m.nii.gz", moving.data, moving.affine)
    folding = register_files(fixed_path, moving_path, TrainedModel(FoldingNet(), SIZE), tmp_path / "folds")
    assert folding.folding_percent > 1.0
    summary = folding.summary()
    assert f"folding {folding.folding_percent:.3f} %" in summary
    assert f"WARNING: the DDF folds {folding.folding_percent:.2f} % of the fixed voxels" in summary
    assert "above 1 %" in summary and any("WARNING: the DDF folds" in r.getMessage() for r in caplog.records)
    smooth = register_files(fixed_path, moving_path, TrainedModel(ConstantNet([1.0, 0.0, 0.0]), SIZE), tmp_path / "ok")
    assert smooth.folding_percent == 0.0 and "WARNING" not in smooth.summary()


def test_register_volumes_refines_the_ddf_on_the_fixed_grid(tmp_path):
    checkpoint = untrained_checkpoint("vtn_addd", tmp_path / "untrained.pt")
    bundle = load_trained_model(REPOSITORY / "bundles" / "vtn_addd", checkpoint, overrides={"image_size": 16})
    fixed, moving = shifted_pair()
    plain = register_volumes(fixed, moving, bundle)
    refined = register_volumes(fixed, moving, bundle, instance_optimization=30)
    assert plain.instance is None
    assert refined.instance.steps == 60 and refined.instance.levels == ((29, 32, 24), (36, 40, 30))
    assert refined.ddf.shape == (3, 36, 40, 30)
    torch.testing.assert_close(refined.working_ddf, plain.working_ddf)  # the network's own DDF is kept apart
    fixed_image = torch.as_tensor(fixed.data, dtype=torch.float32)

    def misfit(result) -> float:
        return float((result.warped[0] - fixed_image).square().mean())

    assert misfit(refined) < 0.8 * misfit(plain)
    custom = InstanceOptimizer(steps=2, levels=(16,), similarity="correlation")
    assert register_volumes(fixed, moving, bundle, instance_optimization=custom).instance.steps == 2
    with pytest.raises(
        ValueError, match="instance_optimization -1: expected a whole number of Adam steps per level from 0 to 10000"
    ):
        register_volumes(fixed, moving, bundle, instance_optimization=-1)


def test_register_gives_a_preset_and_its_explicit_schedule_the_same_ddf_bit_for_bit(tmp_path):
    checkpoint = untrained_checkpoint("vtn_addd", tmp_path / "untrained.pt")
    bundle = load_trained_model(REPOSITORY / "bundles" / "vtn_addd", checkpoint, overrides={"image_size": 16})
    fixed, moving = shifted_pair((20, 22, 18), (24, 18, 20))
    preset = register_volumes(fixed, moving, bundle, instance_optimization="balanced")
    explicit = register_volumes(fixed, moving, bundle, instance_optimization="50/50/10")
    assert torch.equal(preset.ddf, explicit.ddf) and torch.equal(preset.warped, explicit.warped)
    assert preset.instance.steps == 110 and preset.instance.levels[-1] == (20, 22, 18)  # full resolution last
    assert preset.instance.loss_after <= preset.instance.loss_before
    # the bundle's configs are left as they were: the network alone next
    assert register_volumes(fixed, moving, bundle).instance is None
    assert bundle.config["instance_optimization_steps"] == 0
