# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The bundle folders a MONAI Label app serves: ``<app>/model/<name>``, as MONAI Label's bundle app keeps them, and
loading a bundle's weights there with an error that says what to do when they do not fit.

A bundle is copied into the app's model folder from monai-mine's ``bundles/<name>`` (configs, docs, LICENSE and the
trained ``models/``; not ``eval/``, ``runs/`` or training checkpoints), so that training in the app writes its
weights inside the app and the repository's bundles are left untouched. Each copy records the SHA-256 of every file
it was made from (:data:`SOURCE_MANIFEST`); on the next start the copy is kept while the source is unchanged (weights
trained in the app included), and the files that changed in the source since are updated (new shipped weights,
configs, docs); a file changed both there and in the app, or a copy without that record whose files are older than
the source's where they differ, has the whole copy moved aside to ``<name>.replaced-<time>`` and made again.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_mine.bundle import TrainedModel, bundle_weights, load_trained_model, shipped_bundle_dir
from monai_mine.bundle.weights import file_sha256, record_path

__all__ = [
    "BUNDLE_NAMES",
    "COPY_IGNORED",
    "SOURCE_MANIFEST",
    "BundleWeightsError",
    "bundle_files",
    "load_bundle_network",
    "prepare_app_bundles",
    "shipped_weights_warning",
]

logger = logging.getLogger(__name__)

BUNDLE_NAMES = ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet")

COPY_IGNORED = ("eval", "runs", "__pycache__", "checkpoint*.pt", "*.copying")
"""Names (at any depth) neither copied into the app nor compared: outputs of trainings and evaluations."""

SOURCE_MANIFEST = ".monai_mine_source.json"
"""File in each app copy: ``{"source": <folder>, "files": {relative path: SHA-256}}`` of what it was copied from."""


class BundleWeightsError(ValueError):
    """A bundle's weights cannot be loaded into its network; the message names the file, the bundle and what to do."""


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in COPY_IGNORED)


def bundle_files(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: SHA-256}`` of a bundle folder's files, without :data:`COPY_IGNORED` and the manifest."""
    folder = Path(folder)
    files = {}
    for root, directories, names in os.walk(folder):
        directories[:] = sorted(d for d in directories if not _ignored(d))
        for name in sorted(names):
            if _ignored(name) or name == SOURCE_MANIFEST:
                continue
            path = Path(root) / name
            files[path.relative_to(folder).as_posix()] = file_sha256(path)
    return files


def _read_manifest(target: Path) -> dict[str, str] | None:
    try:
        files = json.loads((target / SOURCE_MANIFEST).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return files if isinstance(files, dict) else None


def shipped_weights_warning(bundle_dir: str | os.PathLike) -> str | None:
    """What to tell before a training in the app writes over the weights the app copied with the bundle (the
    weights monai-mine ships), or ``None`` when ``models/model.pt`` is missing or is no longer those weights (trained
    in the app since, or a folder the app did not copy: no :data:`SOURCE_MANIFEST`)."""
    bundle_dir = Path(bundle_dir)
    weights = bundle_dir / "models" / "model.pt"
    recorded = _read_manifest(bundle_dir)
    if not weights.is_file() or recorded is None or recorded.get("models/model.pt") != file_sha256(weights):
        return None
    try:
        source = json.loads((bundle_dir / SOURCE_MANIFEST).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        source = None
    return (
        f"this training of {bundle_dir.name!r} writes its weights over {weights}, which holds the weights shipped "
        f"with the bundle (copied from {source or 'its source'}); a short training on a few images can leave them "
        "worse than they were. The shipped weights are not lost: to serve them again, stop the server, delete "
        f"{bundle_dir} and start it again (the app copies the bundle anew)."
    )


def _copy(origin: Path, target: Path, files: Mapping[str, str]) -> None:
    staging = target.parent / f".{target.name}.copying"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(origin, staging, ignore=lambda _, names: [n for n in names if _ignored(n)])
    _write_manifest(staging, origin, files)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def _older_than(target: Path, origin: Path, current: Mapping[str, str], files: Mapping[str, str]) -> bool:
    """Whether a file of ``target`` differs from the one of ``origin`` and is older (copies keep the source's
    modification times, so a copy of an earlier state of the source is older than the source's changed files)."""
    return any(
        path in current
        and current[path] != digest
        and (origin / path).stat().st_mtime_ns > (target / path).stat().st_mtime_ns
        for path, digest in files.items()
    )


def _write_manifest(target: Path, origin: Path, files: Mapping[str, str]) -> None:
    manifest = {"source": os.fspath(origin), "files": dict(files)}
    temporary = target / f"{SOURCE_MANIFEST}.copying"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, target / SOURCE_MANIFEST)


def _update_file(origin: Path, target: Path, path: str, present: bool) -> None:
    """Copy one file of the source over the copy's (atomically), or delete it when the source has it no more."""
    destination = target / path
    if not present:
        destination.unlink(missing_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.copying")
    shutil.copy2(origin / path, temporary)
    os.replace(temporary, destination)


def _move_aside(target: Path, reason: str) -> Path:
    aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    index = 1
    while aside.exists():
        aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{index}")
        index += 1
    os.replace(target, aside)
    logger.warning(f"{target} {reason}: the previous copy (with any weights trained in the app) is kept as {aside}.")
    return aside


def prepare_app_bundles(
    model_dir: str | os.PathLike,
    names: str | Sequence[str] = BUNDLE_NAMES,
    source: Callable[[str], str | os.PathLike] = shipped_bundle_dir,
) -> dict[str, Path]:
    """``{name: <model_dir>/<name>}`` for each bundle, copying it from ``source(name)`` when it is missing there or
    when ``source(name)`` changed since it was copied.

    A copy is kept as long as the source's files (:func:`bundle_files`) equal those recorded at copy time in
    :data:`SOURCE_MANIFEST`, whatever training in the app did to it. Files changed in the source since are updated
    in the copy when the app left them as copied (new shipped weights, configs, docs; weights trained in the app are
    kept when only other files changed). When a file changed in both (e.g. new shipped weights and weights trained
    in the app), the copy is moved to ``<name>.replaced-<time>`` and made again. A copy without manifest (made by an
    older monai-mine, or by hand) is moved aside and made again when one of its files differs from the source's and
    is older than it (e.g. weights of a quick training copied before the repository's weights were restored: copies
    keep the source's modification times); otherwise it is kept and taken as a copy of the source as it is now.

    Args:
        model_dir: the app's model folder (created when missing).
        names: bundle names, or one comma-separated string as given with ``--conf models vtn_addd,miregnet``.
        source: where a bundle is copied from (default:
            :func:`monai_mine.bundle.shipped_bundle_dir`, this source tree's ``bundles/<name>``).

    Raises:
        ValueError: for a name that is not a monai-mine bundle.
        FileNotFoundError: when a bundle is in neither place.
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUNDLE_NAMES]
    if unknown or not names:
        raise ValueError(f"models must name monai-mine bundles from {list(BUNDLE_NAMES)}, got {list(names)}.")
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    bundles = {}
    for name in names:
        target = folder / name
        bundles[name] = target
        copied = (target / "configs" / "metadata.json").is_file()
        try:
            origin = Path(source(name))
        except FileNotFoundError:
            if copied:  # an app copy without its source (e.g. monai-mine installed from a wheel): serve it as it is
                continue
            raise
        files = bundle_files(origin)
        if not copied:
            _copy(origin, target, files)
            logger.info(f"copied bundle {name!r} from {origin} to {target}")
            continue
        recorded = _read_manifest(target)
        if recorded == files:
            continue
        current = bundle_files(target)
        if recorded is None:
            if _older_than(target, origin, current, files):
                changed = sorted(path for path in files if current.get(path) != files[path])
                _move_aside(target, f"is older than {origin} ({', '.join(changed[:5])} changed there)")
                _copy(origin, target, files)
                logger.info(f"copied bundle {name!r} again from {origin} to {target}")
            else:  # made by hand, or before copies recorded their source, and not older: kept as a copy of the source
                _write_manifest(target, origin, files)
            continue
        changed = sorted(path for path in set(files) | set(recorded) if files.get(path) != recorded.get(path))
        conflicts = [p for p in changed if current.get(p) not in (recorded.get(p), files.get(p))]
        if conflicts:  # changed both in the source and in the app (e.g. new shipped weights and weights trained here)
            _move_aside(target, f"and {origin} both changed {', '.join(conflicts[:5])}")
            _copy(origin, target, files)
            logger.info(f"copied bundle {name!r} again from {origin} to {target}")
            continue
        for path in changed:  # changed in the source only: those files are updated, the rest is kept
            _update_file(origin, target, path, present=path in files)
        _write_manifest(target, origin, files)
        logger.info(f"updated bundle {name!r} in {target} from {origin}: {', '.join(changed)}")
    return bundles


def load_bundle_network(
    bundle_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """:func:`monai_mine.bundle.load_trained_model` for a bundle served by a MONAI Label app: the network rebuilt as
    the weights' model record says (``models/model_config.json``), with the weights loaded.

    Raises:
        FileNotFoundError: when the weights file does not exist.
        BundleWeightsError: when the weights cannot be read, their record is stale or contradicts ``overrides``, or
            they do not fit the network (e.g. weights of a quick 4-channel training saved without their record):
            the message names the weights file, the bundle and what to do.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_weights(bundle_dir, weights)
    try:
        return load_trained_model(bundle_dir, path, config_files, overrides, device)
    except ValueError as error:
        name = bundle_dir.name
        raise BundleWeightsError(
            f"cannot use the weights {path} with bundle {name!r} ({bundle_dir}): {error} To fix it, put weights "
            f"trained with this bundle there, together with the {record_path(path).name} its training writes beside "
            f"them; or delete {path.name} (and {record_path(path).name}) and train from scratch (MONAI Label: POST "
            f'/train/{name} with {{"pretrained": false}}); or, in the sample app, delete {bundle_dir} so that the app '
            "copies the bundle from monai-mine's bundles/ again on its next start."
        ) from error
