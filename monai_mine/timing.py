# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Wall-clock timing of work on a device: CUDA runs asynchronously, so a clock reading waits for its queue first."""

from __future__ import annotations

import time

import torch

__all__ = ["device_clock", "synchronize"]


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on ``device`` is done (a no-op on devices that run synchronously, e.g. CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_clock(device: torch.device) -> float:
    """``time.perf_counter()`` in seconds, read once the work queued on ``device`` is done.

    The difference of two readings is the wall time of the work between them, e.g.::

        start = device_clock(device)
        ddf = network(image)
        seconds = device_clock(device) - start
    """
    synchronize(device)
    return time.perf_counter()
