# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Many pairs in one process: the bundle loaded once, one output folder per pair, a progress line per pair.

Pairs come from a datalist JSON (:func:`pairs_from_datalist`: docs/design.md section 6, ``fixed_image``,
``moving_image`` and optionally ``moving_label`` per item) or from folders (:func:`pairs_from_folders`: two folders
paired by file name, or one fixed image and a folder of moving images); :func:`register_pairs` registers them with
:func:`~monai_mine.apps.registration.register.register_files`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from monai_mine.io.formats import strip_suffix

__all__ = ["ImagePair", "pairs_from_datalist", "pairs_from_folders", "register_pairs"]

logger = logging.getLogger(__name__)

IMAGE_ENDINGS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".mgz", ".mgh")
"""File endings taken as images in a folder (other files are skipped)."""


@dataclass
class ImagePair:
    """One registration to run: files, and the name of its output folder."""

    fixed: Path
    moving: Path
    name: str
    moving_labels: list[Path] = field(default_factory=list)


def _image_files(folder: Path) -> dict[str, Path]:
    return {
        strip_suffix(path.name): path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name.lower().endswith(IMAGE_ENDINGS)
    }


def pairs_from_folders(fixed: str | os.PathLike, moving: str | os.PathLike) -> list[ImagePair]:
    """Pairs of two folders matched by file name without the image ending (``a.nii.gz`` with ``a.mha``), or one
    fixed image with every image of a moving folder; each named after its moving image.

    Raises:
        FileNotFoundError: naming a folder with no images.
        ValueError: naming the files of one folder that have no partner in the other.
    """
    fixed, moving = Path(fixed), Path(moving)
    movings = _image_files(moving)
    if not movings:
        raise FileNotFoundError(f"the moving folder {moving} holds no image ({', '.join(IMAGE_ENDINGS)}).")
    if not fixed.is_dir():
        return [ImagePair(fixed, path, name) for name, path in movings.items()]
    fixeds = _image_files(fixed)
    if not fixeds:
        raise FileNotFoundError(f"the fixed folder {fixed} holds no image ({', '.join(IMAGE_ENDINGS)}).")
    alone = sorted(set(fixeds) ^ set(movings))
    if alone:
        raise ValueError(
            f"the fixed folder {fixed} and the moving folder {moving} pair images by file name, but {alone[:8]} "
            f"{'is' if len(alone) == 1 else 'are'} in only one of them: give both folders the same names, or a "
            "datalist JSON."
        )
    return [ImagePair(fixeds[name], movings[name], name) for name in sorted(fixeds)]


def pairs_from_datalist(path: str | os.PathLike, split: str = "test") -> list[ImagePair]:
    """Pairs of a datalist JSON: a list of items, or ``{split: [items]}``; each item has ``fixed_image`` and
    ``moving_image`` (and optionally ``moving_label``, one path or a list); relative paths are relative to the JSON
    file's folder. Each pair is named ``<index>_<moving image name>``.

    Raises:
        FileNotFoundError: when the datalist does not exist.
        ValueError: naming the file when it is no such datalist, the split is absent or empty, or an item lacks an
            image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist {path} does not exist.")
    try:
        content = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"datalist {path} is not JSON: {error}") from error
    items = content if isinstance(content, list) else content.get(split) if isinstance(content, dict) else None
    if not isinstance(items, list) or not items:
        found = sorted(k for k, v in content.items() if isinstance(v, list)) if isinstance(content, dict) else []
        raise ValueError(
            f"datalist {path} has no pairs in split {split!r} (lists found: {found}): expected a list of items with "
            "fixed_image and moving_image, or {split: [items]}; choose the split with --split."
        )
    base = path.parent
    pairs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("fixed_image") or not item.get("moving_image"):
            raise ValueError(
                f"datalist {path}, {split} item {index}: expected fixed_image and moving_image, got {item}."
            )
        labels = item.get("moving_label") or []
        labels = [labels] if isinstance(labels, str) else list(labels)
        moving = base / item["moving_image"]
        name = f"{index:03d}_{strip_suffix(moving.name)}"
        pairs.append(ImagePair(base / item["fixed_image"], moving, name, [base / label for label in labels]))
    return pairs


def register_pairs(
    pairs: Sequence[ImagePair],
    bundle,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    instance_optimization=0,
    device: str = "cpu",
    assume_affine: bool = False,
    overwrite: bool = False,
    model: str | os.PathLike | None = None,
    timer=None,
    qc: bool = True,
) -> list:
    """Register every pair with one loaded bundle into ``out_dir/<pair name>/`` (each folder written as a whole, as
    :func:`~monai_mine.apps.registration.register.register_files` writes one), printing a progress line per pair;
    the next pair's files are read in a thread while one registers.

    Args:
        pairs: the pairs (:func:`pairs_from_datalist`, :func:`pairs_from_folders`).
        bundle: a bundle folder or a loaded :class:`~monai_mine.bundle.TrainedModel`.
        out_dir: the folder of the pairs' output folders (created).
        checkpoint, instance_optimization, device, assume_affine, overwrite, model, qc: as for ``register_files``.
        timer: a :class:`~monai_mine.timing.StageTimer` to add every stage of every pair to.

    Returns:
        the :class:`~monai_mine.apps.registration.register.RegistrationReport` of each pair, in order.

    Raises:
        ValueError: for no pairs, two pairs of one name; a pair's error names the pair (the pairs before it are
            written).
    """
    from monai_mine.apps.registration.register import read_inputs, register_files
    from monai_mine.apps.registration.resources import check_device
    from monai_mine.bundle import TrainedModel, load_trained_model
    from monai_mine.optimization.schedule import instance_optimization_schedule

    if not pairs:
        raise ValueError("no pairs to register.")
    names = [pair.name for pair in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"pairs {repeated} would share an output folder: give them different names.")
    if isinstance(instance_optimization, (int, str)):  # refused before any work (else: an optimiser of one's own)
        instance_optimization = instance_optimization_schedule(instance_optimization).value
    if not isinstance(bundle, TrainedModel):
        bundle = load_trained_model(bundle, checkpoint, device=check_device(device), model=model, timer=timer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, start = [], time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="monai_mine_reader") as reader:

        def read(pair: ImagePair) -> Future:
            return reader.submit(read_inputs, pair.fixed, pair.moving, pair.moving_labels, assume_affine)

        upcoming = read(pairs[0])
        for index, pair in enumerate(pairs, start=1):
            try:
                inputs = upcoming.result()
                if index < len(pairs):  # the next pair is read while this one registers
                    upcoming = read(pairs[index])
                report = register_files(
                    pair.fixed,
                    pair.moving,
                    bundle,
                    out_dir / pair.name,
                    moving_labels=pair.moving_labels,
                    instance_optimization=instance_optimization,
                    assume_affine=assume_affine,
                    overwrite=overwrite,
                    timer=timer,
                    qc=qc,
                    inputs=inputs,
                )
            except (ValueError, FileNotFoundError, MemoryError) as error:
                raise type(error)(
                    f"pair {index} of {len(pairs)} ({pair.name}: {pair.moving} to {pair.fixed}): {error}"
                ) from error
            reports.append(report)
            elapsed = time.perf_counter() - start
            logger.info(
                f"[{index}/{len(pairs)}] {pair.name}: {report.runtime_s:.2f} s, "
                f"folding {report.folding_percent:.3f} %; "
                f"{elapsed / index:.2f} s per pair, about {elapsed / index * (len(pairs) - index):.0f} s left"
            )
    return reports
