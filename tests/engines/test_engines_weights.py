# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Loading network weights at an engine's start: errors name the file and what does not fit."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from monai_mine.bundle import read_weights
from monai_mine.bundle.weights import describe_state_mismatch
from monai_mine.engines import WeightsLoader


def _engine():
    return Engine(lambda engine, batch: None)


def test_loads_weights_like_monai(tmp_path):
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.save(source.state_dict(), tmp_path / "model.pt")
    WeightsLoader(str(tmp_path / "model.pt"), {"model": target})(_engine())
    assert torch.equal(source.weight, target.weight)


@pytest.mark.parametrize(
    "content, pattern",
    [
        (None, r"no network weights at \S*model\.pt: train the bundle first"),
        (
            b"PK truncated",
            r"cannot read checkpoint \S*model\.pt: not a complete PyTorch file \(truncated or corrupt\?\)",
        ),
        (
            {"network": {"weight": torch.zeros(2, 3)}, "optimizer": {"state": {}}},
            r"it holds the entries \['network', 'optimizer'\] of a training checkpoint, not network weights",
        ),
        (
            {"weight": torch.zeros(4, 3), "bias": torch.zeros(4)},
            r"its weights do not fit this bundle's network \(2 of another shape \(e\.g\. 'weight': file \(4, 3\), "
            r"network \(2, 3\)\)\)",
        ),
    ],
)
def test_unfit_weights_are_named(tmp_path, content, pattern):
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises((FileNotFoundError, RuntimeError), match=pattern):
        WeightsLoader(str(path), {"model": torch.nn.Linear(3, 2)})(_engine())


def test_state_mismatch_is_counted_with_examples():
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    found = {"a": torch.zeros(2), "b": torch.zeros(4), "d": torch.zeros(1)}
    assert describe_state_mismatch(expected, found) == (
        "1 missing (e.g. 'c'), 1 unexpected (e.g. 'd'), 1 of another shape (e.g. 'b': file (4,), network (3,))"
    )
    assert describe_state_mismatch(expected, expected) == "same keys and shapes"


def test_checkpoint_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint \S*none\.pt does not exist"):
        read_weights(tmp_path / "none.pt")
    (tmp_path / "text.pt").write_text("not torch")
    with pytest.raises(ValueError, match=r"cannot read checkpoint \S*text\.pt: not a complete PyTorch file"):
        read_weights(tmp_path / "text.pt")
