# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Declared contracts: the shipped networks satisfy the protocols of ``monai_mine.networks.contracts``, modules
that lack a contract are refused with a message naming it, and any module that offers one is used through it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_mine.flows import affine_to_ddf
from monai_mine.losses import MINELoss
from monai_mine.networks import (
    AffineNet,
    AffineStage,
    JointMarginalCritic,
    MINECritic,
    RegistrationCascade,
    RegistrationStage,
    UNetDeformNet,
    VTNDenseNet,
    build_miregnet,
    build_vtn,
)

STAGES = {
    "AffineNet": lambda: AffineNet(channels=(4, 8), strides=(2, 2)),
    "VTNDenseNet": lambda: VTNDenseNet(channels=4, depth=3),
    "UNetDeformNet": lambda: UNetDeformNet(channels=(4, 8, 8), strides=(2, 2)),
    "vtn-AD": lambda: build_vtn("AD", channels=4, depth=3),
    "miregnet": lambda: build_miregnet(
        affine_channels=(4, 8), affine_strides=(2, 2), deform_channels=(4, 8, 8), deform_strides=(2, 2)
    ),
}


class ShiftStage(nn.Module):
    """A dense stage written outside the package: a constant shift of ``offset`` voxels along axis 0."""

    total_stride = 1

    def __init__(self, offset: float = 1.0) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        ddf = torch.zeros(image.shape[0], 3, *image.shape[2:])
        ddf[:, 0] = self.offset
        return ddf


class ScaleStage(ShiftStage):
    """An affine stage written outside the package: ``W = scale * I``, ``b = 0``."""

    def predict_affine(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = image.shape[0]
        return self.offset * torch.eye(3).expand(batch, 3, 3), torch.zeros(batch, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return affine_to_ddf(*self.predict_affine(image), image.shape[2:])


class PlainCritic(nn.Module):
    """A critic offering only ``critic(moving, fixed)``, counting its calls."""

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = critic
        self.calls = 0

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.critic(moving, fixed)


@pytest.mark.parametrize("name", list(STAGES))
def test_shipped_networks_are_registration_stages(name):
    net = STAGES[name]()
    assert isinstance(net, RegistrationStage)
    assert isinstance(net.total_stride, int)
    assert isinstance(net, AffineStage) == (name == "AffineNet")


def test_mine_critic_is_a_joint_marginal_critic():
    assert isinstance(MINECritic(), JointMarginalCritic)
    assert not isinstance(PlainCritic(MINECritic()), JointMarginalCritic)


@pytest.mark.parametrize(
    "stage", [nn.Conv3d(2, 3, 3, padding=1), ShiftStage()], ids=["no-total_stride", "float-total_stride"]
)
def test_cascade_refuses_a_module_that_is_not_a_registration_stage(stage):
    if isinstance(stage, ShiftStage):
        stage.total_stride = 2.0
    with pytest.raises(ValueError, match=r"stage 1 \(\w+\) is not a RegistrationStage .*integer total_stride"):
        RegistrationCascade([ShiftStage(), stage])


def test_cascade_runs_stages_written_elsewhere_through_their_contracts():
    cascade = RegistrationCascade([ScaleStage(0.1), ShiftStage(2.0)])
    assert cascade.stage_kinds == "AD"
    assert cascade.total_stride == 1
    records = cascade.stages(torch.rand(1, 1, 5, 4, 3), torch.rand(1, 1, 5, 4, 3))
    assert [record.kind for record in records] == ["affine", "dense"]
    torch.testing.assert_close(records[0].matrix, 0.1 * torch.eye(3)[None])
    # a shift g = (2, 0, 0) after the scaling f: (I + W) g + f = 1.1 g + W (x - c), exact (VTN eq. 19)
    expected = affine_to_ddf(0.1 * torch.eye(3)[None], torch.tensor([[2.2, 0.0, 0.0]]), (5, 4, 3))
    torch.testing.assert_close(records[1].composed_flow, expected)


def test_mine_loss_uses_joint_and_marginal_when_offered_and_two_calls_otherwise():
    moving, fixed = torch.rand(2, 1, 6, 6, 6), torch.rand(2, 1, 6, 6, 6)
    critic = MINECritic(branch_channels=(4,), head_channels=(8,))
    plain = PlainCritic(critic)
    torch.manual_seed(0)
    shared = MINELoss(critic)(moving, fixed)
    torch.manual_seed(0)
    separate = MINELoss(plain)(moving, fixed)
    assert plain.calls == 2
    torch.testing.assert_close(shared, separate)


def test_mine_loss_refuses_a_critic_that_cannot_be_called():
    with pytest.raises(TypeError, match=r"critic must be a module critic\(moving, fixed\).*got str"):
        MINELoss("MINECritic")
