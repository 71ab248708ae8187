# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What a registration needs from the machine: a device that exists, and memory, checked before the work starts.

:func:`registration_memory` estimates the peak memory :func:`~monai_mine.apps.registration.register_files` still needs
once its inputs are read (calibrated on a 512x512x400 CT pair, ``benchmarks/results/speed.md``);
:func:`check_memory` compares an estimate with :func:`available_memory` and refuses, with the way out, when it does
not fit.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import torch

__all__ = [
    "WAYS_OUT",
    "available_memory",
    "check_device",
    "check_memory",
    "gib",
    "registration_memory",
]

FIXED_VOXEL_BYTES = 36
"""Bytes per fixed voxel that registering still allocates at its peak: the intensity-scaled images (8), the DDF
(12), the warped image (4), the Jacobian map (4) and temporaries (8). On the 512x512x400 CT pair of
``benchmarks/results/speed.md`` the estimate is 4.1 GiB against 3.1 GiB measured beyond the inputs: on the safe side."""
INSTANCE_VOXEL_BYTES = 56
"""Bytes per fixed voxel that instance optimisation adds: the moving image on the fixed grid, the optimiser's copies
of both images and of the DDF, the refined DDF."""
LABEL_VOXEL_BYTES = 8
"""Bytes per moving-label voxel sampled (a float64 copy, exact for any integer) and 4 per fixed voxel written."""
WORKING_VOXEL_BYTES = 600
"""Bytes per working-grid voxel for the network's forward pass (activations of the bundles' networks)."""
SLAB_BYTES = 400 * 2**20
"""Temporaries of one slab of resampling (coordinates, samples), whatever the grid."""
WAYS_OUT = (
    "resample the fixed image to coarser voxels first (the outputs are on its grid; twice the voxel size needs an "
    "eighth of the memory), free memory, or use a device with more (--device cuda)."
)
"""What to do when a registration does not fit in memory."""


def gib(size: float) -> str:
    """A byte count in GiB, for messages."""
    return f"{size / 2**30:.1f} GiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _status(key: str) -> int | None:
    """A size from ``/proc/self/status`` (e.g. ``VmSize``), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory() -> int:
    """Bytes this process may still allocate: the least of the system's available memory (``MemAvailable``), the
    room left under a cgroup limit (containers, ``systemd-run -p MemoryMax``) and under an address-space limit
    (``ulimit -v``)."""
    candidates = [_meminfo("MemAvailable")]
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        high, used = _read_int(limit), _read_int(usage)
        if high is not None and used is not None and high < 2**60:
            candidates.append(max(high - used, 0))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    size = _status("VmSize")
    if soft != resource.RLIM_INFINITY and size is not None:
        candidates.append(max(soft - size, 0))
    known = [value for value in candidates if value is not None]
    if known:
        return min(known)
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_device(device: str | torch.device) -> torch.device:
    """The device named ``device``, checked to exist on this machine.

    Raises:
        ValueError: naming the device and what is expected: an unknown name (``tpu``), or CUDA (or another
            accelerator) that this machine or this torch build lacks.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"--device {device!r} is not a device name; expected cpu, cuda or cuda:N (also mps, xpu where present)."
        ) from error
    if resolved.type == "cpu":
        return resolved
    module = getattr(torch, resolved.type, None)
    is_available = getattr(module, "is_available", None)
    if is_available is None or not is_available():
        raise ValueError(
            f"--device {device}: this machine (torch {torch.__version__}) has no {resolved.type} device; use --device "
            "cpu."
        )
    count = module.device_count() if hasattr(module, "device_count") else 1
    if resolved.index is not None and resolved.index >= count:
        raise ValueError(f"--device {device}: this machine has {count} {resolved.type} device(s), numbered from 0.")
    return resolved


def registration_memory(fixed_voxels: int, label_voxels: int, working_size: int, instance: bool) -> int:
    """Estimated bytes a registration allocates beyond its inputs already read (see the module docstring).

    Args:
        fixed_voxels: voxels of the fixed image (the grid every output is on).
        label_voxels: voxels of all moving label maps together.
        working_size: the network's working grid edge (``image_size``).
        instance: whether instance optimisation runs.
    """
    per_fixed = FIXED_VOXEL_BYTES + (INSTANCE_VOXEL_BYTES if instance else 0)
    labels = LABEL_VOXEL_BYTES * label_voxels + (4 * fixed_voxels if label_voxels else 0)
    return per_fixed * fixed_voxels + labels + WORKING_VOXEL_BYTES * working_size**3 + SLAB_BYTES


def check_memory(needed: int, device: torch.device, what: str) -> None:
    """Refuse to start work that needs more memory than is available.

    Args:
        needed: the estimate, in bytes.
        device: where the work runs; CUDA devices are checked against their free memory, others against
            :func:`available_memory`.
        what: the work and its inputs, for the message.

    Raises:
        MemoryError: naming ``what``, both sizes and the ways out.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        where = f"{device} has {gib(free)} free"
    else:
        free = available_memory()
        where = f"this machine has {gib(free)} available"
    if needed > free:
        raise MemoryError(f"{what} needs about {gib(needed)} of memory, and {where}: {WAYS_OUT}")
