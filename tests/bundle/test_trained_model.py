"""Loading a bundle's trained network for registering files: both weights kinds, the objective, clear errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from monai_mine.bundle import TrainedModel, load_trained_model
from monai_mine.losses import LocalCorrelationLoss
from monai_mine.optimization import InstanceOptimizer
from tests.helpers import REPOSITORY, untrained_checkpoint

VTN = REPOSITORY / "bundles" / "vtn_addd"
MIREGNET = REPOSITORY / "bundles" / "miregnet"


def test_weights_and_training_checkpoints_load_the_same_network(tmp_path):
    weights = untrained_checkpoint("vtn_addd", tmp_path / "weights.pt", seed=3)
    training = untrained_checkpoint("vtn_addd", tmp_path / "training.pt", seed=3, training=True)
    first, second = load_trained_model(VTN, weights), load_trained_model(VTN, training)
    assert first.name == "vtn_addd" and first.image_size == 64 and first.intensity is not None
    assert not first.network.training and first.weights == weights and first.record is None
    for (name, a), (_, b) in zip(first.network.state_dict().items(), second.network.state_dict().items()):
        assert torch.equal(a, b), name
    assert load_trained_model(VTN, weights, overrides={"image_size": 32}).image_size == 32


def test_checkpoint_of_another_variant_is_refused(tmp_path):
    other = untrained_checkpoint("miregnet", tmp_path / "miregnet_model.pt")
    with pytest.raises(ValueError, match=r"miregnet_model\.pt does not fit the network of bundle 'vtn_addd'.*another"):
        load_trained_model(VTN, other)


def test_corrupt_missing_and_foreign_checkpoints_are_named(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 50)
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*corrupt\.pt: not a complete PyTorch file"):
        load_trained_model(VTN, corrupt)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(untrained_checkpoint("vtn_addd", tmp_path / "full.pt").read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*truncated\.pt"):
        load_trained_model(VTN, truncated)
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*absent\.pt does not exist"):
        load_trained_model(VTN, tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"epoch": 3, "note": "no weights"}, foreign)
    with pytest.raises(ValueError, match=r"foreign\.pt holds neither network weights"):
        load_trained_model(VTN, foreign)


def test_bundle_without_trained_weights_or_configs(tmp_path):
    copy = tmp_path / "vtn_addd"
    shutil.copytree(VTN / "configs", copy / "configs")
    with pytest.raises(FileNotFoundError, match=r"no trained weights at .*models/model\.pt: train it first"):
        load_trained_model(copy)
    with pytest.raises(FileNotFoundError, match=r"bundle .*nowhere does not exist"):
        load_trained_model(tmp_path / "nowhere")
    (tmp_path / "empty" / "models").mkdir(parents=True)
    untrained_checkpoint("vtn_addd", tmp_path / "empty" / "models" / "model.pt")
    with pytest.raises(FileNotFoundError, match=r"config file .*configs/train\.json of bundle .*empty does not exist"):
        load_trained_model(tmp_path / "empty")


def test_image_size_must_fit_the_network_stride(tmp_path):
    weights = untrained_checkpoint("vtn_addd", tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"image_size 36 of bundle 'vtn_addd' must be a multiple of .* stride 8"):
        load_trained_model(VTN, weights, overrides={"image_size": 36})


@pytest.mark.parametrize("name", ["vtn_addd", "miregnet"])
def test_instance_optimizer_comes_from_the_bundle_configs_with_the_steps_asked(tmp_path, name):
    bundle = load_trained_model(REPOSITORY / "bundles" / name, untrained_checkpoint(name, tmp_path / "weights.pt"))
    optimizer = bundle.instance_optimizer(7)
    assert isinstance(optimizer, InstanceOptimizer)
    assert optimizer.steps == (7, 7) and optimizer.levels == (32, 64)  # inference.json: 32 and 64 voxels
    assert isinstance(optimizer.similarity, LocalCorrelationLoss)
    assert bundle.instance_optimizer(2).steps == (2, 2)  # a new one each time
    with pytest.raises(ValueError, match="has no instance_optimizer in its bundle configs"):
        TrainedModel(bundle.network, 64).instance_optimizer(3)
