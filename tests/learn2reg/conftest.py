# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learn2Reg tests run bundles with the helpers of ``tests/bundles`` (importable when this folder runs alone)."""

from __future__ import annotations

import sys
from pathlib import Path

BUNDLE_TESTS = str(Path(__file__).resolve().parents[1] / "bundles")
if BUNDLE_TESTS not in sys.path:
    sys.path.insert(0, BUNDLE_TESTS)
