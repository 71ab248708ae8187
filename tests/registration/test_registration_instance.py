"""Instance optimisation: a few steps of the bundle's own loss refine the DDF and lower that loss on the pair, and the
network's weights are restored afterwards (also after a failure)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from registration_cases import REPOSITORY, grid_affine, two_blobs, untrained_checkpoint

from monai_mine.bundle import TrainedModel, load_trained_model, read_bundle_config
from monai_mine.networks import build_miregnet
from monai_mine.registration import (
    Volume,
    instance_optimize,
    register_volumes,
)
from monai_mine.registration.instance import objective_value


def state_copy(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(network.state_dict())


def assert_same_state(network: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    for name, value in network.state_dict().items():
        assert torch.equal(value, saved[name]), f"{name} changed"


def shifted_pair() -> tuple[Volume, Volume]:
    fixed_affine = grid_affine((1.5, 1.5, 2.0), (0.0, 0.0, 0.0), "LPS", shape=(36, 40, 30))
    moving_affine = grid_affine((1.2, 1.8, 1.6), (1.0, 0.0, -1.0), "RAS", shape=(44, 34, 38))
    fixed = Volume(two_blobs((36, 40, 30), fixed_affine), fixed_affine)
    moving = Volume(two_blobs((44, 34, 38), moving_affine, shift=(3.0, -2.0, 2.0)), moving_affine)
    return fixed, moving


def test_vtn_instance_optimization_refines_lowers_the_loss_and_restores_weights(tmp_path):
    checkpoint = untrained_checkpoint("vtn_addd", tmp_path / "untrained.pt")
    bundle = load_trained_model(REPOSITORY / "bundles" / "vtn_addd", checkpoint, overrides={"image_size": 16})
    saved = state_copy(bundle.network)
    fixed, moving = shifted_pair()
    plain = register_volumes(fixed, moving, bundle)
    refined = register_volumes(fixed, moving, bundle, instance_optimization=3)
    assert refined.instance.steps == 3
    assert refined.instance.loss_after < refined.instance.loss_before
    assert (refined.working_ddf - plain.working_ddf).abs().max() > 1e-3  # the DDF changed
    assert_same_state(bundle.network, saved)
    assert not bundle.network.training
    assert all(parameter.grad is None for parameter in bundle.network.parameters())
    again = register_volumes(fixed, moving, bundle)  # the next pair sees the trained network unchanged
    torch.testing.assert_close(again.working_ddf, plain.working_ddf)


def test_loss_before_is_the_bundle_loss_of_the_trained_network(tmp_path):
    bundle = load_trained_model(
        REPOSITORY / "bundles" / "vtn_addd",
        untrained_checkpoint("vtn_addd", tmp_path / "w.pt"),
        overrides={"image_size": 16},
    )
    torch.manual_seed(0)
    moving, fixed = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    objective, optimizer = bundle.objective()
    with torch.no_grad():
        expected, records = objective_value(bundle.network, objective, moving, fixed)
    ddf, info = instance_optimize(bundle.network, objective, optimizer, moving, fixed, steps=1)
    assert info.loss_before == pytest.approx(float(expected), rel=1e-5)
    assert ddf.shape == records[-1].composed_flow.shape == (1, 3, 16, 16, 16)
    assert not torch.allclose(ddf, records[-1].composed_flow)


def tiny_miregnet() -> torch.nn.Module:
    return build_miregnet(
        affine_channels=(4, 4), affine_strides=(2, 2), deform_channels=(4, 4, 4), deform_strides=(2, 2)
    )


def test_mine_critic_trains_along_and_network_is_restored():
    """MIRegNet's objective (MINE with its critic, TV) from the bundle's train.json, on a small stand-in cascade."""
    torch.manual_seed(0)
    bundle = TrainedModel(tiny_miregnet().eval(), 16, config=read_bundle_config(REPOSITORY / "bundles" / "miregnet"))
    objective, optimizer = bundle.objective()
    critic = objective.terms[0].loss.critic
    critic_before, saved = state_copy(critic), state_copy(bundle.network)
    axes = torch.meshgrid(*[torch.arange(16.0)] * 3, indexing="ij")
    fixed = torch.exp(-sum((a - 8.0) ** 2 for a in axes) / 20.0)[None, None]
    moving = 1.0 - torch.exp(-sum((a - 7.0) ** 2 for a in axes) / 20.0)[None, None]  # the other contrast
    ddf, info = instance_optimize(bundle.network, objective, optimizer, moving, fixed, steps=2)
    assert np.isfinite([info.loss_before, info.loss_after]).all() and ddf.shape == (1, 3, 16, 16, 16)
    assert any(not torch.equal(v, critic_before[k]) for k, v in critic.state_dict().items())  # the critic trained
    assert_same_state(bundle.network, saved)


def test_weights_are_restored_after_a_failure_and_steps_are_checked():
    torch.manual_seed(0)
    bundle = TrainedModel(tiny_miregnet(), 16, config=read_bundle_config(REPOSITORY / "bundles" / "miregnet"))
    objective, optimizer = bundle.objective()
    saved = state_copy(bundle.network)
    fixed = torch.rand(1, 1, 16, 16, 16)
    moving = fixed.clone()
    moving[0, 0, 3, 3, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="instance optimisation loss is nan at step"):
        instance_optimize(bundle.network, objective, optimizer, moving, fixed, steps=2)
    assert_same_state(bundle.network, saved)
    with pytest.raises(ValueError, match="at least 1 step, got 0"):
        instance_optimize(bundle.network, objective, optimizer, fixed, fixed, steps=0)
    fixed_volume, moving_volume = shifted_pair()
    with pytest.raises(ValueError, match="instance_optimization must be >= 0 steps, got -1"):
        register_volumes(fixed_volume, moving_volume, bundle, instance_optimization=-1)
