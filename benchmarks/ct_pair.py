# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A synthetic CT-sized pair for measuring ``monai-mine register``'s memory: two 512x512x400 int16 volumes
(0.8 x 0.8 x 1 mm; air, a body ellipsoid, a dense inner ellipsoid, noise), the moving one shifted by 6 voxels.

    python benchmarks/ct_pair.py --out /tmp/ct_pair

The measurement it serves is in ``benchmarks/results/speed.md`` ("Peak memory of monai-mine register").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (512, 512, 400)
SPACING = (0.8, 0.8, 1.0)


def ct_volume(shift: int) -> np.ndarray:
    """Air (-1000), a body ellipsoid (40), a dense inner ellipsoid (700) and uniform noise of +-20, int16 on
    :data:`SHAPE`; both ellipsoids moved by ``shift`` voxels along the first and third axes."""
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    body = ((x - 256 - shift) / 200.0) ** 2 + ((y - 256) / 150.0) ** 2 + ((z - 200 - shift) / 180.0) ** 2
    inner = ((x - 220 - shift) / 40.0) ** 2 + ((y - 256) / 40.0) ** 2 + ((z - 200 - shift) / 60.0) ** 2
    image = np.full(SHAPE, -1000, np.int16)
    image[body < 1] = 40
    image[inner < 1] = 700
    image += np.random.default_rng(shift).integers(-20, 20, size=SHAPE, dtype=np.int16)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="ct_pair", help="folder for fixed.nii.gz and moving.nii.gz")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*SPACING, 1.0])
    for name, shift in (("fixed", 0), ("moving", 6)):
        image = nib.Nifti1Image(ct_volume(shift), affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, out / f"{name}.nii.gz")


if __name__ == "__main__":
    main()
