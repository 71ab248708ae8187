# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""monai-mine: unsupervised and weakly supervised 3D medical image registration for MONAI.

Networks (``monai_mine.networks``), losses (``monai_mine.losses``), flow operations (``monai_mine.flows``),
metrics (``monai_mine.metrics``), engines (``monai_mine.engines``) and data helpers (``monai_mine.data``) are
plugins: bundle configs name them in ``_target_`` after ``"imports": ["$import monai_mine"]``.
"""

from __future__ import annotations

from monai_mine import bundle, data, engines, flows, losses, metrics, networks

__version__ = "0.1.0"

__all__ = ["bundle", "data", "engines", "flows", "losses", "metrics", "networks", "__version__"]
