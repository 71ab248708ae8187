# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""monai-mine: unsupervised and weakly supervised 3D medical image registration for MONAI.

The core (flow operations ``monai_mine.flows``, ``networks``, ``losses``, ``metrics``, ``transforms``, ``data``,
instance optimisation ``optimization``, the ``stages`` records) and the workflows (``engines``, ``bundle``) are
plugins: bundle configs name them in ``_target_`` after ``"imports": ["$import monai_mine"]``. The applications
around them (the command line, file registration, benchmarks, MONAI Deploy, MONAI Label and Learn2Reg adapters)
are in ``monai_mine.apps``; imports only go from apps to workflows to core (``docs/design.md`` section 1).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "bundle",
    "data",
    "engines",
    "flows",
    "losses",
    "metrics",
    "networks",
    "optimization",
    "stages",
    "transforms",
    "__version__",
]

_SUBPACKAGES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    """The plugin subpackages, imported on first use (PEP 562): ``import monai_mine.apps.cli`` (``monai-mine --help``,
    ``version``, an argument error) then needs neither torch nor MONAI, while ``monai_mine.losses.MINELoss`` in a
    config's ``_target_`` or ``$monai_mine.bundle...`` in an expression import what they name."""
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
