"""Device clocks: readings in seconds that wait for the device's queued work."""

from __future__ import annotations

import time

import torch

from monai_mine.timing import device_clock


def test_device_clock_measures_the_work_between_two_readings():
    cpu = torch.device("cpu")
    start = device_clock(cpu)
    time.sleep(0.01)
    assert 0.01 <= device_clock(cpu) - start < 1.0
