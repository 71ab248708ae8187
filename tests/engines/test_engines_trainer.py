"""RegistrationTrainer: learning, its output, the MINE critic, the reverse pass, non-finite losses and AMP."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from ignite.engine import Events
from monai.losses import DiceLoss
from torch import nn
from torch.utils.data import DataLoader, Dataset

from monai_mine.engines import RegistrationTrainer, autocast_context, loss_and_terms
from monai_mine.losses import (
    AffineTerm,
    CorrelationCoefficientLoss,
    FlowTerm,
    InvertibilityLoss,
    InvertibilityTerm,
    LabelTerm,
    MINELoss,
    OrthogonalityLoss,
    RegistrationObjective,
    SimilarityTerm,
    TotalVariationLoss,
)
from monai_mine.networks.mine_critic import MINECritic


def cc_objective(*extra) -> RegistrationObjective:
    return RegistrationObjective([SimilarityTerm(CorrelationCoefficientLoss(), name="cc"), *extra])


def make_trainer(network, objective, data, max_epochs=1, batch_size=1, lr=1e-2, **kwargs) -> RegistrationTrainer:
    params = [{"params": network.parameters()}]
    if list(objective.parameters()):
        params.append({"params": objective.parameters(), "lr": 1e-3})
    optimizer = torch.optim.Adam(params, lr=lr)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    return RegistrationTrainer("cpu", max_epochs, loader, network, optimizer, objective, **kwargs)


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_training_learns_a_known_translation(tiny_vtn, blob):
    """Moving blob 2 voxels along x from the fixed one: the affine stage must learn b close to (2, 0, 0)."""
    network = tiny_vtn("A")
    data = [{"moving_image": blob(2.0), "fixed_image": blob(0.0)}]
    trainer = make_trainer(network, cc_objective(), data, max_epochs=15, lr=2e-2)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    trainer.run()
    assert trainer.state.iteration == 15
    assert losses[-1] < 0.25 * losses[0], losses
    with torch.no_grad():
        _, translation = network.subnetworks[0].predict_affine(torch.cat([blob(2.0), blob(0.0)])[None])
    assert translation[0, 0] > 1.0, translation
    assert translation[0, 1:].abs().max() < 0.5, translation


def test_output_holds_image_pred_loss_and_every_term(tiny_vtn, random_pairs):
    network = tiny_vtn("AD")
    objective = cc_objective(
        FlowTerm(TotalVariationLoss(), weight=0.5, name="tv"),
        SimilarityTerm(nn.MSELoss(), weight=0.0, stage=0, name="mse_affine"),
    )
    data = random_pairs(2)
    trainer = make_trainer(network, objective, data, batch_size=2)
    trainer.run()
    output = trainer.state.output
    assert set(output) == {"image", "pred", "loss", "loss_terms"}
    assert output["image"].shape == (2, 2, 16, 16, 16)
    assert torch.equal(output["image"][:, 0], torch.stack([item["moving_image"][0] for item in data]))
    assert output["pred"].shape == (2, 3, 16, 16, 16) and not output["pred"].requires_grad
    assert not output["loss"].requires_grad
    terms = output["loss_terms"]
    assert list(terms) == ["cc", "tv", "mse_affine"]
    torch.testing.assert_close(output["loss"], terms["cc"] + 0.5 * terms["tv"])
    assert terms["mse_affine"] > 0  # reported although its weight is 0

    logged = loss_and_terms(output)
    assert set(logged) == {"loss", "cc", "tv", "mse_affine"}
    assert all(isinstance(value, float) for value in logged.values())
    assert logged["loss"] == pytest.approx(float(output["loss"]))
    assert logged["tv"] == pytest.approx(float(terms["tv"]))


def test_loss_and_terms_without_terms_gives_the_loss_only():
    assert loss_and_terms({"loss": torch.tensor(0.25)}) == {"loss": 0.25}


def test_pred_is_the_total_ddf_of_the_cascade(tiny_vtn, random_pairs):
    network = tiny_vtn("AD")
    data = random_pairs(1)
    trainer = make_trainer(network, cc_objective(), data, lr=0.0)  # no update: pred equals the network's DDF
    trainer.run()
    image = torch.cat([data[0]["moving_image"], data[0]["fixed_image"]])[None]
    with torch.no_grad():
        torch.testing.assert_close(trainer.state.output["pred"], network(image))


def test_the_mine_critic_trains_with_the_network(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    critic = MINECritic(branch_channels=(4,), head_channels=(8,))
    objective = RegistrationObjective([SimilarityTerm(MINELoss(critic=critic), name="mine")])
    trainer = make_trainer(network, objective, random_pairs(2))
    assert len(trainer.optimizer.param_groups) == 2
    critic_before, network_before = snapshot(critic), snapshot(network)
    trainer.run()
    assert changed(critic_before, critic), "the critic's parameters did not change"
    assert changed(network_before, network)
    assert "mine" in trainer.state.output["loss_terms"]


@pytest.mark.parametrize("optim_set_to_none", [True, False], ids=["set_to_none", "default-zero-grad"])
def test_critic_warmup_trains_only_the_critic_then_both(tiny_vtn, random_pairs, optim_set_to_none):
    network = tiny_vtn("A")
    critic = MINECritic(branch_channels=(4,), head_channels=(8,))
    objective = RegistrationObjective([SimilarityTerm(MINELoss(critic=critic), name="mine")])
    trainer = make_trainer(
        network, objective, random_pairs(2), critic_warmup_iterations=2, optim_set_to_none=optim_set_to_none
    )
    network_before, critic_before = snapshot(network), snapshot(critic)
    trainer.run()  # iterations 1-2: the warm-up
    assert trainer.state.iteration == 2
    assert not changed(network_before, network), "the network changed during the critic warm-up"
    assert changed(critic_before, critic)
    trainer.state.max_epochs = 2
    trainer.run()  # iteration 3-4: a resumed run does not warm up again
    assert trainer.state.iteration == 4
    assert changed(network_before, network)


def test_critic_warmup_needs_a_critic(tiny_vtn, random_pairs):
    with pytest.raises(ValueError, match="no parameters to train"):
        make_trainer(tiny_vtn("A"), cc_objective(), random_pairs(2), critic_warmup_iterations=3)
    critic_objective = RegistrationObjective([SimilarityTerm(MINELoss(), name="mine")])
    with pytest.raises(ValueError, match="critic_warmup_iterations must be >= 0"):
        make_trainer(tiny_vtn("A"), critic_objective, random_pairs(2), critic_warmup_iterations=-1)


def test_an_invertibility_term_runs_forward_and_reverse_pairs_as_one_doubled_batch(tiny_vtn, random_pairs):
    network = tiny_vtn("AD")
    inputs = []
    network.register_forward_hook(lambda module, args, output: inputs.append(args[0].detach().clone()))
    objective = cc_objective(InvertibilityTerm(InvertibilityLoss(), weight=0.1, name="inv"))
    data = random_pairs(2)
    trainer = make_trainer(network, objective, data, batch_size=2)
    trainer.run()
    assert len(inputs) == 1
    (image,) = inputs
    moving = torch.stack([item["moving_image"] for item in data])
    fixed = torch.stack([item["fixed_image"] for item in data])
    assert image.shape == (4, 2, 16, 16, 16)
    assert torch.equal(image[:2], torch.cat([moving, fixed], dim=1))
    assert torch.equal(image[2:], torch.cat([fixed, moving], dim=1))
    assert trainer.state.output["loss_terms"]["inv"] > 0
    assert trainer.state.output["pred"].shape == (2, 3, 16, 16, 16)


def test_without_a_reverse_term_the_network_sees_only_the_forward_pairs(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    shapes = []
    network.register_forward_hook(lambda module, args, output: shapes.append(tuple(args[0].shape)))
    make_trainer(network, cc_objective(), random_pairs(2), batch_size=2).run()
    assert shapes == [(2, 2, 16, 16, 16)]


def test_nan_in_the_fixed_image_raises_naming_the_terms_before_any_update(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    data = random_pairs(1)
    data[0]["fixed_image"][0, 3, 3, 3] = float("nan")
    objective = RegistrationObjective(
        [
            SimilarityTerm(CorrelationCoefficientLoss(), name="cc"),
            AffineTerm(OrthogonalityLoss(), weight=0.1, stage=0, name="orthogonality"),
        ]
    )
    trainer = make_trainer(network, objective, data)
    before = snapshot(network)
    message = r"training loss is nan at iteration 1; non-finite terms: \['cc', 'orthogonality'\]"
    with pytest.raises(FloatingPointError, match=message):
        trainer.run()
    assert not changed(before, network), "the optimiser stepped on a non-finite loss"


class _InfiniteLoss(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().mean() + float("inf")


def test_a_non_finite_term_is_named_alone_among_finite_ones(tiny_vtn, random_pairs):
    objective = cc_objective(SimilarityTerm(_InfiniteLoss(), weight=0.5, name="broken"))
    trainer = make_trainer(tiny_vtn("A"), objective, random_pairs(1))
    with pytest.raises(
        FloatingPointError, match=r"training loss is inf at iteration 1; non-finite terms: \['broken'\]"
    ):
        trainer.run()


def test_amp_on_cpu_runs_in_bfloat16_and_gives_a_finite_loss(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    seen = []
    network.register_forward_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
    )
    trainer = make_trainer(network, cc_objective(), random_pairs(1), amp=True)
    before = snapshot(network)
    trainer.run()
    assert seen == [(True, torch.bfloat16)]
    assert trainer.scaler is None or not trainer.scaler.is_enabled()  # no gradient scaling for bfloat16 on CPU
    loss = trainer.state.output["loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert changed(before, network)
    assert all(p.dtype == torch.float32 for p in network.parameters())


def test_a_label_term_without_labels_raises(tiny_vtn, random_pairs):
    objective = cc_objective(LabelTerm(DiceLoss(include_background=False), name="dice"))
    trainer = make_trainer(tiny_vtn("A"), objective, random_pairs(1))
    with pytest.raises(ValueError, match="this objective has a label term, so every training pair needs moving_label"):
        trainer.run()


def test_a_label_term_trains_on_labelled_pairs(tiny_vtn, random_pairs, cube):
    data = random_pairs(1)
    data[0].update(moving_label=cube(4, 10), fixed_label=cube(6, 12))
    objective = cc_objective(LabelTerm(DiceLoss(include_background=False), name="dice"))
    trainer = make_trainer(tiny_vtn("A"), objective, data)
    trainer.run()
    assert 0 < float(trainer.state.output["loss_terms"]["dice"]) < 1


def test_the_objective_must_be_a_registration_objective(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    with pytest.raises(TypeError, match="objective must be a RegistrationObjective, got MSELoss"):
        RegistrationTrainer(
            "cpu", 1, DataLoader(random_pairs(1)), network, torch.optim.SGD(network.parameters(), 0.1), nn.MSELoss()
        )


class _EpochDataset(Dataset):
    def __init__(self, items) -> None:
        self.items, self.epochs = items, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def test_an_unpaired_dataset_is_told_each_epoch(tiny_vtn, random_pairs):
    dataset = _EpochDataset(random_pairs(1))
    make_trainer(tiny_vtn("A"), cc_objective(), dataset, max_epochs=2).run()
    assert dataset.epochs == [1, 2]


def test_autocast_context():
    assert isinstance(autocast_context(torch.device("cpu"), enabled=False), nullcontext)
    with autocast_context(torch.device("cpu"), enabled=True):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_context(torch.device("cpu"), enabled=True, dtype="float16"):
        assert torch.get_autocast_dtype("cpu") == torch.float16
    assert not torch.is_autocast_enabled("cpu")
