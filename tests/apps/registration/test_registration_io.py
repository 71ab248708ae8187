"""Reading inputs with errors that name the file, and writing volumes and DDFs on a reference grid."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import torch
from registration_cases import CentreOfMassNet, grid_affine, two_blobs

from monai_mine.apps.registration import (
    Volume,
    load_ddf,
    load_volume,
    register_files,
    save_ddf,
    save_volume,
)
from monai_mine.bundle import TrainedModel
from tests.helpers import write_dicom_series, write_nifti

AFFINE = grid_affine((1.2, 1.0, 2.0), (0.0, 0.0, 0.0), "LPS", shape=(12, 10, 8))
IMAGE = two_blobs((12, 10, 8), AFFINE)


def test_reads_3d_images_and_drops_trailing_singleton_axes(tmp_path):
    volume = load_volume(write_nifti(tmp_path / "a.nii.gz", IMAGE[..., None], AFFINE), "fixed image")
    assert volume.data.shape == (12, 10, 8) and volume.data.dtype == np.float32
    np.testing.assert_allclose(volume.affine, AFFINE)
    assert volume.grid.axcodes == "LPS" and volume.grid.spacing == pytest.approx((1.2, 1.0, 2.0))


@pytest.mark.parametrize(
    "data, message",
    [
        (np.random.rand(12, 10).astype(np.float32), r"has shape \(12, 10\); expected a 3D volume"),
        (np.random.rand(12, 10, 8, 2).astype(np.float32), r"has shape \(12, 10, 8, 2\); expected a 3D volume"),
        (np.random.rand(12, 10, 1).astype(np.float32), r"at least 2 voxels along each axis \(is it a 2D slice\?\)"),
        (np.full((12, 10, 8), 3.0, np.float32), r"is constant \(every voxel is 3\.0\)"),
        (np.where(IMAGE > 0.5, np.nan, IMAGE).astype(np.float32), r"has \d+ NaN or infinite voxel"),
    ],
    ids=["2d", "4d", "thin", "constant", "nan"],
)
def test_bad_images_are_refused_naming_the_file(tmp_path, data, message):
    path = write_nifti(tmp_path / "bad_input.nii.gz", data, np.eye(4))
    with pytest.raises(ValueError, match=rf"moving image .*bad_input\.nii\.gz.*{message}"):
        load_volume(path, "moving image")


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".mgz"])
def test_other_formats_read_as_the_same_volume(tmp_path, suffix):
    """MetaImage and NRRD (through ITK, LPS on disk) and MGZ (nibabel) give the NIfTI file's voxels and RAS affine."""
    import itk

    reference = load_volume(write_nifti(tmp_path / "a.nii.gz", IMAGE, AFFINE), "fixed image")
    path = tmp_path / f"a{suffix}"
    if suffix == ".mgz":
        nib.save(nib.MGHImage(IMAGE.astype(np.float32), AFFINE), path)
    else:
        itk.imwrite(itk.imread(str(tmp_path / "a.nii.gz")), str(path))
    volume = load_volume(path, "fixed image")
    np.testing.assert_allclose(volume.data, reference.data, atol=1e-6)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-5)


def test_a_dicom_series_folder_reads_with_its_world_coordinates(tmp_path):
    volume = (np.arange(8 * 10 * 6).reshape(8, 10, 6) % 97).astype(np.int16)
    write_dicom_series(volume, (1.5, 2.0, 2.5), (10.0, -5.0, 3.0), tmp_path / "series")
    loaded = load_volume(tmp_path / "series", "fixed image")
    np.testing.assert_array_equal(loaded.data, volume)
    # DICOM's LPS positions in NIfTI's RAS world: x and y change sign
    expected = np.array([[-1.5, 0, 0, -10.0], [0, -2.0, 0, 5.0], [0, 0, 2.5, 3.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(loaded.grid.affine, expected, atol=1e-4)


def test_missing_unreadable_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fixed image .*absent\.nii\.gz does not exist"):
        load_volume(tmp_path / "absent.nii.gz", "fixed image")
    (tmp_path / "no_dicom").mkdir()
    with pytest.raises(ValueError, match=r"cannot read fixed image .*no_dicom as a DICOM series folder: no DICOMs"):
        load_volume(tmp_path / "no_dicom", "fixed image")
    broken = tmp_path / "broken.mha"
    broken.write_bytes(b"ObjectType = Image\nNDims = banana\n")
    with pytest.raises(ValueError, match=r"cannot read fixed image .*broken\.mha as an ITK image"):
        load_volume(broken, "fixed image")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"this is not an image" * 40)
    with pytest.raises(ValueError, match=r"cannot read fixed image .*garbage\.nii\.gz as a NIfTI image"):
        load_volume(garbage, "fixed image")
    plain = tmp_path / "noise.nii"
    plain.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"cannot read fixed image .*noise\.nii as a NIfTI image"):
        load_volume(plain, "fixed image")
    whole = write_nifti(tmp_path / "whole.nii", IMAGE, AFFINE).read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(whole)[:-400])
    with pytest.raises(ValueError, match=r"cannot read the voxels of fixed image .*truncated\.nii\.gz"):
        load_volume(truncated, "fixed image")


def test_label_maps(tmp_path):
    labels = np.zeros((12, 10, 8), np.float32)
    labels[2:6, 3:7, 1:5] = 3.0
    volume = load_volume(write_nifti(tmp_path / "seg.nii.gz", labels, AFFINE), "moving label", label=True)
    assert volume.data.dtype == np.int32 and set(np.unique(volume.data)) == {0, 3}
    labels[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match=r"moving label .*soft\.nii\.gz is not a label map"):
        load_volume(write_nifti(tmp_path / "soft.nii.gz", labels, AFFINE), "moving label", label=True)
    constant = load_volume(write_nifti(tmp_path / "empty.nii.gz", np.zeros((4, 4, 4), np.uint8), AFFINE), label=True)
    assert constant.data.dtype == np.uint8  # an empty label map is allowed (nothing to warp but zeros)


def test_ddf_files_round_trip_as_5d_vector_nifti(tmp_path):
    reference = Volume(IMAGE, AFFINE)
    ddf = torch.randn(3, 12, 10, 8)
    path = save_ddf(ddf, tmp_path / "ddf.nii.gz", reference)
    image = nib.load(path)
    assert image.shape == (12, 10, 8, 1, 3) and image.header.get_intent()[0] == "vector"
    assert b"voxels" in image.header["descrip"].tobytes()
    np.testing.assert_allclose(image.affine, AFFINE, atol=1e-6)
    loaded, grid_volume = load_ddf(path)
    torch.testing.assert_close(loaded, ddf)
    assert grid_volume.grid.same_as(reference.grid)
    four_d = write_nifti(tmp_path / "ddf4.nii.gz", np.moveaxis(ddf.numpy(), 0, -1), AFFINE)  # bundle inference layout
    torch.testing.assert_close(load_ddf(four_d)[0], ddf)
    with pytest.raises(ValueError, match=r"DDF .*image\.nii\.gz has shape \(12, 10, 8\); expected a displacement"):
        load_ddf(write_nifti(tmp_path / "image.nii.gz", IMAGE, AFFINE))


def test_outputs_keep_the_reference_grid_and_header_codes(tmp_path):
    source = tmp_path / "fixed.nii.gz"
    image = nib.Nifti1Image(IMAGE, AFFINE)
    image.set_qform(AFFINE, code=1)
    image.set_sform(AFFINE, code=4)
    nib.save(image, source)
    reference = load_volume(source)
    written = nib.load(save_volume(torch.from_numpy(IMAGE)[None].double(), tmp_path / "out.nii.gz", reference))
    assert written.get_data_dtype() == np.float32
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 4
    np.testing.assert_allclose(written.affine, AFFINE, atol=1e-6)
    labels = nib.load(save_volume(np.zeros((12, 10, 8), np.int64), tmp_path / "labels.nii.gz", reference))
    assert labels.get_data_dtype() == np.int32
    with pytest.raises(ValueError, match=r"wrong\.nii\.gz must have shape \(12, 10, 8\)"):
        save_volume(np.zeros((4, 4, 4)), tmp_path / "wrong.nii.gz", reference)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".mgz", ".nii"])
def test_images_are_written_in_the_format_their_name_ends_with(tmp_path, suffix):
    reference = load_volume(write_nifti(tmp_path / "fixed.nii.gz", IMAGE, AFFINE), "fixed image")
    labels = (IMAGE > 0.5).astype(np.int16)
    for name, data in (("image", IMAGE), ("labels", labels)):
        path = save_volume(data, tmp_path / f"{name}{suffix}", reference)
        back = load_volume(path, name, label=name == "labels")
        np.testing.assert_allclose(back.data, data, atol=1e-6)
        np.testing.assert_allclose(back.affine, AFFINE, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fixed.nii.gz", f"image{suffix}", f"labels{suffix}"])


def test_register_files_writes_the_warped_images_in_the_fixed_images_format(tmp_path):
    import itk

    fixed = write_nifti(tmp_path / "fixed.nii.gz", IMAGE, AFFINE)
    itk.imwrite(itk.imread(str(fixed)), str(tmp_path / "fixed.mha"))
    label = write_nifti(tmp_path / "seg.nii.gz", (IMAGE > 0.5).astype(np.int16), AFFINE)
    report = register_files(
        tmp_path / "fixed.mha", fixed, TrainedModel(CentreOfMassNet(), 16), tmp_path / "out", moving_labels=[label]
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["ddf.nii.gz", "jacobian.nii.gz", "qc.png", "warped.mha", "warped_seg.mha"]
    assert report.warped == tmp_path / "out" / "warped.mha"
    warped = load_volume(report.warped, "warped image")
    np.testing.assert_allclose(warped.affine, AFFINE, atol=1e-4)
    np.testing.assert_allclose(warped.data, IMAGE, atol=0.05)  # the image registered to itself


def test_register_files_names_the_bad_input_and_writes_nothing(tmp_path):
    fixed = write_nifti(tmp_path / "fixed.nii.gz", IMAGE, AFFINE)
    series = write_nifti(tmp_path / "series.nii.gz", np.stack([IMAGE, IMAGE], -1), AFFINE)
    bundle = TrainedModel(CentreOfMassNet(), 16)
    with pytest.raises(ValueError, match=r"moving image .*series\.nii\.gz has shape \(12, 10, 8, 2\)"):
        register_files(fixed, series, bundle, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"moving label .*nolabel\.nii\.gz does not exist"):
        register_files(fixed, fixed, bundle, tmp_path / "out", moving_labels=[tmp_path / "nolabel.nii.gz"])
    assert not (tmp_path / "out").exists()
