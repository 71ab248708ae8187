# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MONAI Deploy App SDK operators for registration: load a NIfTI pair, register it with an exported bundle, write
the DDF and the warped image as float NIfTI.

MONAI Deploy's stock ``MonaiBundleInferenceOperator`` takes one input and emits its first output cast to uint8 (a
segmentation); :class:`RegistrationInferenceOperator` takes the moving and the fixed image on two ports and emits
the DDF and the warped moving image as float32 ``Image`` objects (arrays channel first, metadata ``affine``), reading
the bundle as that operator does (:mod:`monai_mine.apps.deploy.bundle`). Needs ``pip install monai-deploy-app-sdk``
(the ``deploy`` extra).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import LoadImage

from monai_mine.apps.deploy.bundle import RegistrationBundle, WorkingGridRegistration, load_registration_bundle
from monai_mine.apps.deploy.images import image_to_metatensor, metatensor_to_image_parts
from monai_mine.io.nifti import save_nifti
from monai_mine.keys import IMAGE_KEYS
from monai_mine.optimization.schedule import instance_optimization_schedule

try:
    from monai.deploy.core import AppContext, Fragment, Image, Operator, OperatorSpec
    from monai.deploy.operators.inference_operator import InferenceOperator
except ImportError as error:
    raise ImportError(
        "monai_mine.apps.deploy.operators needs the MONAI Deploy App SDK: pip install monai-deploy-app-sdk pydicom "
        f"highdicom (the 'deploy' extra of monai-mine); importing it failed with: {error}"
    ) from error

__all__ = [
    "NIFTI_SUFFIXES",
    "NiftiPairLoaderOperator",
    "OUTPUT_NAMES",
    "RegistrationInferenceOperator",
    "RegistrationWriterOperator",
    "find_pair_files",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
OUTPUT_NAMES = ("ddf", "warped")
"""Output ports of :class:`RegistrationInferenceOperator`, input ports of :class:`RegistrationWriterOperator`."""


def find_pair_files(folder: str | os.PathLike, moving: str = "moving", fixed: str = "fixed") -> dict[str, Path]:
    """``{"moving_image": <folder>/<moving>.nii.gz, "fixed_image": ...}`` (``.nii`` accepted too).

    Raises:
        FileNotFoundError: naming the folder and the file names expected when one is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist (expected {moving}.nii.gz and {fixed}.nii.gz).")
    found = {}
    for key, stem in zip(IMAGE_KEYS, (moving, fixed)):
        candidates = [folder / f"{stem}{suffix}" for suffix in NIFTI_SUFFIXES]
        existing = [candidate for candidate in candidates if candidate.is_file()]
        if not existing:
            raise FileNotFoundError(
                f"input folder {folder} has no {key.replace('_', ' ')} file: expected one of "
                f"{[candidate.name for candidate in candidates]}; it holds {sorted(p.name for p in folder.iterdir())}."
            )
        found[key] = existing[0]
    return found


class NiftiPairLoaderOperator(Operator):
    """Loads ``moving.nii.gz`` and ``fixed.nii.gz`` from a folder and emits them as ``Image`` objects.

    Unlike the SDK's ``NiftiDataLoader`` (which emits a bare array), the images keep their voxel-to-world matrix in
    the metadata (``affine``), in MONAI's (X, Y, Z) order.

    Named outputs:
        moving_image, fixed_image: ``Image`` (X, Y, Z) with metadata ``affine`` and ``filename_or_obj``.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        input_folder: str | os.PathLike,
        moving: str = "moving",
        fixed: str = "fixed",
        **kwargs,
    ) -> None:
        """
        Args:
            fragment: the application (or fragment) the operator belongs to.
            input_folder: the folder holding the pair.
            moving: file name of the moving image without suffix.
            fixed: file name of the fixed image without suffix.
        """
        self.input_folder = Path(input_folder)
        self.names = (moving, fixed)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        for key in IMAGE_KEYS:
            spec.output(key)

    def compute(self, op_input, op_output, context) -> None:
        loader = LoadImage(image_only=True)
        for key, path in find_pair_files(self.input_folder, *self.names).items():
            image = loader(str(path))
            metadata = {"affine": image.affine.numpy(), "filename_or_obj": str(path)}
            op_output.emit(Image(image.as_tensor().numpy(), metadata=metadata), key)


class RegistrationInferenceOperator(InferenceOperator):
    """Registers the moving image to the fixed image with an exported monai-mine bundle.

    The bundle comes from ``bundle_path`` or else from the application's models (``-m model.ts``), and is loaded as
    the SDK's bundle operator loads it (:func:`monai_mine.apps.deploy.load_registration_bundle`).

    Named inputs:
        moving_image, fixed_image: ``Image`` objects, (X, Y, Z) with ``affine``, or DICOM-derived volumes.

    Named outputs:
        ddf: ``Image`` (3, X, Y, Z), float32, displacement in voxels of the working grid, metadata ``affine``.
        warped: ``Image`` (1, X, Y, Z), float32, the preprocessed moving image warped onto the fixed one.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        app_context: AppContext,
        model_name: str = "",
        bundle_path: str | os.PathLike | None = None,
        device: str | None = None,
        instance_optimization: int | str = 0,
        **kwargs,
    ) -> None:
        """
        Args:
            fragment: the application (or fragment) the operator belongs to.
            app_context: the application's context, whose models hold the bundle when ``bundle_path`` is not given.
            model_name: the model's name when the application has several.
            bundle_path: an exported ``model.ts`` or a bundle folder (overrides the application's models).
            device: where to run; default CUDA when available, else CPU.
            instance_optimization: Adam steps per level of instance optimisation on each pair (0: the network
                alone; see :class:`monai_mine.optimization.InstanceOptimizer`), a preset (``"fast"``,
                ``"balanced"``, ``"accurate"``) or a schedule ``"A/B/C"``.
        """
        self.app_context = app_context
        self.instance_optimization = instance_optimization_schedule(instance_optimization).value
        self.model_name = model_name
        self.bundle_path = Path(bundle_path) if bundle_path else None
        self.device = device
        self._bundle: RegistrationBundle | None = None
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        for key in IMAGE_KEYS:
            spec.input(key)
        for name in OUTPUT_NAMES:
            spec.output(name)

    @property
    def bundle(self) -> RegistrationBundle:
        """The loaded bundle (loaded on first use)."""
        if self._bundle is None:
            path = self.bundle_path
            if path is None:
                models = self.app_context.models
                if not models:
                    raise FileNotFoundError(
                        "no bundle: pass bundle_path or run the application with -m <exported model.ts>."
                    )
                path = Path(models.get(self.model_name).path)
            self._bundle = load_registration_bundle(path, self.device, instance_optimization=self.instance_optimization)
            self._logger.info(f"loaded registration bundle {self._bundle.name!r} from {self._bundle.model_file}")
        return self._bundle

    def compute(self, op_input, op_output, context) -> None:
        images = {key: op_input.receive(key) for key in IMAGE_KEYS}
        result = self.predict(*self.pre_process(images))
        for name, image in self.post_process(result).items():
            op_output.emit(image, name)

    def pre_process(self, data: dict[str, Any], *args, **kwargs) -> tuple[Any, Any]:
        """``Image`` objects (or arrays) of the two input ports -> (moving, fixed) MetaTensors (X, Y, Z)."""
        tensors = []
        for key in IMAGE_KEYS:
            value = data[key]
            if isinstance(value, Image):
                tensors.append(image_to_metatensor(value.asnumpy(), value.metadata(), key))
            else:
                tensors.append(image_to_metatensor(value, None, key))
        return tuple(tensors)

    def predict(self, data: Any, *args, **kwargs) -> WorkingGridRegistration:
        """Run the bundle on ``(moving, fixed)`` (passed as ``predict(moving, fixed)``)."""
        return self.bundle.register(data, *args)

    def post_process(self, data: WorkingGridRegistration, *args, **kwargs) -> dict[str, Image]:
        """The result as float32 ``Image`` objects keyed by output port."""
        outputs = {}
        for name in OUTPUT_NAMES:
            array, metadata = metatensor_to_image_parts(getattr(data, name))
            outputs[name] = Image(array, metadata=metadata)
        return outputs


class RegistrationWriterOperator(Operator):
    """Writes the DDF and the warped image as NIfTI (float32) into a folder: ``ddf.nii.gz`` (X, Y, Z, 3, voxels) and
    ``warped.nii.gz``, each atomically, with the affine in the images' metadata.

    Named inputs:
        ddf, warped: ``Image`` objects as :class:`RegistrationInferenceOperator` emits them.
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | os.PathLike, **kwargs) -> None:
        """
        Args:
            fragment: the application (or fragment) the operator belongs to.
            output_folder: where to write (created when missing).
        """
        self.output_folder = Path(output_folder)
        self.written: list[Path] = []
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        for name in OUTPUT_NAMES:
            spec.input(name)

    def compute(self, op_input, op_output, context) -> None:
        for name in OUTPUT_NAMES:
            image = op_input.receive(name)
            affine = np.asarray(image.metadata().get("affine", np.eye(4)), dtype=np.float64)
            data = np.asarray(image.asnumpy(), dtype=np.float32)
            self.written.append(save_nifti(data, self.output_folder / f"{name}.nii.gz", affine))
