# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A MONAI Label studies folder from monai-mine's demo pairs, to try the sample app without data of one's own.

    python -m monai_mine.apps.label.studies demo_studies [--pairs 4] [--split test] [--size 64] [--no-labels]

MONAI Label's local datastore takes every image file in the studies folder as an image (its id is the file name
without ``.nii.gz``) and ``labels/final/<id>.nii.gz`` as its approved label, which is what
:func:`monai_mine.apps.label.datastore.datastore_records` reads for training. Pair ``i`` of the chosen split of
:func:`monai_mine.data.demo_datalist` becomes the images ``moving_<iii>`` and ``fixed_<iii>`` (and their labels), so
an infer request registers ``moving_000`` to ``fixed_000``; training pairs all images at random.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL, MOVING_IMAGE, MOVING_LABEL

__all__ = ["make_demo_studies", "main"]

LABELS_FOLDER = Path("labels") / "final"
"""Where MONAI Label's local datastore keeps approved labels (tag ``final``), relative to the studies folder."""


def make_demo_studies(
    out_dir: str | os.PathLike,
    pairs: int | None = 4,
    split: str = "test",
    labels: bool = True,
    flavour: str = "mono",
    size: int = 64,
    datalist: str | os.PathLike | None = None,
) -> list[tuple[str, str]]:
    """Copy demo pairs into a MONAI Label studies folder.

    Args:
        out_dir: the studies folder (created when missing; files of the same names are replaced, others left alone).
        pairs: how many pairs of the split to copy (``None``: all).
        split: the datalist split to copy from (``"training"``, ``"validation"`` or ``"test"``).
        labels: also copy the label maps into ``labels/final/``.
        flavour: demo flavour (``"mono"`` or ``"contrast"``), when ``datalist`` is not given.
        size: demo volume edge, when ``datalist`` is not given.
        datalist: a demo ``datalist.json`` to copy from; default :func:`monai_mine.data.demo_datalist` of
            ``flavour`` and ``size`` (generated on first use under ``$MONAI_MINE_DATA``, else
            ``~/.cache/monai_mine``).

    Returns:
        ``[(moving image id, fixed image id), ...]`` in the datastore.

    Raises:
        ValueError: for an unknown split, a split without pairs, or ``pairs`` < 1.
    """
    if datalist is None:
        from monai_mine.data import demo_datalist

        datalist = demo_datalist(flavour, size=size)
    datalist = Path(datalist)
    items = json.loads(datalist.read_text())
    if split not in items or not isinstance(items[split], list) or not items[split]:
        found = sorted(key for key, value in items.items() if isinstance(value, list) and value)
        raise ValueError(f"{datalist} has no pairs in split {split!r} (splits with pairs: {found}).")
    if pairs is not None and int(pairs) < 1:
        raise ValueError(f"pairs must be at least 1, got {pairs}.")
    chosen = items[split] if pairs is None else items[split][: int(pairs)]
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if labels:
        (folder / LABELS_FOLDER).mkdir(parents=True, exist_ok=True)
    ids = []
    for index, item in enumerate(chosen):
        moving_id, fixed_id = f"moving_{index:03d}", f"fixed_{index:03d}"
        copies = {
            moving_id: (item[MOVING_IMAGE], item.get(MOVING_LABEL)),
            fixed_id: (item[FIXED_IMAGE], item.get(FIXED_LABEL)),
        }
        for image_id, (image, label) in copies.items():
            shutil.copyfile(datalist.parent / image, folder / f"{image_id}.nii.gz")
            if labels and label:
                shutil.copyfile(datalist.parent / label, folder / LABELS_FOLDER / f"{image_id}.nii.gz")
        ids.append((moving_id, fixed_id))
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_mine.apps.label.studies",
        description="Make a MONAI Label studies folder from monai-mine's demo pairs (moving_<i>, fixed_<i>, and "
        "labels/final/ with their label maps).",
    )
    parser.add_argument("out_dir", help="the studies folder to write (created when missing)")
    parser.add_argument("--pairs", type=int, default=4, help="pairs to copy (default 4; 0: all of the split)")
    parser.add_argument("--split", default="test", help="demo split: training, validation or test (default test)")
    parser.add_argument("--flavour", default="mono", help="demo flavour: mono or contrast (default mono)")
    parser.add_argument("--size", type=int, default=64, help="demo volume edge in voxels (default 64)")
    parser.add_argument("--datalist", default=None, help="a demo datalist.json to copy from instead")
    parser.add_argument("--no-labels", action="store_true", help="copy the images only")
    args = parser.parse_args(argv)
    ids = make_demo_studies(
        args.out_dir,
        pairs=args.pairs or None,
        split=args.split,
        labels=not args.no_labels,
        flavour=args.flavour,
        size=args.size,
        datalist=args.datalist,
    )
    labelled = "" if args.no_labels else f", labels in {Path(args.out_dir) / LABELS_FOLDER}"
    print(f"{Path(args.out_dir)}: {len(ids)} pairs (moving, fixed): {ids}{labelled}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
