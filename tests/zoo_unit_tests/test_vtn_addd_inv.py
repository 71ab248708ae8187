# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The vtn_addd_inv bundle's configs run, as the MONAI model zoo's ``ci/unit_tests/test_<bundle>.py`` check a bundle:
training then evaluation, and inference, on small random NIfTI pairs written for the test, each workflow's
properties checked (``ConfigWorkflow.check_properties``). Sizes are tiny (the bundle's ``configs/quick.json`` and a
32^3 working grid), and every output goes to a temporary folder, never into the bundle's ``models/``.

In the zoo: copy this file into ``ci/unit_tests/`` and run, from the zoo's root,
``python ci/unit_tests/runner.py --b vtn_addd_inv``
(the bundle in ``models/vtn_addd_inv``); here: ``python -m pytest tests/zoo_unit_tests/test_vtn_addd_inv.py``.
"""

import json
import os
import shutil
import tempfile
import unittest

import nibabel as nib
import numpy as np
from monai.bundle import ConfigWorkflow
from utils import check_workflow

BUNDLE = "vtn_addd_inv"


def bundle_root(name):
    """``models/<name>`` when run from the zoo's root (as its CI runs ``ci/unit_tests/runner.py``), else the monai-mine
    repository's ``bundles/<name>`` (the zoo's ``ci/unit_tests/utils.py`` offers no such helper)."""
    zoo = os.path.join("models", name)
    if os.path.isfile(os.path.join(zoo, "configs", "metadata.json")):
        return zoo
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bundles", name)


TEST_CASE_1 = {  # train, evaluate
    "image_size": 32,
    "epoch_length": 1,
    "val_interval": 1,
    "train#dataset#cache_rate": 0.0,
    "validate#dataset#cache_rate": 0.0,
    "train#dataloader#num_workers": 0,
    "validate#dataloader#num_workers": 0,
}

TEST_CASE_2 = {  # inference
    "image_size": 32,
    "handlers#0#_disabled_": True,  # do not load weights
}


def test_order(test_name1, test_name2):
    def get_order(name):
        if "train" in name:
            return 1
        if "eval" in name:
            return 2
        if "infer" in name:
            return 3
        return 4

    return get_order(test_name1) - get_order(test_name2)


test_order.__test__ = False  # the runner's sort key, not a test for pytest


class TestVTNADDDInv(unittest.TestCase):
    def setUp(self):
        self.dataset_dir = tempfile.mkdtemp()
        self.output_dir = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        input_shape = (24, 28, 20)
        datalist = {}
        for split, count in (("training", 2), ("validation", 1), ("test", 1)):
            datalist[split] = []
            for s in range(count):
                item = {}
                for role in ("fixed", "moving"):
                    image = rng.random(input_shape).astype(np.float32)
                    label = np.digitize(image, [0.4, 0.6, 0.8]).astype(np.int16)
                    for key, array in ((f"{role}_image", image), (f"{role}_label", label)):
                        filename = f"{split}{s}_{key}.nii.gz"
                        nib.save(nib.Nifti1Image(array, np.eye(4)), os.path.join(self.dataset_dir, filename))
                        item[key] = filename
                datalist[split].append(item)
        with open(os.path.join(self.dataset_dir, "datalist.json"), "w") as f:
            json.dump(datalist, f)

    def tearDown(self):
        shutil.rmtree(self.dataset_dir)
        shutil.rmtree(self.output_dir)

    def _override(self, case):
        override = dict(case)
        override["bundle_root"] = bundle_root(BUNDLE)
        override["dataset_dir"] = self.dataset_dir
        override["ckpt_dir"] = os.path.join(self.output_dir, "models")
        override["output_dir"] = os.path.join(self.output_dir, "eval")
        override["tensorboard_dir"] = os.path.join(self.output_dir, "runs")
        return override

    def _files(self, override, *names):
        return [os.path.join(override["bundle_root"], "configs", name) for name in names]

    def test_train_eval_config(self):
        override = self._override(TEST_CASE_1)
        train_file, eval_file, quick_file = self._files(override, "train.json", "evaluate.json", "quick.json")
        trainer = ConfigWorkflow(
            workflow_type="train",
            config_file=[train_file, quick_file],
            logging_file=os.path.join(override["bundle_root"], "configs/logging.conf"),
            meta_file=os.path.join(override["bundle_root"], "configs/metadata.json"),
            **override,
        )
        check_workflow(trainer, check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(override["ckpt_dir"], "model.pt")))

        validator = ConfigWorkflow(
            # override train.json, thus set the workflow to "train" rather than "eval"
            workflow_type="train",
            config_file=[train_file, eval_file, quick_file],
            logging_file=os.path.join(override["bundle_root"], "configs/logging.conf"),
            meta_file=os.path.join(override["bundle_root"], "configs/metadata.json"),
            **override,
        )
        check_workflow(validator, check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(override["output_dir"], "metrics_summary.json")))

    def test_infer_config(self):
        override = self._override(TEST_CASE_2)
        override["output_dir"] = os.path.join(self.output_dir, "eval", "inference")
        inference_file, quick_file = self._files(override, "inference.json", "quick.json")
        inferrer = ConfigWorkflow(
            workflow_type="infer",
            config_file=[inference_file, quick_file],
            logging_file=os.path.join(override["bundle_root"], "configs/logging.conf"),
            meta_file=os.path.join(override["bundle_root"], "configs/metadata.json"),
            **override,
        )
        check_workflow(inferrer, check_properties=True)
        self.assertTrue(os.listdir(override["output_dir"]))


if __name__ == "__main__":
    loader = unittest.TestLoader()
    loader.sortTestMethodsUsing = test_order
    unittest.main(testLoader=loader)
