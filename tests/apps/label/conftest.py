# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fixtures for the MONAI Label adapter tests (see label_bundle.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from label_bundle import tiny_bundle, write_case

from monai_mine.data import demo_datalist

CENTRES = {"case_a": (9.0, 9.0, 10.0), "case_b": (11.0, 9.0, 10.0), "case_c": (10.0, 11.0, 9.0)}


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> SimpleNamespace:
    return tiny_bundle(tmp_path_factory.mktemp("bundles") / "vtn_addd")


@pytest.fixture(scope="session")
def studies(tmp_path_factory) -> Path:
    """A studies folder with three images; ``case_a`` and ``case_b`` have final labels, ``case_c`` none."""
    folder = tmp_path_factory.mktemp("studies")
    for name, centre in CENTRES.items():
        write_case(folder, name, centre, label=name != "case_c")
    return folder


@pytest.fixture(scope="session")
def small_demo_datalist(tmp_path_factory) -> Path:
    """A demo dataset of 16^3 volumes with 2 test pairs (the demo_datalist layout, in a folder of its own)."""
    return demo_datalist("mono", size=16, num_pairs={"test": 2}, cache_dir=tmp_path_factory.mktemp("demo"))
