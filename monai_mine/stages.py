# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What a registration network's stages produced, in the form losses and engines read (``docs/design.md`` section 3).

:class:`StageRecord` is what :meth:`monai_mine.networks.RegistrationCascade.stages` returns per stage, what the
loss terms of :mod:`monai_mine.losses` read and what the engines of :mod:`monai_mine.engines` pass between them: a
record of tensors that needs nothing but torch, so that networks, losses and engines may all import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["StageRecord"]


@dataclass
class StageRecord:
    """What one stage of a cascade produced; the losses of training read these.

    Attributes:
        kind: ``"affine"`` or ``"dense"``.
        flow: the stage's own DDF, (B, 3, X, Y, Z), between the previously warped moving image and the fixed one.
        composed_flow: the DDF of all stages so far, (B, 3, X, Y, Z), from the original moving image.
        warped: the original moving image warped by ``composed_flow``, (B, C, X, Y, Z); ``None`` for the last stage
            when :meth:`~monai_mine.networks.RegistrationCascade.stages` is called with ``warp_last=False``.
        matrix: ``W`` (B, 3, 3) of an affine stage, else ``None``.
        translation: ``b`` (B, 3) of an affine stage, else ``None``.
    """

    kind: str
    flow: torch.Tensor
    composed_flow: torch.Tensor
    warped: torch.Tensor | None
    matrix: torch.Tensor | None = None
    translation: torch.Tensor | None = None
