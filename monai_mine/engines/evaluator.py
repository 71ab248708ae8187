# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The registration evaluator: predicts each pair's DDF, warps the moving image and labels, times the network."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.transforms import Transform
from monai.utils import CommonKeys

from monai_mine.engines.batch import prepare_registration_batch
from monai_mine.engines.trainer import autocast_context
from monai_mine.flows import warp

__all__ = ["RegistrationEvaluator"]


class RegistrationEvaluator(SupervisedEvaluator):
    """Runs a registration network on pairs for validation, evaluation and inference.

    ``engine.state.output`` (a list of per-pair dicts after decollation) holds ``pred`` (the DDF, (3, X, Y, Z),
    voxels), ``warped`` (the moving image warped), ``moving``, ``fixed`` (MetaTensors with their files' meta
    data), ``warped_label``, ``moving_label``, ``fixed_label`` when the pair has labels (warped with nearest
    neighbour sampling), and ``runtime`` (seconds of network time per pair, the batch's time divided by its size).
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader,
        network: torch.nn.Module,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        inferer: Inferer | None = None,
        postprocessing: Transform | None = None,
        key_val_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        val_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: str | torch.dtype | None = None,
    ) -> None:
        """
        Args:
            device: where to run.
            val_data_loader: yields dicts with moving_image, fixed_image and optional labels.
            network: a registration network, ``network(image (B, 2, X, Y, Z)) -> DDF (B, 3, X, Y, Z)``.
            epoch_length: iterations; default the loader's length.
            non_blocking: asynchronous host-to-device copies.
            inferer: calls the network (default ``SimpleInferer``: ``network(image, **kwargs)``).
            postprocessing: MONAI transforms applied to each decollated output.
            key_val_metric: the Ignite metric that selects the best model.
            additional_metrics: more Ignite metrics.
            val_handlers: handlers to attach (writers, metric savers, ...).
            amp: autocast inference (float16 on CUDA, bfloat16 on CPU).
            amp_dtype: the autocast dtype; default as above.
        """
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=network,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_registration_batch,
            inferer=inferer,
            postprocessing=postprocessing,
            key_val_metric=key_val_metric,
            additional_metrics=additional_metrics,
            val_handlers=val_handlers,
            decollate=True,
        )
        self.amp = amp
        self.amp_dtype = amp_dtype

    def _iteration(self, engine: RegistrationEvaluator, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        plain = batch.plain()
        image = plain.network_input()
        engine.network.eval()
        with torch.no_grad(), autocast_context(engine.state.device, engine.amp, engine.amp_dtype):
            _synchronize(engine.state.device)
            start = time.perf_counter()
            ddf = engine.inferer(image, engine.network).float()
            _synchronize(engine.state.device)
            runtime = (time.perf_counter() - start) / ddf.shape[0]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        output = {
            CommonKeys.IMAGE: image,
            CommonKeys.PRED: ddf,
            "warped": warp(plain.moving, ddf),
            "moving": batch.moving,
            "fixed": batch.fixed,
            "runtime": torch.full((ddf.shape[0],), runtime),
        }
        if batch.has_labels:
            output["warped_label"] = warp(plain.moving_label, ddf, mode="nearest")
            output["moving_label"] = batch.moving_label
            output["fixed_label"] = batch.fixed_label
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
