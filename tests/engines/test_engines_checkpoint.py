"""ResumableCheckpoint (atomic save, exact resume through MONAI's CheckpointLoader, clear load errors) and
BestModelSaver (MONAI's key-metric CheckpointSaver, written atomically)."""

from __future__ import annotations

import re

import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn
from torch.utils.data import DataLoader

from monai_mine.engines import (
    BestModelSaver,
    RegistrationTrainer,
    ResumableCheckpoint,
    atomic_torch_save,
    unwrap_network,
)
from monai_mine.losses import CorrelationCoefficientLoss, RegistrationObjective, SimilarityTerm
from monai_mine.networks.variants import build_vtn


def build_run(data, path, max_epochs, resume=False, save_interval=0, channels=2):
    """A fresh network, optimiser and trainer with a resumable checkpoint: what a new process would build."""
    torch.manual_seed(0)
    network = build_vtn("A", channels=channels, depth=4)
    objective = RegistrationObjective([SimilarityTerm(CorrelationCoefficientLoss(), name="cc")])
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    trainer = RegistrationTrainer(
        "cpu", max_epochs, DataLoader(data, batch_size=1, shuffle=False), network, optimizer, objective
    )
    save_dict = {"network": network, "optimizer": optimizer, "trainer": trainer}
    checkpoint = ResumableCheckpoint(path, save_dict, save_interval=save_interval, resume=resume)
    checkpoint.attach(trainer)
    return trainer, network, checkpoint


def assert_same_weights(first: nn.Module, second: nn.Module) -> None:
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")


def stop_after(trainer: RegistrationTrainer, iteration: int) -> None:
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=iteration), lambda engine: engine.terminate())


# ------------------------------------------------------------------------------------------------------------ saving


def test_saving_writes_one_complete_file_and_no_temporary_files(tmp_path, random_pairs):
    path = tmp_path / "models" / "checkpoint.pt"
    trainer, network, _ = build_run(random_pairs(2), path, max_epochs=1, save_interval=1)
    saved_iterations = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda _: saved_iterations.append(torch.load(path, weights_only=False)["trainer"]["iteration"]),
    )
    trainer.run()
    assert saved_iterations == [1, 2]  # saved every iteration, before later handlers run
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]
    checkpoint = torch.load(path, weights_only=False)
    assert set(checkpoint) == {"network", "optimizer", "trainer"}
    assert checkpoint["trainer"]["iteration"] == 2 and checkpoint["trainer"]["max_epochs"] == 1
    for name, value in network.state_dict().items():
        assert torch.equal(checkpoint["network"][name], value)


class _Unpicklable:
    def state_dict(self):
        return {"function": lambda: None}


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    network = nn.Linear(2, 2)
    ResumableCheckpoint(path, {"network": network}).save()
    before = path.read_bytes()
    with pytest.raises(Exception):
        ResumableCheckpoint(path, {"network": network, "broken": _Unpicklable()}).save()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_atomic_torch_save_round_trips(tmp_path):
    path = atomic_torch_save({"a": torch.arange(3)}, tmp_path / "x.pt")
    assert path == tmp_path / "x.pt"
    assert torch.equal(torch.load(path)["a"], torch.arange(3))


def test_negative_save_interval_raises(tmp_path):
    with pytest.raises(ValueError, match="save_interval must be >= 0 iterations, got -1"):
        ResumableCheckpoint(tmp_path / "c.pt", {}, save_interval=-1)


def test_unwrap_network_returns_the_wrapped_module():
    inner = nn.Linear(2, 2)
    assert unwrap_network(nn.DataParallel(inner)) is inner
    assert unwrap_network(inner) is inner


# ------------------------------------------------------------------------------------------------------------ resume


def test_resume_at_an_epoch_boundary_matches_an_uninterrupted_run(tmp_path, random_pairs):
    data = random_pairs(2)
    reference, reference_network, _ = build_run(data, tmp_path / "reference.pt", max_epochs=3)
    reference.run()

    path = tmp_path / "checkpoint.pt"
    first, first_network, _ = build_run(data, path, max_epochs=3, save_interval=2)
    stop_after(first, 4)  # a killed run: the last save was at iteration 4 (end of epoch 2)
    first.run()
    assert first.state.iteration == 4
    stopped = {name: value.clone() for name, value in first_network.state_dict().items()}

    resumed, resumed_network, _ = build_run(data, path, max_epochs=3, resume=True)
    assert resumed.state.iteration == 4 and resumed.state.epoch == 2
    assert_same_weights(resumed_network, first_network)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda engine: iterations.append(engine.state.iteration))
    resumed.run()
    assert iterations == [5, 6]
    assert resumed.state.iteration == reference.state.iteration == 6
    assert_same_weights(resumed_network, reference_network)
    assert not torch.equal(resumed_network.state_dict()["subnetworks.0.head.bias"], stopped["subnetworks.0.head.bias"])


@pytest.mark.parametrize(
    "first_epochs, stop_at, expected",
    [(1, None, [3, 4]), (3, 2, [3, 4, 5, 6, 7, 8])],
    ids=["after-a-completed-run", "after-a-killed-run"],
)
def test_resume_with_more_epochs_continues_at_the_saved_iteration(
    tmp_path, random_pairs, first_epochs, stop_at, expected
):
    data = random_pairs(2)
    path = tmp_path / "checkpoint.pt"
    first = build_run(data, path, max_epochs=first_epochs, save_interval=2)[0]
    if stop_at:
        stop_after(first, stop_at)
    first.run()
    resumed, _, _ = build_run(data, path, max_epochs=4 if stop_at else 2, resume=True)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda engine: iterations.append(engine.state.iteration))
    resumed.run()
    assert iterations == expected
    assert resumed.state.max_epochs == (4 if stop_at else 2)


def test_resume_mid_epoch_continues_the_count_and_restarts_the_loader(tmp_path, random_pairs):
    """Documented behaviour: Ignite restarts the (unshuffled) loader at the epoch's first batch."""
    data = random_pairs(4)
    path = tmp_path / "checkpoint.pt"
    first, _, _ = build_run(data, path, max_epochs=1, save_interval=1)
    stop_after(first, 2)
    first.run()
    resumed, _, _ = build_run(data, path, max_epochs=1, resume=True)
    seen = []
    resumed.add_event_handler(
        Events.ITERATION_STARTED,
        lambda engine: seen.append(
            next(
                i
                for i, item in enumerate(data)
                if torch.equal(item["moving_image"], engine.state.batch["moving_image"][0])
            )
        ),
    )
    resumed.run()
    assert seen == [0, 1]
    assert resumed.state.iteration == 4


def test_resume_without_a_checkpoint_names_the_path(tmp_path, random_pairs):
    path = tmp_path / "models" / "checkpoint.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(f"cannot resume: no checkpoint at {path}")):
        build_run(random_pairs(1), path, max_epochs=1, resume=True)


def test_a_checkpoint_lacking_an_object_names_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    network = nn.Linear(2, 2)
    ResumableCheckpoint(path, {"network": network}).save()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    checkpoint = ResumableCheckpoint(path, {"network": network, "optimizer": optimizer, "critic": nn.Linear(1, 1)})
    with pytest.raises(KeyError, match=re.escape("lacks ['critic', 'optimizer']; it has ['network']")):
        checkpoint.load()


class _Marker:
    """Unpickled, it would create a file: a stand-in for code hidden in a crafted checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_resume_and_best_model_never_run_code_from_a_checkpoint(tmp_path):
    network, marker = nn.Linear(2, 2), tmp_path / "code_ran"
    crafted = tmp_path / "checkpoint.pt"
    torch.save({"network": network.state_dict(), "payload": _Marker(marker)}, crafted)
    with pytest.raises(ValueError, match=r"cannot read checkpoint \S*checkpoint\.pt: .*only tensors and plain data"):
        ResumableCheckpoint(crafted, {"network": network}).load()
    saver = BestModelSaver(network, crafted, "score")
    saver.best_value = 1.0  # as if it had saved before
    with pytest.raises(ValueError, match=r"cannot read best weights \S*checkpoint\.pt"):
        saver.restore()
    assert not marker.exists()


def test_a_checkpoint_of_another_network_names_the_object(tmp_path, random_pairs):
    path = tmp_path / "checkpoint.pt"
    build_run(random_pairs(1), path, max_epochs=1)[0].run()
    with pytest.raises(RuntimeError, match=re.escape(f"checkpoint {path}: cannot load 'network'")):
        build_run(random_pairs(1), path, max_epochs=1, resume=True, channels=4)


def test_load_restores_network_and_optimizer_state(tmp_path):
    path = tmp_path / "checkpoint.pt"
    network = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    network(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    ResumableCheckpoint(path, {"network": network, "optimizer": optimizer}).save()
    other = nn.Linear(3, 2)
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.1)
    ResumableCheckpoint(path, {"network": other, "optimizer": other_optimizer}).load()
    assert_same_weights(other, network)
    assert other_optimizer.state_dict()["state"][0]["step"] == 1


# ------------------------------------------------------------------------------------------------------ best model


def evaluator_with(value: float | None, name: str = "val_score") -> Engine:
    """An evaluator that has just computed its metric ``name`` = ``value``."""
    evaluator = Engine(lambda engine, batch: None)
    evaluator.state.metrics = {} if value is None else {name: value}
    return evaluator


def fill(network: nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.fill_(value)


def test_best_model_saver_saves_only_when_the_metric_improves(tmp_path):
    network = nn.Linear(2, 2)
    saver = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    for value, weight in [(0.5, 1.0), (0.4, 2.0), (0.5, 3.0), (0.7, 4.0), (0.6, 5.0)]:
        fill(network, weight)
        saver(evaluator_with(value))
    assert saver.best_value == 0.7
    saved = torch.load(tmp_path / "model.pt")
    assert set(saved) == {"weight", "bias"}  # the network's weights only, as models/model.pt
    assert torch.all(saved["weight"] == 4.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_best_model_saver_restore_loads_the_best_weights(tmp_path):
    network = nn.Linear(2, 2)
    saver = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    assert saver.restore() is False  # nothing saved yet
    fill(network, 1.0)
    saver(evaluator_with(0.9))
    fill(network, 7.0)
    saver(evaluator_with(0.1))
    assert saver.restore() is True
    assert torch.all(network.weight == 1.0) and torch.all(network.bias == 1.0)


def test_best_model_saver_state_dict_round_trip(tmp_path):
    network = nn.Linear(2, 2)
    saver = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    saver(evaluator_with(0.8))
    restored = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    restored.load_state_dict(saver.state_dict())
    assert restored.best_value == 0.8
    fill(network, 3.0)
    restored(evaluator_with(0.75))  # not better than the remembered best: not saved
    assert not torch.all(torch.load(tmp_path / "model.pt")["weight"] == 3.0)
    restored.reset()
    assert restored.best_value == float("-inf")


def test_best_model_saver_without_its_metric_names_the_metrics(tmp_path):
    saver = BestModelSaver(nn.Linear(2, 2), tmp_path / "model.pt", "val_score")
    with pytest.raises(KeyError, match=re.escape("no metric 'val_score'; have ['dice']")):
        saver(evaluator_with(0.5, name="dice"))


def test_the_handlers_are_monais_and_a_failed_save_keeps_the_best_weights(tmp_path, monkeypatch):
    """Unlike MONAI's own saver, which deletes the previous ``model.pt`` before writing the next in place, a failed
    write leaves the last best weights whole, and no temporary file."""
    network = nn.Linear(2, 2)
    saver = BestModelSaver(network, tmp_path / "model.pt", "val_score")
    assert isinstance(saver, CheckpointSaver)
    assert isinstance(ResumableCheckpoint(tmp_path / "checkpoint.pt", {"network": network}), CheckpointLoader)
    fill(network, 1.0)
    saver(evaluator_with(0.5))
    before = (tmp_path / "model.pt").read_bytes()

    def full_disk(obj, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    fill(network, 2.0)
    with pytest.raises(OSError, match=r"could not write \S*model\.pt: No space left on device"):
        saver(evaluator_with(0.9))
    assert (tmp_path / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
