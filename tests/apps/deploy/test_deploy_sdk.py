# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""With the MONAI Deploy App SDK installed (the ``deploy`` extra): the SDK reads our archive, and the registration
application runs end to end. Without the SDK this module is skipped; test_deploy_bundle.py covers the rest."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from exported_bundle import SIZE
from monai.transforms import LoadImage

pytest.importorskip("monai.deploy.core", reason="needs the MONAI Deploy App SDK: pip install 'monai-mine[deploy]'")

from monai.deploy.core import AppContext, Fragment, Image  # noqa: E402
from monai.deploy.core.models import ModelFactory, TorchScriptModel  # noqa: E402
from monai.deploy.operators.monai_bundle_inference_operator import (  # noqa: E402
    BundleConfigNames,
    IOMapping,
    IOType,
    MonaiBundleInferenceOperator,
    get_bundle_config,
)

from monai_mine.apps.deploy import load_registration_bundle, read_bundle_configs  # noqa: E402
from monai_mine.apps.deploy.app import RegistrationApp  # noqa: E402
from monai_mine.apps.deploy.operators import RegistrationInferenceOperator  # noqa: E402


def test_sdk_reads_the_archive_as_our_loader_does(tiny_bundle):
    assert TorchScriptModel.accept(str(tiny_bundle.ts)) == (True, "torch_script")
    assert isinstance(ModelFactory.create(str(tiny_bundle.ts)), TorchScriptModel)
    theirs, ours = get_bundle_config(str(tiny_bundle.ts), ["inference"]), read_bundle_configs(tiny_bundle.ts)
    assert theirs["_meta_"] == ours["_meta_"]
    assert theirs["preprocessing"] == ours["preprocessing"]
    # the stock bundle operator parses it too (on init, from the file), keeping its preprocessing minus LoadImage
    operator = MonaiBundleInferenceOperator(
        Fragment(),
        app_context=AppContext({}),
        input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
        output_mapping=[IOMapping("pred", Image, IOType.IN_MEMORY)],
        bundle_path=tiny_bundle.ts,
        bundle_config_names=BundleConfigNames(config_names=["inference"]),
    )
    stock = [type(t).__name__ for t in operator._preproc.transforms]
    assert stock == [type(t).__name__ for t in load_registration_bundle(tiny_bundle.ts, "cpu").preprocessing.transforms]


def test_operator_emits_float_images_with_the_working_affine(tiny_bundle, nifti_pair):
    operator = RegistrationInferenceOperator(Fragment(), app_context=AppContext({}), bundle_path=tiny_bundle.ts)
    loader = LoadImage(image_only=True)
    images = {}
    for key, name in (("moving_image", "moving"), ("fixed_image", "fixed")):
        image = loader(str(nifti_pair[name]))
        images[key] = Image(image.numpy(), metadata={"affine": image.affine.numpy()})
    outputs = operator.post_process(operator.predict(*operator.pre_process(images)))
    assert outputs["ddf"].asnumpy().dtype == np.float32 and outputs["ddf"].asnumpy().shape == (3, SIZE, SIZE, SIZE)
    assert outputs["warped"].asnumpy().dtype == np.float32 and outputs["warped"].asnumpy().shape == (
        1,
        SIZE,
        SIZE,
        SIZE,
    )
    expected = load_registration_bundle(tiny_bundle.ts, "cpu").register(
        loader(str(nifti_pair["moving"])), loader(str(nifti_pair["fixed"]))
    )
    np.testing.assert_allclose(outputs["ddf"].asnumpy(), expected.ddf.numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["ddf"].metadata()["affine"], expected.ddf.affine.numpy())


def test_application_registers_a_nifti_pair(tiny_bundle, nifti_pair, tmp_path):
    output = tmp_path / "output"
    # as Holoscan receives the command line of `python app.py -i ... -o ... -m ...`
    argv = [
        sys.executable,
        "app.py",
        "-i",
        str(nifti_pair["moving"].parent),
        "-o",
        str(output),
        "-m",
        str(tiny_bundle.ts),
    ]
    RegistrationApp(argv).run()
    ddf, warped = nib.load(output / "ddf.nii.gz"), nib.load(output / "warped.nii.gz")
    assert ddf.shape == (SIZE, SIZE, SIZE, 3) and ddf.get_data_dtype() == np.float32
    assert warped.shape == (SIZE, SIZE, SIZE) and warped.get_data_dtype() == np.float32
    loader = LoadImage(image_only=True)
    expected = load_registration_bundle(tiny_bundle.ts, "cpu").register(
        loader(str(nifti_pair["moving"])), loader(str(nifti_pair["fixed"]))
    )
    np.testing.assert_allclose(np.moveaxis(ddf.get_fdata(), -1, 0), expected.ddf.numpy(), atol=1e-5)
    np.testing.assert_allclose(ddf.affine, expected.ddf.affine.numpy(), atol=1e-5)
    assert float(torch.as_tensor(warped.get_fdata()).std()) > 0
