"""configs/augment.json: every epoch draws a new deformation of each training pair's moving side."""

from __future__ import annotations

import torch
from bundle_workflow import REPOSITORY, config_files
from monai.bundle import ConfigWorkflow

from monai_mine.data import demo_datalist

AUGMENT = REPOSITORY / "configs" / "augment.json"


def test_training_pairs_are_new_at_every_draw_and_train(bundle_copy):
    bundle = bundle_copy("vtn_addd")
    settings = {"image_size": 32, "dataset_dir": str(demo_datalist("mono", size=64).parent), "val_interval": 2}
    workflow = ConfigWorkflow(
        config_file=[*config_files(bundle, "train.json"), str(AUGMENT)],
        logging_file=False,
        workflow_type="train",
        bundle_root=str(bundle),
        **settings,
    )
    workflow.initialize()
    dataset = workflow.parser.get_parsed_content("train#dataset")
    first, second = dataset[0], dataset[0]
    assert torch.equal(first["fixed_image"], second["fixed_image"])
    assert (first["moving_image"] - second["moving_image"]).abs().max() > 0.1  # a new pair at each draw
    assert torch.equal(first["moving_label"], first["moving_label"].round())  # labels stay labels
    workflow.run()
    workflow.finalize()
    assert workflow.trainer.state.iteration == 4 and (bundle / "models" / "model.pt").is_file()
