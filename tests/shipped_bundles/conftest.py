# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fixtures for bundle tests: the demo datasets in a temporary cache and bundle copies in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_mine.data import demo_datalist
from tests.helpers import copy_bundle


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """A session-wide demo data cache (``$MONAI_MINE_DATA``) holding both flavours at 64^3."""
    cache = tmp_path_factory.mktemp("demo_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONAI_MINE_DATA", str(cache))
        for flavour in ("mono", "contrast"):
            demo_datalist(flavour, size=64)
        yield cache


@pytest.fixture
def bundle_copy(tmp_path, demo_cache, monkeypatch):
    """Copy a bundle (configs, docs, LICENSE; no models) into ``tmp_path/bundles/<name>`` and return its folder."""
    monkeypatch.setenv("MONAI_MINE_DATA", str(demo_cache))

    def copy(name: str) -> Path:
        return copy_bundle(name, tmp_path / "bundles" / name)

    return copy
