# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fixtures for the MONAI Deploy adapter tests (see exported_bundle.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from exported_bundle import export_tiny_bundle, write_pair


@pytest.fixture(scope="session")
def nifti_pair(tmp_path_factory) -> dict[str, Path]:
    return write_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> SimpleNamespace:
    return export_tiny_bundle(tmp_path_factory.mktemp("bundles") / "vtn_addd")
