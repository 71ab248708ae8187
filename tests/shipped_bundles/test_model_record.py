"""A trained model carries its configuration: every consumer rebuilds what was trained, and a bundle copied into
the model zoo's ``models/<name>/`` layout trains, evaluates, infers and exports inside itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.transforms import LoadImage

from monai_mine.apps.benchmark.methods import BundleMethod
from monai_mine.apps.benchmark.pairs import BenchmarkPair
from monai_mine.apps.cli import register
from monai_mine.apps.deploy import load_registration_bundle
from monai_mine.apps.registration import load_ddf
from monai_mine.bundle import export_torchscript, load_trained_model
from monai_mine.data import demo_datalist
from tests.helpers import QUICK, REPOSITORY, copy_bundle

SIZE = 32
"""Working grid of the trained model: not the bundle's default (64)."""
INTENSITY = REPOSITORY / "configs" / "intensity_mr.json"
"""A non-default intensity overlay (percentiles 1-99 instead of 0.5-99.5)."""
TOLERANCE = 1e-4  # voxels


def _files(root: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def _workflow(bundle: Path, names: list[str], workflow_type: str, extra: list[Path] = (), **override):
    """A bundle workflow as ``python -m monai.bundle run ... --bundle_root <bundle>`` builds it."""
    files = [str(bundle / "configs" / name) for name in names] + [str(path) for path in extra]
    return ConfigWorkflow(
        config_file=files, logging_file=False, workflow_type=workflow_type, bundle_root=str(bundle), **override
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """vtn_addd copied to ``<tmp>/zoo/models/vtn_addd`` and trained there at 32^3 with the MR intensity overlay."""
    root = tmp_path_factory.mktemp("record")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONAI_MINE_DATA", str(root / "data"))
        datalist = demo_datalist("mono", size=SIZE)
        bundle = root / "zoo" / "models" / "vtn_addd"
        copy_bundle("vtn_addd", bundle)
        before = {**_files(root), **_files(REPOSITORY / "bundles"), **_files(REPOSITORY / "configs")}
        patch.chdir(root)
        workflow = _workflow(
            bundle, ["train.json"], "train", [QUICK, INTENSITY], image_size=SIZE, datalist=str(datalist)
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        yield {"root": root, "bundle": bundle, "datalist": datalist, "before": before}


def test_the_record_holds_what_was_trained(trained):
    record = json.loads((trained["bundle"] / "models" / "model_config.json").read_text())
    assert record["bundle"] == {"name": "vtn_addd", "version": json.loads(
        (trained["bundle"] / "configs" / "metadata.json").read_text())["version"]}  # fmt: skip
    assert record["config"]["image_size"] == SIZE and record["config"]["network_channels"] == 4
    assert record["config"]["intensity"]["lower"] == 1.0 and record["config"]["intensity"]["upper"] == 99.0
    assert "loss_terms" in record["config"]  # what the weights were trained with
    assert record["training"]["training_pairs"] == 24 and record["training"]["iterations"] >= 2
    assert (
        torch.load(trained["bundle"] / "models" / "checkpoint.pt", weights_only=True)["model_record"]["config"]
        == (record["config"])
    )


def _pair(trained) -> dict[str, Path]:
    item = json.loads(Path(trained["datalist"]).read_text())["test"][0]
    folder = Path(trained["datalist"]).parent
    return {key: folder / item[key] for key in ("moving_image", "fixed_image")}


def _evaluator_ddf(trained) -> torch.Tensor:
    """The DDF of the training workflow's own evaluator, with the saved weights, on the first test pair."""
    workflow = _workflow(trained["bundle"], ["train.json"], "train", [QUICK, INTENSITY], image_size=SIZE,
                         datalist=str(trained["datalist"]), **{"validate#dataset#split": "test",
                                                               "validate#handlers": []})  # fmt: skip
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    network.load_state_dict(torch.load(trained["bundle"] / "models" / "model.pt", weights_only=True))
    return _first_output(workflow.parser.get_parsed_content("validate#evaluator"))


def _first_output(evaluator) -> torch.Tensor:
    outputs = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: outputs.append(engine.state.output[0]))
    evaluator.run()
    return outputs[0]["pred"].detach().cpu().float()


def test_every_consumer_rebuilds_the_trained_model(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained["root"])
    bundle, pair = trained["bundle"], _pair(trained)
    reference = _evaluator_ddf(trained)
    assert reference.shape == (3, SIZE, SIZE, SIZE) and reference.abs().max() > 0.01
    ddfs = {}

    register(pair["fixed_image"], pair["moving_image"], bundle, tmp_path / "register")
    ddfs["monai-mine register"] = load_ddf(tmp_path / "register" / "ddf.nii.gz")[0]

    inference = _workflow(bundle, ["inference.json"], "infer", datalist=str(trained["datalist"]),
                          output_dir=str(tmp_path / "inference"), outputs=["ddf"])  # fmt: skip
    inference.initialize()
    inference.run()
    written = sorted((tmp_path / "inference").glob("test_000_*ddf.nii.gz"))
    ddfs["inference workflow"] = load_ddf(written[0])[0]

    evaluate = _workflow(bundle, ["train.json", "evaluate.json"], "eval", datalist=str(trained["datalist"]),
                         output_dir=str(tmp_path / "evaluate"))  # fmt: skip
    evaluate.initialize()
    ddfs["evaluate workflow"] = _first_output(evaluate.parser.get_parsed_content("validate#evaluator"))

    loader = LoadImage(image_only=True)
    deployed = load_registration_bundle(bundle, device="cpu")
    ddfs["MONAI Deploy loader"] = deployed.register(loader(pair["moving_image"]), loader(pair["fixed_image"])).ddf

    images = {key: np.asarray(loader(path)) for key, path in pair.items()}
    fixed_grid = loader(pair["fixed_image"]).affine.numpy()
    empty = np.zeros((SIZE,) * 3)
    benchmark_pair = BenchmarkPair("mono", 0, images["fixed_image"], images["moving_image"], empty, empty,
                                   empty > 0, np.zeros((3, SIZE, SIZE, SIZE)), np.zeros((3, SIZE, SIZE, SIZE)),
                                   (1.0, 1.0, 1.0), fixed_grid)  # fmt: skip
    method = BundleMethod(bundle, bundle / "models" / "model.pt", tmp_path / "benchmark")
    ddfs["benchmark bundle method"] = torch.as_tensor(method(benchmark_pair).ddf)

    for consumer, ddf in ddfs.items():
        difference = float((torch.as_tensor(np.asarray(ddf)).float() - reference).abs().max())
        assert difference < TOLERANCE, f"{consumer}: DDF differs from the trainer's evaluator by {difference} voxels"


def test_a_copied_bundle_writes_only_into_itself(trained, monkeypatch):
    """Train (the fixture), evaluate, infer and export in ``models/vtn_addd``; nothing changes anywhere else."""
    root, bundle = trained["root"], trained["bundle"]
    monkeypatch.chdir(root)
    for names, kind in ((["train.json", "evaluate.json"], "eval"), (["inference.json"], "infer")):
        workflow = _workflow(bundle, names, kind, datalist=str(trained["datalist"]))
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    archive = export_torchscript(bundle)
    assert archive == bundle / "models" / "model.ts"
    assert load_trained_model(bundle).image_size == SIZE
    after = {**_files(root), **_files(REPOSITORY / "bundles"), **_files(REPOSITORY / "configs")}
    changed = sorted(path for path, stamp in after.items() if trained["before"].get(path) != stamp)
    outside = [path for path in changed if not Path(path).is_relative_to(bundle)]
    assert outside == [], f"written outside the bundle: {outside}"
    for expected in ("models/model.pt", "models/model_config.json", "models/checkpoint.pt", "models/model.ts"):
        assert str(bundle / expected) in changed
    assert any(Path(path).is_relative_to(bundle / "eval") for path in changed)
    assert any(Path(path).is_relative_to(bundle / "runs") for path in changed)
