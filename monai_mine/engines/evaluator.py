# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The registration evaluator: predicts each pair's DDF, warps the moving image and labels, times the network."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.transforms import Transform
from monai.utils import CommonKeys

from monai_mine.engines.batch import prepare_registration_batch
from monai_mine.flows import warp
from monai_mine.keys import FIXED_LABEL, MOVING_LABEL
from monai_mine.timing import device_clock

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
        amp_kwargs: dict | None = None,
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
            amp: autocast inference: ``torch.autocast`` on the device's type (float16 on CUDA, bfloat16 on CPU,
                unless ``amp_kwargs`` names another dtype); the DDF is returned in float32.
            amp_kwargs: MONAI's ``torch.autocast`` arguments, e.g. ``{"dtype": torch.bfloat16}``.
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
            amp=amp,
            decollate=True,
            amp_kwargs=amp_kwargs,
        )

    def _iteration(self, engine: RegistrationEvaluator, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        plain = batch.plain()
        image = plain.network_input()
        engine.network.eval()
        autocast = torch.autocast(engine.state.device.type, **engine.amp_kwargs) if engine.amp else nullcontext()
        with torch.inference_mode(), autocast:
            start = device_clock(engine.state.device)
            ddf = engine.inferer(image, engine.network).float()
            runtime = (device_clock(engine.state.device) - start) / ddf.shape[0]
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
            output[MOVING_LABEL] = batch.moving_label
            output[FIXED_LABEL] = batch.fixed_label
        engine.state.output = output
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
