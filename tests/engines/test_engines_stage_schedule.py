"""StageSchedule: which stages run and train per phase, best-weight restore at a phase change, errors."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader

from monai_mine.engines import BestModelSaver, RegistrationTrainer, StageSchedule
from monai_mine.losses import (
    CorrelationCoefficientLoss,
    FlowTerm,
    RegistrationObjective,
    SimilarityTerm,
    TotalVariationLoss,
)

TWO_PHASES = [{"train": [0], "epochs": 1}, {"train": [1], "epochs": 1}]


def objective() -> RegistrationObjective:
    return RegistrationObjective(
        [
            SimilarityTerm(CorrelationCoefficientLoss(), name="cc"),
            FlowTerm(TotalVariationLoss(), weight=0.01, name="tv"),
        ]
    )


def make_trainer(network, data, schedule, max_epochs, optim_set_to_none=False):
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    return RegistrationTrainer(
        "cpu",
        max_epochs,
        DataLoader(data, batch_size=1, shuffle=False),
        network,
        optimizer,
        objective(),
        train_handlers=[schedule],
        optim_set_to_none=optim_set_to_none,
    )


def snapshot(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(before: list[torch.Tensor], module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_phase_zero_runs_and_trains_only_stage_zero_then_all_stages_run(tiny_miregnet, random_pairs):
    network = tiny_miregnet()
    schedule = StageSchedule(network, TWO_PHASES)
    trainer = make_trainer(network, random_pairs(2), schedule, max_epochs=2)
    stage0, stage1 = network.subnetworks
    initial0, initial1 = snapshot(stage0), snapshot(stage1)
    record_counts, stage1_grads, snapshots = [], [], {}
    network.register_forward_hook(lambda module, args, output: record_counts.append(len(output)))
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: stage1_grads.append(
            (engine.state.epoch, all(p.grad is None or not p.grad.any() for p in stage1.parameters()))
        ),
    )
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda engine: snapshots.update({engine.state.epoch: snapshot(network)})
    )
    trainer.run()

    assert record_counts == [1, 1, 2, 2]  # phase 0: only the AffineNet runs; phase 1: both stages
    assert stage1_grads[:2] == [(1, True), (1, True)]  # no gradient reaches the DeformNet in phase 0
    assert stage1_grads[2:] == [(2, False), (2, False)]
    after_phase0 = snapshots[1]
    assert not same(initial1, stage1)  # the DeformNet trains in phase 1 ...
    n0 = len(initial0)
    assert all(torch.equal(a, b) for a, b in zip(initial1, after_phase0[n0:]))  # ... but not in phase 0
    assert not all(torch.equal(a, b) for a, b in zip(initial0, after_phase0[:n0]))  # the AffineNet trains in phase 0

    # after completion every stage runs and trains again (export, inference)
    assert network.active_stages is None
    assert all(p.requires_grad for p in network.parameters())
    with torch.no_grad():
        assert len(network(torch.rand(1, 2, 16, 16, 16), return_stages=True)) == 2


@pytest.mark.parametrize("optim_set_to_none", [True, False], ids=["set_to_none", "default-zero-grad"])
def test_a_stage_not_trained_in_a_phase_stays_unchanged(tiny_miregnet, random_pairs, optim_set_to_none):
    network = tiny_miregnet()
    schedule = StageSchedule(network, TWO_PHASES)
    trainer = make_trainer(network, random_pairs(2), schedule, max_epochs=2, optim_set_to_none=optim_set_to_none)
    after_phase0 = {}
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED(once=1),
        lambda _: after_phase0.update(stage0=snapshot(network.subnetworks[0])),
    )
    trainer.run()
    assert same(after_phase0["stage0"], network.subnetworks[0]), "the AffineNet changed while frozen in phase 1"


def fake_engine(epoch: int):
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch))


def test_a_phase_change_restores_the_best_weights_and_resets_the_best_value(tiny_miregnet, tmp_path):
    network = tiny_miregnet()
    best = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    schedule = StageSchedule(network, [{"train": [0], "epochs": 2}, {"train": [1], "epochs": 1}], best_model=best)
    evaluator = Engine(lambda engine, batch: None)  # an ignite handler, BestModelSaver saves from an evaluator
    evaluator.state.metrics = {"val_score": 0.8}

    schedule.epoch_started(fake_engine(1))
    best(evaluator)  # epoch 1 is the best of phase 0
    best_weights = {name: value.clone() for name, value in network.state_dict().items()}
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)  # epoch 2 trains on, validating worse
    schedule.epoch_started(fake_engine(2))  # same phase: nothing restored
    assert best.best_value == 0.8
    assert not torch.equal(network.subnetworks[0].head.bias, best_weights["subnetworks.0.head.bias"])

    schedule.epoch_started(fake_engine(3))  # phase 1 starts from the best weights of phase 0
    for name, value in network.state_dict().items():
        assert torch.equal(value, best_weights[name]), name
    assert best.best_value == float("-inf")
    assert schedule.current_phase == 1 and network.active_stages == 2
    assert not any(p.requires_grad for p in network.subnetworks[0].parameters())
    assert all(p.requires_grad for p in network.subnetworks[1].parameters())


def test_a_phase_change_without_a_saved_best_model_keeps_the_weights(tiny_miregnet, tmp_path):
    network = tiny_miregnet()
    best = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    schedule = StageSchedule(network, TWO_PHASES, best_model=best)
    schedule.epoch_started(fake_engine(1))
    before = snapshot(network)
    schedule.epoch_started(fake_engine(2))
    assert same(before, network)
    assert schedule.current_phase == 1


def test_phase_of_epoch_and_total_epochs(tiny_miregnet):
    schedule = StageSchedule(tiny_miregnet(), [{"train": [0], "epochs": 2}, {"train": [0, 1], "epochs": 3}])
    assert schedule.total_epochs == 5
    assert [schedule.phase_of_epoch(epoch) for epoch in range(1, 8)] == [0, 0, 1, 1, 1, 1, 1]


def test_a_phase_training_both_stages_runs_both(tiny_miregnet):
    network = tiny_miregnet()
    schedule = StageSchedule(network, [{"train": [1, 0], "epochs": 1}])
    schedule.apply(0)
    assert schedule.phases[0]["train"] == [0, 1]
    assert network.active_stages == 2
    assert all(p.requires_grad for p in network.parameters())


def test_state_dict_round_trip(tiny_miregnet):
    network = tiny_miregnet()
    schedule = StageSchedule(network, TWO_PHASES)
    schedule.apply(1)
    restored = StageSchedule(network, TWO_PHASES)
    assert restored.current_phase == -1
    schedule.phases[1]["epochs"] = 7  # a time budget ended the phase after 7 epochs
    restored.load_state_dict(schedule.state_dict())
    assert restored.current_phase == 1
    assert [phase["epochs"] for phase in restored.phases] == [phase["epochs"] for phase in TWO_PHASES[:1]] + [7]


def test_a_checkpoint_without_phase_epochs_keeps_the_configured_ones(tiny_miregnet):
    restored = StageSchedule(tiny_miregnet(), TWO_PHASES)
    restored.load_state_dict({"current_phase": 1})
    assert [phase["epochs"] for phase in restored.phases] == [phase["epochs"] for phase in TWO_PHASES]


def test_a_trainer_whose_max_epochs_differs_from_the_schedule_raises(tiny_miregnet, random_pairs):
    network = tiny_miregnet()
    schedule = StageSchedule(network, TWO_PHASES)
    with pytest.raises(ValueError, match="lasts 2 epochs, but the trainer's max_epochs is 3"):
        make_trainer(network, random_pairs(1), schedule, max_epochs=3)


@pytest.mark.parametrize(
    "phases, message",
    [
        ([], "StageSchedule needs at least one phase, got none."),
        ([{"train": [0], "epochs": 1}, {"train": [2], "epochs": 1}], "phase 1 must train stage indices in [0, 2)"),
        ([{"train": [-1], "epochs": 1}], "phase 0 must train stage indices in [0, 2)"),
        ([{"train": [], "epochs": 1}], "phase 0 must train stage indices in [0, 2) for at least one epoch"),
        ([{"train": [0], "epochs": 1}, {"train": [1], "epochs": 0}], "phase 1 must train stage indices"),
        ([{"train": [0]}], "phase 0 must train stage indices"),
        ([{"train": [0], "epochs": 1, "lr": 0.1}], "phase 0 has unknown keys ['lr']"),
    ],
    ids=["empty", "stage-too-large", "negative-stage", "no-stages", "zero-epochs", "no-epochs", "unknown-key"],
)
def test_bad_phases_raise_naming_the_phase(tiny_miregnet, phases, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        StageSchedule(tiny_miregnet(), phases)
