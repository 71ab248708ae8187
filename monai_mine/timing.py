# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Wall-clock timing of work on a device: CUDA runs asynchronously, so a clock reading waits for its queue first; and
where the wall time of a command goes (:class:`StageTimer`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["REGISTER_STAGES", "StageTimer", "device_clock", "process_seconds", "synchronize"]

REGISTER_STAGES = (
    "start-up (interpreter, command line)",
    "imports (torch, MONAI, monai_mine)",
    "config parsing",
    "model build + weight load",
    "reading",
    "resampling",
    "network",
    "instance optimisation",
    "full-resolution warping",
    "Jacobian",
    "QC figure",
    "writing",
)
"""The stages of ``monai-mine register`` in the order they run, as :class:`StageTimer` names them."""


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


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: ``/proc``, to 10 ms), or ``None`` where that is not known."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


class StageTimer:
    """Wall time per named stage, in the order the stages first ran; a stage timed again adds up.

    Example::

        timer = StageTimer()
        with timer.stage("reading"):
            volume = load_volume(path)
        print(timer.table())
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, device: torch.device | str = "cpu") -> Iterator[None]:
        """Time the block as ``name`` (waiting for ``device``'s queue at both ends)."""
        device = torch.device(device)
        start = device_clock(device)
        try:
            yield
        finally:
            self.add(name, device_clock(device) - start)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    @property
    def total(self) -> float:
        """The stages' sum, in seconds."""
        return sum(self.seconds.values())

    def table(self, wall_s: float | None = None) -> str:
        """The stages as a text table with each one's share; ``wall_s``: the wall time they belong to (e.g. from
        process start to now), its part not in any stage shown as ``other``."""
        rows = dict(self.seconds)
        total = self.total
        if wall_s is not None and wall_s > total:
            rows["other"] = wall_s - total
            total = wall_s
        width = max([len(name) for name in rows] + [5])
        lines = [f"{'stage':<{width}}  seconds  share"]
        lines += [
            f"{name:<{width}}  {value:7.3f}  {100 * value / total if total else 0:4.1f} %"
            for name, value in rows.items()
        ]
        lines.append(f"{'total':<{width}}  {total:7.3f}")
        return "\n".join(lines)
