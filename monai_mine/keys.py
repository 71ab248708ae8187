# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The data keys of a registration pair, shared by datalists, transforms, engines and adapters.

A pair is a dict holding the two images and, optionally, their label maps (``docs/design.md`` section 6). Every
tuple here lists the moving entry before the fixed one, the order in which the two images are concatenated into
the network input ``(B, 2, X, Y, Z)`` (channel 0 moving, channel 1 fixed; ``docs/design.md`` section 3).

Bundle JSON configs spell these strings out, as MONAI configs do; Python code imports them from here.
"""

from __future__ import annotations

__all__ = [
    "FIXED_IMAGE",
    "FIXED_LABEL",
    "IMAGE_KEYS",
    "LABEL_KEYS",
    "MOVING_IMAGE",
    "MOVING_LABEL",
    "TARGET_DDF",
]

MOVING_IMAGE = "moving_image"
"""The image to be warped: (C, X, Y, Z) per item, (B, C, X, Y, Z) in a batch; network input channel 0."""

FIXED_IMAGE = "fixed_image"
"""The reference image the moving one is aligned to, on the same grid; network input channel 1."""

MOVING_LABEL = "moving_label"
"""Optional integer label map of the moving image, (1, X, Y, Z) per item; warped for Dice losses and metrics."""

FIXED_LABEL = "fixed_label"
"""Optional integer label map of the fixed image, (1, X, Y, Z) per item; compared with the warped moving labels."""

IMAGE_KEYS = (MOVING_IMAGE, FIXED_IMAGE)
"""The two images of a pair, moving first."""

LABEL_KEYS = (MOVING_LABEL, FIXED_LABEL)
"""The two label maps of a pair, moving first; training and metrics use labels only when both are present."""

TARGET_DDF = "target_ddf"
"""Optional known answer of a generated pair, (3, X, Y, Z) per item, voxels: ``warp(moving, target) = fixed``; set
by :class:`~monai_mine.transforms.RandIdentityPaird` and kept up to date by
:class:`~monai_mine.transforms.RandPairDeformd`, read by :class:`~monai_mine.losses.DisplacementTerm`."""
