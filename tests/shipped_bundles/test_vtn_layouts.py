# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The VTN papers' cascade ablations (Tables IV and VII) through one override of the bundle: ``--stages AD``."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.data import demo_datalist
from monai_mine.losses import CorrelationCoefficientLoss, TotalVariationLoss, vtn_loss_terms
from tests.helpers import make_workflow


@pytest.mark.parametrize("stages", ["D", "DD", "DDD", "AD", "ADD", "ADDD"])
def test_layout_trains_two_iterations(stages, bundle_copy):
    bundle = bundle_copy("vtn_addd")
    settings = {
        "stages": stages,
        "image_size": 32,
        "dataset_dir": str(demo_datalist("mono", size=64).parent),  # the cached demo pairs, resized to 32^3
        "max_epochs": 1,
        "epoch_length": 2,
        "val_interval": 2,  # no validation within the one epoch
    }
    workflow = make_workflow(bundle, ("train.json",), "train", **settings)
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    assert network.stage_kinds == stages
    before = [[p.detach().clone() for p in stage.parameters()] for stage in network.subnetworks]

    workflow.run()
    workflow.finalize()

    state = workflow.trainer.state
    assert state.iteration == 2
    assert math.isfinite(float(state.output["loss"]))
    expected = vtn_loss_terms(stages, CorrelationCoefficientLoss(), TotalVariationLoss())
    assert list(state.output["loss_terms"]) == [term.name for term in expected]
    for index, (stage, saved) in enumerate(zip(network.subnetworks, before)):
        changed = any(not torch.equal(p, q) for p, q in zip(stage.parameters(), saved))
        assert changed, f"{stages}: stage {index} ({stages[index]}) did not train"
