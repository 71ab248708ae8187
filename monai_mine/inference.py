# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Fast DDF inference with a registration network: the settings that make one forward pass cheap.

``FastRegistration(network)`` wraps any network of the contract in ``docs/design.md`` section 3 (``(B, 2, X, Y, Z)`` in,
DDF ``(B, 3, X, Y, Z)`` out) and runs it:

- under ``torch.inference_mode`` (no autograd records, no version counters);
- with weights in ``torch.channels_last_3d`` (oneDNN and cuDNN pick their fast channel-last kernels; on this
  project's CPU it roughly halves the time of the VTN transposed convolutions);
- optionally under autocast (``amp_dtype="bfloat16"`` or ``"float16"``), the DDF returned in float32;
- on CUDA, with cuDNN autotuning and optionally as a CUDA graph replayed for every input of the captured shape
  (no Python or launch overhead per layer, no host-device synchronisation);
- optionally through ``torch.compile``.

Cascades already skip the last resampling of the moving image when only the DDF is asked for
(:meth:`~monai_mine.networks.RegistrationCascade.stages` with ``warp_last=False``).

The float32 path changes only the memory layout, so its DDF equals the eager float32 DDF to rounding (tested:
max abs difference < 1e-4 voxel); autocast changes the arithmetic (bfloat16 keeps 8 bits of mantissa), so its
DDF differs by a few percent of the displacement (tested: < 5 % of the largest displacement). With
``channels_last=False, cudnn_benchmark=False`` and no autocast the DDF is the one
:class:`~monai_mine.engines.RegistrationEvaluator` computes: :func:`~monai_mine.apps.registration.register_volumes` runs
the bundle network so.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

__all__ = ["FastRegistration", "resolve_dtype"]

_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(amp_dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype named by ``amp_dtype`` (``None`` or ``"float32"``: no autocast).

    Raises:
        ValueError: for a name other than float32, bfloat16 and float16.
    """
    if amp_dtype is None or isinstance(amp_dtype, torch.dtype):
        return None if amp_dtype == torch.float32 else amp_dtype
    if amp_dtype not in _DTYPES:
        raise ValueError(f"amp_dtype must be one of {sorted(_DTYPES)} or None, got {amp_dtype!r}.")
    return _DTYPES[amp_dtype]


class FastRegistration:
    """Runs a registration network for inference only, as fast as the device allows.

    Example::

        predictor = FastRegistration(build_vtn("ADDD"), device="cpu")
        ddf = predictor(torch.rand(1, 2, 128, 128, 128))  # (1, 3, 128, 128, 128), float32, voxels
    """

    def __init__(
        self,
        network: nn.Module,
        device: str | torch.device = "cpu",
        channels_last: bool = True,
        amp_dtype: str | torch.dtype | None = None,
        cudnn_benchmark: bool = True,
        compile: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        """
        Args:
            network: maps (B, 2, X, Y, Z) to a DDF (B, 3, X, Y, Z); moved to ``device`` and set to eval mode (its
                weights are converted in place to ``channels_last_3d`` when ``channels_last``).
            device: where to run.
            channels_last: store the convolution weights channel-last (``torch.channels_last_3d``).
            amp_dtype: ``None`` (float32), ``"bfloat16"`` or ``"float16"``: autocast dtype of the forward pass.
            cudnn_benchmark: on CUDA, set ``torch.backends.cudnn.benchmark`` (autotuned convolution algorithms for
                the fixed input size; a process-wide setting).
            compile: run the network through ``torch.compile`` (the first call per input shape compiles).
            cuda_graph: on CUDA, capture the forward pass for the first input shape as a CUDA graph and replay it
                for every later input of that shape (other shapes run eagerly).

        Raises:
            ValueError: on an unknown ``amp_dtype``, or ``cuda_graph`` on a device other than CUDA.
        """
        self.device = torch.device(device)
        self.dtype = resolve_dtype(amp_dtype)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device, got device={self.device}.")
        network = network.to(self.device).eval()
        if channels_last:
            network = network.to(memory_format=torch.channels_last_3d)
        if cudnn_benchmark and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.network = network
        self.forward = torch.compile(network, dynamic=False) if compile else network
        self.cuda_graph = cuda_graph
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_input: torch.Tensor | None = None
        self._static_output: torch.Tensor | None = None

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    def _eager(self, image: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.forward(image).float()

    def _capture(self, image: torch.Tensor) -> None:
        """Warm up on a side stream (as CUDA graph capture requires), then capture one forward pass."""
        self._static_input = image.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._eager(self._static_input)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_output = self._eager(self._static_input)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: Tensor in shape (B, 2, X, Y, Z), channel 0 moving, channel 1 fixed (copied to the device).

        Returns:
            the DDF, float32 Tensor in shape (B, 3, X, Y, Z), in voxels, on the predictor's device.
        """
        with torch.inference_mode():
            image = image.to(self.device, torch.float32, non_blocking=True)
            if not self.cuda_graph:
                return self._eager(image)
            if self._graph is None:
                self._capture(image)
            elif image.shape != self._static_input.shape:
                return self._eager(image)
            self._static_input.copy_(image)
            self._graph.replay()
            return self._static_output.clone()
