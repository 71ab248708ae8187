"""RegistrationWriter (NIfTI per pair) and RegistrationMetricsWriter (metrics.csv and its summary)."""

from __future__ import annotations

import csv
import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_mine.engines import (
    RegistrationEvaluator,
    RegistrationMetricsWriter,
    RegistrationWriter,
    pair_name,
    voxel_spacing,
)
from monai_mine.metrics import dice_per_label


def evaluate(network, data, handlers, batch_size=2) -> RegistrationEvaluator:
    evaluator = RegistrationEvaluator(
        "cpu", DataLoader(data, batch_size=batch_size, shuffle=False), network, val_handlers=handlers
    )
    evaluator.run()
    return evaluator


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------------------ RegistrationWriter


def test_writer_names_files_by_pair_and_uses_the_fixed_affine(tmp_path, tiny_vtn, meta_pairs):
    data = meta_pairs(3)
    writer = RegistrationWriter(tmp_path / "out")
    network = tiny_vtn("AD")
    evaluate(network, data, [writer])
    expected = sorted(
        f"moving_{i}_to_fixed_{i}_{output}.nii.gz" for i in range(3) for output in ("warped", "ddf", "warped_label")
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected  # no temporary files left
    assert writer.pairs_written == 3 and len(writer.written) == 9

    network.eval()
    for index, pair in enumerate(data):
        fixed_affine = pair["fixed_image"].affine.numpy()
        assert not np.allclose(fixed_affine, pair["moving_image"].affine.numpy())
        stem = tmp_path / "out" / f"moving_{index}_to_fixed_{index}"
        with torch.no_grad():
            ddf = network(torch.cat([pair["moving_image"], pair["fixed_image"]]).as_tensor()[None])[0]
        for output in ("warped", "ddf", "warped_label"):
            np.testing.assert_allclose(nib.load(f"{stem}_{output}.nii.gz").affine, fixed_affine)
        ddf_file = nib.load(f"{stem}_ddf.nii.gz")
        assert ddf_file.shape == (16, 16, 16, 3)  # vector image: channels last
        np.testing.assert_allclose(ddf_file.get_fdata(), ddf.permute(1, 2, 3, 0).numpy(), atol=1e-5)
        assert nib.load(f"{stem}_warped.nii.gz").shape == (16, 16, 16)
        label = nib.load(f"{stem}_warped_label.nii.gz")
        assert np.issubdtype(label.get_data_dtype(), np.integer)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) == {0, 1}


def test_writer_with_the_identity_transform_writes_the_moving_image_and_label(tmp_path, zero_flow, meta_pairs):
    data = meta_pairs(1)
    evaluate(zero_flow, data, [RegistrationWriter(tmp_path)], batch_size=1)
    warped = nib.load(tmp_path / "moving_0_to_fixed_0_warped.nii.gz").get_fdata()
    np.testing.assert_allclose(warped, data[0]["moving_image"][0].numpy(), atol=1e-6)
    label = np.asarray(nib.load(tmp_path / "moving_0_to_fixed_0_warped_label.nii.gz").dataobj)
    np.testing.assert_array_equal(label, data[0]["moving_label"][0].numpy())
    assert np.all(nib.load(tmp_path / "moving_0_to_fixed_0_ddf.nii.gz").get_fdata() == 0)


def test_writer_writes_only_the_chosen_outputs_and_skips_missing_labels(tmp_path, zero_flow, meta_pairs):
    data = meta_pairs(2, labels=False)
    writer = RegistrationWriter(tmp_path, outputs=("ddf", "warped_label"))
    evaluate(zero_flow, data, [writer])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "moving_0_to_fixed_0_ddf.nii.gz",
        "moving_1_to_fixed_1_ddf.nii.gz",
    ]


def test_writer_restarts_its_record_on_each_run(tmp_path, zero_flow, meta_pairs):
    writer = RegistrationWriter(tmp_path, outputs=("warped",))
    evaluator = evaluate(zero_flow, meta_pairs(2), [writer])
    evaluator.run()
    assert writer.pairs_written == 2 and len(writer.written) == 2


def test_writer_replaces_an_earlier_run_as_a_whole_and_a_failed_run_changes_nothing(tmp_path, zero_flow, meta_pairs):
    out = tmp_path / "out"
    evaluate(zero_flow, meta_pairs(3), [RegistrationWriter(out, outputs=("ddf",))])
    evaluate(zero_flow, meta_pairs(1), [RegistrationWriter(out, outputs=("warped",))])
    assert sorted(p.name for p in out.iterdir()) == ["moving_0_to_fixed_0_warped.nii.gz"]  # no earlier file mixed in
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class FailingOnTheSecondBatch(torch.nn.Module):
        calls = 0

        def forward(self, image):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("out of memory on the second batch")
            return zero_flow(image)

    with pytest.raises(RuntimeError, match="out of memory on the second batch"):
        evaluate(FailingOnTheSecondBatch(), meta_pairs(3), [RegistrationWriter(out, outputs=("ddf",))], batch_size=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left beside it


def test_an_unfinished_run_is_dropped_not_published_by_the_next_one(tmp_path, zero_flow, meta_pairs):
    out = tmp_path / "out"
    writer = RegistrationWriter(out, outputs=("ddf",))
    evaluate(zero_flow, meta_pairs(1), [writer])
    writer.reset()  # a run that wrote a file and never completed (another handler stopped it on an error)
    (writer._staging / "partial_to_run_ddf.nii.gz").write_bytes(b"")
    writer.reset()  # the next run starts
    assert sorted(p.name for p in out.iterdir()) == ["moving_0_to_fixed_0_ddf.nii.gz"]
    others = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("out", ".out.lock"))  # the writers' lock stays
    assert len(others) == 1 and others[0].startswith(".out.partial-")  # the new run's staging folder only
    writer._discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_writer_refuses_a_folder_holding_other_files(tmp_path, zero_flow, meta_pairs):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match=r"holds files that this command does not write \(notes.txt\)"):
        evaluate(zero_flow, meta_pairs(1), [RegistrationWriter(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_writer_rejects_unknown_outputs(tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("unknown outputs ['jacobian']; choose from ['warped', 'ddf', 'warped_label']")
    ):
        RegistrationWriter(tmp_path, outputs=("warped", "jacobian"))


def test_pair_name_falls_back_to_the_index_without_file_names():
    plain = {"moving": torch.zeros(1, 2, 2, 2), "fixed": torch.zeros(1, 2, 2, 2)}
    assert pair_name(plain, 7) == "pair7"
    named = {
        "moving": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "/a/case1_t1.nii.gz"}),
        "fixed": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "/b/case1_t2.mha"}),
    }
    assert pair_name(named, 7) == "case1_t1_to_case1_t2"


def test_voxel_spacing_from_the_affine():
    affine = np.array([[0.0, 2.0, 0.0, 1.0], [-0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert voxel_spacing(MetaTensor(torch.zeros(1, 2, 2, 2), affine=torch.as_tensor(affine))) == (0.5, 2.0, 3.0)
    assert voxel_spacing(torch.zeros(1, 2, 2, 2)) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------ RegistrationMetricsWriter

EXPECTED_COLUMNS = [
    "pair",
    "runtime_s",
    "dice_before",
    "dice",
    "iou",
    "hd95",
    "asd",
    "dice_1",
    "iou_1",
    "hd95_1",
    "asd_1",
    "folding_percent",
    "sdlogj",
    "min_det",
    "max_det",
]


def test_metrics_csv_has_one_row_per_pair_with_every_metric(tmp_path, zero_flow, meta_pairs):
    data = meta_pairs(3, spacing=2.0)
    writer = RegistrationMetricsWriter(tmp_path)
    evaluate(zero_flow, data, [writer])
    rows = read_csv(tmp_path / "metrics.csv")
    assert [row["pair"] for row in rows] == [f"moving_{i}_to_fixed_{i}" for i in range(3)]
    assert sorted(rows[0]) == sorted(EXPECTED_COLUMNS)
    by_hand = float(torch.nanmean(dice_per_label(data[0]["moving_label"][None], data[0]["fixed_label"][None])))
    assert by_hand == pytest.approx(2 / 3)
    for row in rows:
        values = {key: float(value) for key, value in row.items() if key != "pair"}
        assert values["runtime_s"] > 0
        assert values["dice_before"] == pytest.approx(by_hand)
        assert values["dice"] == pytest.approx(2 / 3)  # the identity transform changes nothing
        assert values["iou"] == pytest.approx(0.5)
        assert values["hd95"] == pytest.approx(4.0)  # 2 voxels of 2 mm, from the fixed image's affine
        assert values["folding_percent"] == 0.0 and values["sdlogj"] == pytest.approx(0.0)
        assert values["min_det"] == pytest.approx(1.0) and values["max_det"] == pytest.approx(1.0)


def test_distances_follow_the_fixed_image_voxel_size(tmp_path, zero_flow, meta_pairs):
    evaluate(zero_flow, meta_pairs(1, spacing=1.0), [RegistrationMetricsWriter(tmp_path / "1mm")], batch_size=1)
    evaluate(zero_flow, meta_pairs(1, spacing=3.0), [RegistrationMetricsWriter(tmp_path / "3mm")], batch_size=1)
    one, three = read_csv(tmp_path / "1mm" / "metrics.csv")[0], read_csv(tmp_path / "3mm" / "metrics.csv")[0]
    assert float(one["hd95"]) == pytest.approx(2.0)
    assert float(three["hd95"]) == pytest.approx(3 * float(one["hd95"]))
    assert float(three["asd"]) == pytest.approx(3 * float(one["asd"]))
    assert float(three["dice"]) == pytest.approx(float(one["dice"]))


def test_summary_json_has_mean_std_median_per_metric(tmp_path, tiny_vtn, meta_pairs):
    writer = RegistrationMetricsWriter(tmp_path, csv_name="results.csv")
    evaluate(tiny_vtn("AD"), meta_pairs(3), [writer])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results_summary.json"]
    rows = read_csv(tmp_path / "results.csv")
    summary = json.loads((tmp_path / "results_summary.json").read_text())
    assert summary["num_pairs"] == 3
    assert set(summary["metrics"]) == set(EXPECTED_COLUMNS) - {"pair"}
    for column, stats in summary["metrics"].items():
        values = np.array([float(row[column]) for row in rows])
        assert set(stats) == {"mean", "std", "median", "min", "max", "count"}
        assert stats["count"] == 3
        assert stats["mean"] == pytest.approx(values.mean())
        assert stats["std"] == pytest.approx(values.std())
        assert stats["median"] == pytest.approx(np.median(values))
        assert stats["min"] == pytest.approx(values.min()) and stats["max"] == pytest.approx(values.max())


def test_metrics_without_labels_have_only_the_deformation_columns(tmp_path, zero_flow, meta_pairs):
    evaluate(zero_flow, meta_pairs(2, labels=False), [RegistrationMetricsWriter(tmp_path)])
    rows = read_csv(tmp_path / "metrics.csv")
    assert len(rows) == 2
    assert list(rows[0]) == ["pair", "runtime_s", "folding_percent", "sdlogj", "min_det", "max_det"]


def test_metrics_writer_starts_a_new_table_on_each_run(tmp_path, zero_flow, meta_pairs):
    writer = RegistrationMetricsWriter(tmp_path)
    evaluator = evaluate(zero_flow, meta_pairs(2), [writer])
    evaluator.run()
    assert len(writer.rows) == 2
    assert len(read_csv(tmp_path / "metrics.csv")) == 2
