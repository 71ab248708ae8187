# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""``monai-mine benchmark``: bad arguments end with one line naming the argument, before any work is done."""

from __future__ import annotations

import pytest

from monai_mine.cli import benchmark


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"tracks": "ct"}, "--tracks must list distinct names among"),
        ({"methods": "identity,voxelmorph"}, "--methods must list distinct names among"),
        ({"pairs": 0}, "--pairs must be at least 1"),
        ({"methods": "vtn_addd", "train_minutes": 0}, "--train_minutes must be positive"),
        ({"checkpoints": "vtn_addd=missing.pt"}, "checkpoint missing.pt for 'vtn_addd' does not exist"),
    ],
)
def test_bad_arguments(tmp_path, arguments, match):
    with pytest.raises(SystemExit, match=match):
        benchmark(out_dir=str(tmp_path / "out"), **arguments)
    assert not (tmp_path / "out").exists()
