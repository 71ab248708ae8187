# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label app serving monai-mine registration bundles.

    python -m monai_mine.apps.label.studies demo_studies   # a studies folder from the demo data
    monailabel start_server --app sample-apps/monai_mine_registration --studies demo_studies \
        --conf models vtn_addd,miregnet --host 127.0.0.1 --port 8765

``--host 127.0.0.1`` serves this machine only (``monailabel``'s own default, ``0.0.0.0``, serves every network the
machine is on, with no authentication); open it to others with ``--host 0.0.0.0`` on a trusted network only.

Bundles are kept in ``model/<name>``, copied from monai-mine's ``bundles/`` on first start and again when the
repository's copy changed since (see :func:`monai_mine.apps.label.prepare_app_bundles`). Each bundle with weights
(``models/model.pt`` or an exported ``models/model.ts``) is an infer model: ``POST /infer/<name>?image=<moving
id>`` with params ``{"fixed_image": "<fixed id or path>"}`` returns the warped moving image (``"result_image":
"ddf"`` returns the DDF instead; ``"moving_label"`` adds a warped label map, returned with ``"result_image":
"warped_label"``); one request returns one file. A bundle without weights at start becomes an infer model once a
training wrote them. Each bundle is a trainer: ``POST /train/<name>`` trains on every image of the datastore (paired
at random, or the pairs named by the images' ``fixed_image`` info) and writes over ``model/<name>/models/model.pt``
(its log says so when those are still the shipped weights; deleting ``model/<name>`` brings them back on the next
start). A failing infer request answers with the error's text (``{"detail": ...}``), e.g. HTTP 422 naming an
unknown ``image`` (moving) or ``fixed_image`` id, or 500 for weights that do not fit the bundle's network. Conf keys:
``models`` (default ``vtn_addd``), ``preload``.
"""

from __future__ import annotations

import logging
import os

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

import monai_mine
from monai_mine.apps.label import check_moving_image, prepare_app_bundles, resolve_fixed_image
from monai_mine.apps.label.bundles import BundleWeightsError, load_bundle_network
from monai_mine.apps.label.infer import RegistrationInferTask
from monai_mine.apps.label.train import RegistrationTrainTask

logger = logging.getLogger(__name__)


class MonaiMineRegistrationApp(MONAILabelApp):
    """Infer and train tasks for the monai-mine bundles named in ``--conf models``."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.model_dir = os.path.join(app_dir, "model")
        self.bundles = prepare_app_bundles(self.model_dir, conf.get("models", "vtn_addd"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"monai-mine registration ({monai_mine.__version__})",
            description="Unsupervised 3D registration with monai-mine bundles (MIRegNet, VTN)",
            version=monai_mine.__version__,
        )

    def _infer_task(self, name: str) -> RegistrationInferTask | None:
        """The infer task of bundle ``name``, or ``None`` while it has no weights; weights that do not fit are
        logged here (the app still starts, and each request answers with the same message)."""
        path = self.bundles[name]
        task = RegistrationInferTask(str(path), self.conf)
        if not task.is_valid():
            return None
        if (path / "models" / "model.pt").is_file():
            try:
                load_bundle_network(path, config_files=[task.bundle_config_path])
            except (BundleWeightsError, FileNotFoundError) as error:
                logger.warning(f"!!! Inferer {name} will fail: {error}")
        return task

    def init_infers(self) -> dict[str, InferTask]:
        infers = {}
        for name, path in self.bundles.items():
            task = self._infer_task(name)
            if task is not None:
                logger.info(f"+++ Adding Inferer:: {name} => {path}")
                infers[name] = task
            else:
                logger.info(f"--- No weights for {name} in {path}/models yet: train it first (POST /train/{name})")
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers = {}
        for name, path in self.bundles.items():
            task = RegistrationTrainTask(str(path), self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Trainer:: {name} => {path}")
                trainers[name] = task
        return trainers

    def infer(self, request: dict, datastore=None) -> dict:
        """Resolve ``fixed_image`` (datastore id or path), never store a registration result as a label, add the infer
        task of a bundle trained since the start, and answer a failure with its text.

        Raises:
            HTTPException: 400 for an unknown model or a bundle without weights, 422 for a request that the task
                refuses (``ValueError``: an unknown moving or fixed image, no fixed image, images that do not
                pair, ...), 500 for anything else
                (weights that do not fit the bundle included); the detail is the error's message.
        """
        try:
            name = request.get("model")
            if name in self.bundles and name not in self._infers:
                task = self._infer_task(name)
                if task is None:
                    raise MONAILabelException(
                        MONAILabelError.INVALID_INPUT,
                        f"bundle {name!r} has no weights in {self.bundles[name]}/models yet: train it first "
                        f"(POST /train/{name}), then infer.",
                    )
                self._infers[name] = task
            datastore = datastore if datastore else self.datastore()
            check_moving_image(request, datastore)
            request = resolve_fixed_image(request, datastore)
            request["save_label"] = False
            return super().infer(request, datastore)
        except HTTPException:
            raise
        except MONAILabelException as error:
            logger.warning(f"infer request failed: {error.msg}")
            status = 400 if error.error == MONAILabelError.INVALID_INPUT else 500
            raise HTTPException(status_code=status, detail=error.msg) from error
        except BundleWeightsError as error:
            logger.exception("infer request failed")
            raise HTTPException(status_code=500, detail=str(error)) from error
        except ValueError as error:
            logger.warning(f"infer request failed: {error}")
            raise HTTPException(status_code=422, detail=str(error)) from error
        except Exception as error:
            logger.exception("infer request failed")
            raise HTTPException(status_code=500, detail=f"{type(error).__name__}: {error}") from error
