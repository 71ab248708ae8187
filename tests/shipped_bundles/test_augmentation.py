"""configs/augment.json: every epoch draws a new deformation of each training pair's moving side;
configs/synthetic_pairs*.json: pairs made from the fixed image with a known answer and a supervised term on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow
from zoo_bundle import SMALL

from monai_mine.data import demo_datalist
from monai_mine.flows import warp
from tests.helpers import REPOSITORY, config_files

AUGMENT = REPOSITORY / "configs" / "augment.json"
SYNTHETIC = REPOSITORY / "configs" / "synthetic_pairs.json"
SYNTHETIC_CONTRAST = REPOSITORY / "configs" / "synthetic_pairs_contrast.json"


def _training(bundle: Path, overlay: Path, flavour: str) -> ConfigWorkflow:
    """The bundle's quick training on the demo data of ``flavour`` with ``overlay`` merged, on the small grid
    (:data:`zoo_bundle.SMALL`), validated every 2 epochs; initialised."""
    dataset_dir = str(demo_datalist(flavour, size=64).parent)
    workflow = ConfigWorkflow(
        config_file=[*config_files(bundle, "train.json"), str(overlay)],
        logging_file=False,
        workflow_type="train",
        bundle_root=str(bundle),
        **{**SMALL[bundle.name], "dataset_dir": dataset_dir, "val_interval": 2},
    )
    workflow.initialize()
    return workflow


def test_training_pairs_are_new_at_every_draw_and_train(bundle_copy):
    bundle = bundle_copy("vtn_addd")
    workflow = _training(bundle, AUGMENT, "mono")
    dataset = workflow.parser.get_parsed_content("train#dataset")
    first, second = dataset[0], dataset[0]
    assert torch.equal(first["fixed_image"], second["fixed_image"])
    assert (first["moving_image"] - second["moving_image"]).abs().max() > 0.1  # a new pair at each draw
    assert torch.equal(first["moving_label"], first["moving_label"].round())  # labels stay labels
    workflow.run()
    workflow.finalize()
    assert workflow.trainer.state.iteration == 4 and (bundle / "models" / "model.pt").is_file()


@pytest.mark.parametrize(
    ("name", "overlay", "flavour"),
    [("vtn_addd", SYNTHETIC, "mono"), ("midiceregnet", SYNTHETIC_CONTRAST, "contrast")],
)
def test_synthetic_pairs_know_their_answer_and_train_on_it(bundle_copy, name, overlay, flavour):
    bundle = bundle_copy(name)
    workflow = _training(bundle, overlay, flavour)  # configs/quick.json: one epoch per MIDiceRegNet phase
    pair = workflow.parser.get_parsed_content("train#dataset")[0]
    registered = warp(pair["moving_image"][None], pair["target_ddf"][None])[0]
    if flavour == "mono":  # the moving image is the fixed one warped: its answer brings it back
        inside = (slice(None), *(slice(4, -4),) * 3)
        error = (registered - pair["fixed_image"])[inside].abs().mean()
        shorter = (warp(pair["moving_image"][None], 0.8 * pair["target_ddf"][None])[0] - pair["fixed_image"])[inside]
        # two bilinear resamplings blur the demo's sharp edges: about 0.2 of the error before, at any grid size
        assert error < 0.3 * (pair["moving_image"] - pair["fixed_image"])[inside].abs().mean()
        assert error < 0.8 * shorter.abs().mean()  # and beats an answer 20 % short
    labels = warp(pair["moving_label"][None].float(), pair["target_ddf"][None], mode="nearest")[0]
    assert (labels == pair["fixed_label"]).float().mean() > 0.95
    assert "displacement" in [term.name for term in workflow.parser.get_parsed_content("loss").terms]
    workflow.run()
    workflow.finalize()
    assert workflow.trainer.state.iteration > 0 and (bundle / "models" / "model.pt").is_file()
    assert "displacement" in workflow.trainer.state.output["loss_terms"]
