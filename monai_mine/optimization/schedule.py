# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What ``--instance_optimization`` accepts: a preset name, a per-level schedule, or a whole number of Adam steps per
level, each count within a stated bound.

:func:`instance_optimization_schedule` is the one parser of that value, for the command line, the Python API, the
bundles' ``instance_optimization_steps`` config entry, the MONAI Deploy loader, MONAI Label's infer requests and the
benchmarks:

- ``N`` (``50``, or the text ``"50"``): N Adam steps on each of the bundle's levels (a grid of 32, then 64 voxels
  along the image's longest axis); 0 is the network alone;
- ``A/B/C`` (``"50/50/20"``): A steps on the first level, B on the second, and C on a last level at the image's full
  resolution (learning rate 0.25 there), one count per configured level plus the full-resolution one;
- a preset name of :data:`PRESETS`: ``fast``, ``balanced``, ``accurate``, each a schedule ``A/B/C``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = [
    "MAX_INSTANCE_STEPS",
    "PRESETS",
    "InstanceSchedule",
    "instance_optimization_schedule",
    "instance_optimization_steps",
]

MAX_INSTANCE_STEPS = 10_000
"""The most Adam steps per level (about an hour per level for a 256^3 image on a 2-core CPU)."""

PRESETS: dict[str, tuple[int, int, int]] = {
    "fast": (25, 25, 0),
    "balanced": (50, 50, 10),
    "accurate": (50, 50, 20),
}
"""Named schedules: Adam steps at the 32- and 64-voxel levels and at full resolution, chosen from the measured
trade-off (vtn_addd start, mono track, 128^3, 2 CPU cores; ``docs/instance_optimization.md``): ``fast`` the best
within 1/10 of Elastix's time per pair, ``balanced`` the best within 1/3, ``accurate`` the most accurate measured.
Their current Dice and time: ``benchmarks/results/instance_optimization.md``."""


@dataclass(frozen=True)
class InstanceSchedule:
    """Adam steps per level, as :func:`instance_optimization_schedule` read them.

    Attributes:
        steps: one count per level, coarse to fine.
        full_resolution: whether the last count is a level at the image's full resolution, added after the
            configured ones (a schedule ``A/B/C`` or a preset); otherwise ``steps`` holds one count, for every
            configured level.
        name: the preset's name, or ``None``.
    """

    steps: tuple[int, ...]
    full_resolution: bool = False
    name: str | None = None

    @property
    def refines(self) -> bool:
        """Whether any step is taken (``False``: the network alone)."""
        return any(self.steps)

    @property
    def value(self) -> int | str:
        """The value in its explicit form, ``N`` (an integer) or ``"A/B/C"``: the same for a preset and its schedule."""
        return "/".join(map(str, self.steps)) if self.full_resolution else self.steps[0]

    def __str__(self) -> str:
        explicit = str(self.value)
        return f"{self.name} ({explicit})" if self.name else explicit


def instance_optimization_steps(value: int | str) -> int:
    """The Adam steps per level that a whole number ``value`` asks for.

    Args:
        value: a whole number from 0 (the network alone) to :data:`MAX_INSTANCE_STEPS`, as an integer or as text
            (``"50"``).

    Raises:
        ValueError: naming the value and what is expected: a fraction (``1.5``), a negative number, a number
            beyond the bound, a truth value or other text.
    """
    expected = f"expected a whole number of Adam steps per level from 0 to {MAX_INSTANCE_STEPS}"
    if isinstance(value, str) and value.strip().isdigit():
        steps = int(value.strip())
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        steps = int(value)
    else:
        raise ValueError(f"instance_optimization {value!r}: {expected}.")
    if not 0 <= steps <= MAX_INSTANCE_STEPS:
        raise ValueError(f"instance_optimization {steps}: {expected}.")
    return steps


def instance_optimization_schedule(value: int | str | InstanceSchedule) -> InstanceSchedule:
    """The schedule that ``value`` asks for (see the module docstring).

    Args:
        value: a preset name of :data:`PRESETS` (any case), a schedule ``"A/B/C"`` (at least two counts, the last at
            full resolution), a whole number of steps per level (integer or text), or a schedule already read.

    Raises:
        ValueError: naming the value and what is expected: an unknown name, a count that is not a whole number from
            0 to :data:`MAX_INSTANCE_STEPS`, a schedule of one count or with empty parts, a truth value.
    """
    if isinstance(value, InstanceSchedule):
        return value
    expected = (
        f"expected a whole number of Adam steps per level from 0 to {MAX_INSTANCE_STEPS}, such numbers per level "
        f"with a last level at full resolution A/B/C (e.g. 50/50/20), or a preset ({', '.join(PRESETS)})"
    )
    shown = repr(value) if isinstance(value, str) else value
    if isinstance(value, str) and value.strip().lower() in PRESETS:
        name = value.strip().lower()
        return InstanceSchedule(PRESETS[name], True, name)
    if isinstance(value, str) and "/" in value:
        parts = [part.strip() for part in value.split("/")]
        if not all(part.isdigit() and int(part) <= MAX_INSTANCE_STEPS for part in parts):
            raise ValueError(f"instance_optimization {shown}: {expected}.")
        return InstanceSchedule(tuple(int(part) for part in parts), True)
    try:
        return InstanceSchedule((instance_optimization_steps(value),))
    except ValueError:
        raise ValueError(f"instance_optimization {shown}: {expected}.") from None
