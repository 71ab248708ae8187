# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Command line: ``monai-mine COMMAND`` or ``python -m monai_mine COMMAND`` (``--help`` lists the commands)."""

from __future__ import annotations

from pathlib import Path

import fire

__all__ = ["demo", "version", "main"]


def demo(out_dir: str = "monai_mine_demo", size: int = 32, steps: int = 100, seed: int = 0) -> str:
    """Register a synthetic pair with an untrained VTN cascade optimised on it, and write the result as NIfTI.

    Args:
        out_dir: folder for fixed, moving, warped, ddf and label files (created; existing files of the same name
            are replaced, nothing else is touched).
        size: edge of the synthetic volume in voxels (a multiple of 8).
        steps: optimisation steps.
        seed: seed of the pair and the network.

    Returns:
        a one-line summary (Dice before/after, folding, time).
    """
    from monai_mine.data import save_nifti
    from monai_mine.demo import register_synthetic_pair

    result, tensors = register_synthetic_pair(size=size, steps=steps, seed=seed)
    folder = Path(out_dir)
    for name, tensor in tensors.items():
        save_nifti(tensor, folder / f"{name}.nii.gz")
    return (
        f"mean Dice {result.dice_before:.3f} -> {result.dice_after:.3f}, folding {result.folding_percent:.3f} %, "
        f"{result.steps} steps in {result.seconds:.1f} s; NIfTI files in {folder.resolve()}"
    )


def version() -> str:
    """The installed monai-mine version."""
    from monai_mine import __version__

    return __version__


def main() -> None:
    """Entry point of the ``monai-mine`` console script."""
    fire.Fire({"demo": demo, "version": version}, name="monai-mine")


if __name__ == "__main__":
    main()
