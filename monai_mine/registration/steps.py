# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What ``--instance_optimization`` accepts: a whole number of Adam steps per level, within a stated bound.

:func:`instance_optimization_steps` is the one parser of that value (command line and Python API). Named
settings (issue 28's ``fast``, ``balanced``, ``accurate`` and per-level schedules) belong in it too: a name would
map to its steps before the number is read.
"""

from __future__ import annotations

import numbers

__all__ = ["MAX_INSTANCE_STEPS", "instance_optimization_steps"]

MAX_INSTANCE_STEPS = 10_000
"""The most Adam steps per level (about an hour per level for a 256^3 image on a 2-core CPU)."""


def instance_optimization_steps(value: int | str) -> int:
    """The Adam steps per level that ``value`` asks for.

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
