# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""``python -m monai_mine.apps.benchmark.speed``: the benchmark's command line (and the entry of its row workers)."""

from __future__ import annotations

from monai_mine.apps.benchmark.speed.cli import main

if __name__ == "__main__":
    main()
