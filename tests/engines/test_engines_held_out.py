"""HeldOutReport: the held-out split's Dice at the end of training, or a line saying there is none."""

from __future__ import annotations

import logging

import torch
from ignite.engine import Engine

from monai_mine.engines import HeldOutReport


def test_a_datalist_without_the_split_gets_a_log_line_and_no_scores(caplog):
    trainer = Engine(lambda engine, batch: None)
    report = HeldOutReport(torch.nn.Identity(), {"training": [{"fixed_image": "f", "moving_image": "m"}]}, None)
    with caplog.at_level(logging.INFO, logger="monai_mine.engines.held_out"):
        report(trainer)
    assert "no 'test' split in the datalist" in caplog.text
    assert "test_dice" not in trainer.state.metrics
