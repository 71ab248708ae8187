# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Old import paths kept for one release as deprecated aliases of the objects that moved (MONAI's practice).

A module whose names moved keeps only a module ``__getattr__`` (PEP 562) made by :func:`moved_names`: the old name
(``monai_mine.registration.InstanceOptimizer`` in a user's ``_target_``, ``from monai_mine.cli import main``) still
gives the object itself, from its new home, with a ``DeprecationWarning`` naming that home. The alias module lists no
moved name in its globals or ``dir()``, so MONAI's ``ComponentLocator``, which scans the members of every loaded
``monai*`` module, neither warns nor finds a second home for a short ``_target_``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

SINCE = "0.1.0"
"""The release in which the old paths became deprecated aliases."""

REMOVED = "0.2.0"
"""The release that removes them."""


def homes(module: str, names: Iterable[str]) -> dict[str, str]:
    """``{name: module}`` for each of ``names``: the new home of names that moved to the same module."""
    return dict.fromkeys(names, module)


def moved_names(old: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of the module ``old``, whose names moved.

    Args:
        old: the old module's dotted name, e.g. ``"monai_mine.registration"``.
        moved: the new home (a module's dotted name) of each old name, e.g.
            ``{"InstanceOptimizer": "monai_mine.optimization"}``.

    Returns:
        ``__getattr__(name)``: for a name of ``moved``, the object ``<home>.<name>`` itself, with a
        ``DeprecationWarning`` in MONAI's wording that names the new path (as a config's ``_target_`` would).

    Raises:
        AttributeError: (from ``__getattr__``) for any other name, as for a module without it.
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        home = moved[name]
        warnings.warn(
            f"{old}.{name} has been deprecated since version {SINCE}. It will be removed in version {REMOVED}. "
            f'Please use {home}.{name} instead (in configs: "_target_": "{home}.{name}").',
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)

    return __getattr__
