# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Speed and memory of the bundle networks against ANTs and Elastix: ``monai_mine.apps.benchmark.speed`` as a script.

Usage::

    python benchmarks/speed.py                  # the full run; results in benchmarks/results/speed.{md,json}
    python benchmarks/speed.py --help           # sizes, repeats, rows to run
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import monai_mine  # noqa: F401
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai_mine.apps.benchmark.speed import main  # noqa: E402

if __name__ == "__main__":
    main()
