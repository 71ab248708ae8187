# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fixtures of the benchmark tests: the ICBM152 template at 48^3 (4 mm voxels) and a pair per track, built once."""

from __future__ import annotations

import pytest

from monai_mine.apps.benchmark.pairs import TRACKS, BenchmarkPair, make_pair
from monai_mine.apps.template import BrainTemplate, build_template

SIZE = 48


@pytest.fixture(scope="session")
def template() -> BrainTemplate:
    return build_template(SIZE)


@pytest.fixture(scope="session")
def pairs(template) -> dict[str, BenchmarkPair]:
    """One pair per track (seed 3)."""
    return {track: make_pair(template, track, seed=3) for track in TRACKS}
