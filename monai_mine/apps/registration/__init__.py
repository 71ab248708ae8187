# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Registration of real image files with a bundle: any size, orientation and spacing, results physically right.

:func:`register_files` registers two NIfTI files and writes the warped image, the DDF on the fixed image's grid,
warped label maps, a Jacobian map and a QC picture; :func:`warp_file` and :func:`jacobian_file` apply and inspect a
saved DDF. The geometry (working grid, resampling through world coordinates, DDFs across grids) is in
:mod:`monai_mine.apps.registration.geometry`; the refinement of a DDF on its pair (``instance_optimization``) is
:class:`monai_mine.optimization.InstanceOptimizer`.
"""

from __future__ import annotations

from monai_mine.apps.registration.apply import jacobian_file, warp_file
from monai_mine.apps.registration.geometry import (
    Grid,
    closest_ras_grid,
    ddf_to_grid,
    physical_displacement,
    resample_to_grid,
    warp_to_grid,
    working_grid,
)
from monai_mine.apps.registration.io import Volume, load_ddf, load_volume, save_ddf, save_volume
from monai_mine.apps.registration.register import (
    RegistrationReport,
    RegistrationResult,
    register_files,
    register_volumes,
)

__all__ = [
    "Grid",
    "RegistrationReport",
    "RegistrationResult",
    "Volume",
    "closest_ras_grid",
    "ddf_to_grid",
    "jacobian_file",
    "load_ddf",
    "load_volume",
    "physical_displacement",
    "register_files",
    "register_volumes",
    "resample_to_grid",
    "save_ddf",
    "save_volume",
    "warp_file",
    "warp_to_grid",
    "working_grid",
]
