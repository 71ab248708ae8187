"""Weights files and their records: written together, checked together, and read without running code."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
import torch

from monai_mine.bundle import ModelRecord, read_weights, record_path, save_weights, weights_record


def record() -> ModelRecord:
    return ModelRecord(bundle={"name": "toy"}, config={"image_size": 32}, training={"iterations": 5})


def test_weights_and_record_are_written_side_by_side(tmp_path):
    path = save_weights({"w": torch.arange(3.0)}, tmp_path / "model.pt", record())
    assert record_path(path) == tmp_path / "model_config.json"
    assert torch.equal(read_weights(path)["w"], torch.arange(3.0))  # a plain state dict, as CheckpointLoader reads
    loaded = weights_record(path, read_weights(path))
    assert loaded.config == {"image_size": 32} and loaded.training == {"iterations": 5} and loaded.weights_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model_config.json"]  # no temporary left


def test_a_record_of_other_weights_is_refused(tmp_path):
    path = save_weights({"w": torch.zeros(2)}, tmp_path / "model.pt", record())
    torch.save({"w": torch.ones(2)}, path)  # weights replaced after training
    with pytest.raises(ValueError, match=r"model_config\.json describes other weights than \S*model\.pt"):
        weights_record(path, read_weights(path))


def test_weights_without_a_record_load_with_a_warning(tmp_path, caplog):
    path = save_weights({"w": torch.zeros(2)}, tmp_path / "model.pt", None)
    with caplog.at_level(logging.WARNING):
        assert weights_record(path, read_weights(path)) is None
    assert "has no model record (model_config.json)" in caplog.text


def test_a_training_checkpoint_carries_its_record(tmp_path):
    torch.save({"network": {"w": torch.zeros(1)}, "model_record": record().to_dict()}, tmp_path / "checkpoint.pt")
    loaded = weights_record(tmp_path / "checkpoint.pt", read_weights(tmp_path / "checkpoint.pt"))
    assert loaded.config == {"image_size": 32} and "checkpoint.pt" in loaded.source


def test_a_broken_record_is_named(tmp_path):
    path = save_weights({"w": torch.zeros(2)}, tmp_path / "model.pt", None)
    record_path(path).write_text("{not json")
    with pytest.raises(ValueError, match=r"model_config\.json is not valid JSON"):
        weights_record(path, read_weights(path))
    record_path(path).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match=r"model_config\.json is not a monai-mine model record"):
        weights_record(path, read_weights(path))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Marker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    with open(path, "wb") as stream:
        pickle.dump({"w": Marker()}, stream)
    with pytest.raises(ValueError, match=r"cannot read checkpoint \S*model\.pt: .*only tensors and plain data"):
        read_weights(path)
    assert not marker.exists()
