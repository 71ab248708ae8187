# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Label app serving monai-mine registration bundles.

    monailabel start_server --app sample-apps/monai_mine_registration --studies <image folder> \
        --conf models vtn_addd,miregnet

Bundles are kept in ``model/<name>`` (copied from monai-mine's ``bundles/`` on first start). Each bundle with
weights (``models/model.pt`` or an exported ``models/model.ts``) is an infer model: ``POST /infer/<name>?image=<moving
id>`` with params ``{"fixed_image": "<fixed id or path>"}`` returns the warped moving image (``"result_image":
"ddf"`` returns the DDF instead; ``"moving_label"`` adds a warped label map), and the result JSON lists all files.
Each bundle is a trainer: ``POST /train/<name>`` trains on every image of the datastore (paired at random, or the
pairs named by the images' ``fixed_image`` info). Conf keys: ``models`` (default ``vtn_addd``), ``preload``.
"""

from __future__ import annotations

import logging
import os

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

import monai_mine
from monai_mine.label import prepare_app_bundles, resolve_fixed_image
from monai_mine.label.infer import RegistrationInferTask
from monai_mine.label.train import RegistrationTrainTask

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

    def init_infers(self) -> dict[str, InferTask]:
        infers = {}
        for name, path in self.bundles.items():
            task = RegistrationInferTask(str(path), self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Inferer:: {name} => {path}")
                infers[name] = task
            else:
                logger.info(f"--- No weights for {name} in {path}/models yet: train it first")
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
        """Resolve ``fixed_image`` (datastore id or path) and never store a registration result as a label."""
        datastore = datastore if datastore else self.datastore()
        request = resolve_fixed_image(request, datastore)
        request["save_label"] = False
        return super().infer(request, datastore)
