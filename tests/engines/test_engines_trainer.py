"""RegistrationTrainer: learning, its output, the MINE critic, the reverse pass, non-finite losses, and MONAI's run,
AMP (amp_kwargs), gradient accumulation and compile."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.losses import DiceLoss
from torch import nn
from torch.utils.data import DataLoader, Dataset

from monai_mine.engines import RegistrationTrainer, loss_and_terms
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


def make_trainer(
    network, objective, data, max_epochs=1, batch_size=1, lr=1e-2, optimizer_class=torch.optim.Adam, **kwargs
) -> RegistrationTrainer:
    params = [{"params": network.parameters()}]
    if list(objective.parameters()):
        params.append({"params": objective.parameters(), "lr": 1e-3})
    optimizer = optimizer_class(params, lr=lr)
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


def group_gradient_norms(trainer: RegistrationTrainer) -> list[float]:
    """Each optimiser parameter group's gradient norm as the optimiser steps with it (recorded by a step hook)."""
    return [
        float(torch.nn.utils.get_total_norm([p.grad for p in group["params"] if p.grad is not None]))
        for group in trainer.optimizer.param_groups
    ]


@pytest.mark.parametrize("max_grad_norm", [None, 1e-3])
def test_max_grad_norm_caps_each_parameter_group_before_the_step(tiny_vtn, random_pairs, max_grad_norm):
    torch.manual_seed(0)
    network = tiny_vtn("A")
    objective = RegistrationObjective([SimilarityTerm(MINELoss(MINECritic(branch_channels=(4,), head_channels=(8,))))])
    trainer = make_trainer(network, objective, random_pairs(2), max_grad_norm=max_grad_norm)
    seen = []
    trainer.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: seen.append(group_gradient_norms(trainer)))
    trainer.run()
    norms = [norm for step in seen for norm in step]
    assert len(seen) == 2 and all(norm > 0 for norm in norms)
    if max_grad_norm is None:
        assert max(norms) > 1e-2  # the raw gradients: far above the cap below
    else:
        # each group scaled down to the cap (clip_grad_norm_ divides by the norm + 1e-6)
        assert norms == pytest.approx([max_grad_norm] * len(norms), rel=1e-3)


@pytest.mark.parametrize("max_grad_norm", [0.0, -1.0, float("nan"), float("inf")])
def test_max_grad_norm_must_be_positive(tiny_vtn, random_pairs, max_grad_norm):
    with pytest.raises(ValueError, match=r"max_grad_norm must be a positive number or None, got"):
        make_trainer(tiny_vtn("A"), cc_objective(), random_pairs(2), max_grad_norm=max_grad_norm)


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


@pytest.mark.filterwarnings("ignore:.*GradScaler")  # MONAI's Trainer.run makes a CUDA scaler, dropped on CPU
@pytest.mark.parametrize("amp_kwargs", [None, {"dtype": torch.bfloat16}], ids=["default", "amp_kwargs-bfloat16"])
def test_amp_on_cpu_runs_in_bfloat16_and_gives_a_finite_loss(tiny_vtn, random_pairs, amp_kwargs):
    network = tiny_vtn("A")
    seen = []
    network.register_forward_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
    )
    trainer = make_trainer(network, cc_objective(), random_pairs(1), amp=True, amp_kwargs=amp_kwargs)
    before = snapshot(network)
    trainer.run()
    assert seen == [(True, torch.bfloat16)]
    assert trainer.scaler is None  # no gradient scaling for bfloat16 on CPU
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


def test_run_is_monai_trainer_run_and_a_second_run_resumes(tiny_vtn, random_pairs):
    dataset = _EpochDataset(random_pairs(2))
    trainer = make_trainer(tiny_vtn("A"), cc_objective(), dataset)
    assert type(trainer).run is SupervisedTrainer.run
    started = []
    trainer.add_event_handler(Events.STARTED, lambda e: started.append(e.state.iteration))
    trainer.run()
    trainer.state.max_epochs = 3
    trainer.run()  # continues from epoch 1, iteration 2
    assert started == [0, 2]
    assert dataset.epochs == [1, 2, 3]
    assert (trainer.state.epoch, trainer.state.iteration) == (3, 6)


def mse_tv_objective() -> RegistrationObjective:
    """A plain loss: every term is a mean over the batch, so the gradient of B pairs is the mean of theirs."""
    return RegistrationObjective(
        [SimilarityTerm(nn.MSELoss(), name="mse"), FlowTerm(TotalVariationLoss(), weight=0.5, name="tv")]
    )


def count_steps(optimizer: torch.optim.Optimizer) -> list:
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    return steps


def test_accumulating_n_iterations_equals_one_step_on_n_times_the_batch(tiny_vtn, random_pairs):
    data = random_pairs(4)
    whole = tiny_vtn("AD")
    accumulated = tiny_vtn("AD")
    accumulated.load_state_dict(whole.state_dict())
    initial = snapshot(whole)
    sgd = {"lr": 0.1, "optimizer_class": torch.optim.SGD}  # the step is linear in the gradient
    one_step = make_trainer(whole, mse_tv_objective(), data, batch_size=4, **sgd)
    four_iterations = make_trainer(accumulated, mse_tv_objective(), data, batch_size=1, accumulation_steps=4, **sgd)
    steps = count_steps(four_iterations.optimizer)
    losses = []
    four_iterations.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"]))
    one_step.run()
    four_iterations.run()
    assert four_iterations.state.iteration == 4 and len(steps) == 1
    assert changed(initial, whole)
    for expected, actual in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(actual.grad, expected.grad, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-7)
    # each iteration reports its own loss (not divided by accumulation_steps); the weights moved only after the 4th
    torch.testing.assert_close(torch.stack(losses).mean(), one_step.state.output["loss"])


def test_accumulation_steps_the_last_incomplete_window_of_each_epoch(tiny_vtn, random_pairs):
    trainer = make_trainer(tiny_vtn("A"), cc_objective(), random_pairs(3), max_epochs=2, accumulation_steps=2)
    steps = count_steps(trainer.optimizer)
    stepped_at = []
    trainer.optimizer.register_step_post_hook(lambda *_: stepped_at.append(trainer.state.iteration))
    trainer.run()
    assert len(steps) == 4 and stepped_at == [2, 3, 5, 6]
    with pytest.raises(ValueError, match="accumulation_steps"):
        make_trainer(tiny_vtn("A"), cc_objective(), random_pairs(1), accumulation_steps=0)


def test_compile_runs_the_network_through_torch_compile(tiny_vtn, random_pairs):
    network = tiny_vtn("A")
    trainer = make_trainer(network, cc_objective(), random_pairs(1), compile=True, compile_kwargs={"backend": "eager"})
    assert isinstance(trainer.network, torch._dynamo.eval_frame.OptimizedModule)
    before = snapshot(network)
    trainer.run()
    assert changed(before, network) and torch.isfinite(trainer.state.output["loss"])
