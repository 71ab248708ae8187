# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""A model record is data: the schema every record read from a file must satisfy before anything uses it, and the
hash that binds a record to its weights (docs/design.md section 8).

A record travels with weights that may come from anyone (``model_config.json`` beside ``model.pt``, the
``model_record`` entry of ``checkpoint.pt``, the ``model_config.json`` an export carries), so nothing in it may run
code. :func:`check_record_data` accepts only

- the keys ``format``, ``bundle`` (``name``, ``version``), ``config``, ``training``, ``weights_sha256``,
  ``record_sha256``, holding plain JSON values (``None``, bools, numbers, strings, lists, string-keyed dicts);
- in ``config``: the recorded ids (:data:`~monai_mine.bundle.record.RECORDED_IDS`) and the ids they refer to, and
  nothing else (never ``bundle_root``, ``imports``, ``_meta_`` or a runtime id);
- ``_target_`` naming an allow-listed component (:func:`allowed_targets`: the public networks and losses of
  ``monai_mine``, MONAI's losses and intensity transforms); no other ``_key_`` (``_mode_``, ``_requires_``, ...);
- ``@`` references only to ids the record itself holds, no ``%`` macros (they read other files);
- ``$`` expressions only as data to compare: :func:`check_expressions` refuses, when a record is applied, every
  expression that is not the very one the bundle's own configs (code the user runs) hold at that place.

:func:`record_digest` is the SHA-256 over a record's canonical JSON, its weights' SHA-256 included, so an edited
record (or one naming other weights) no longer matches the ``record_sha256`` written at save time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
from collections.abc import Iterator, Mapping
from typing import Any

from monai.bundle.config_item import ConfigExpression
from monai.bundle.reference_resolver import ReferenceResolver
from monai.bundle.utils import MACRO_KEY

__all__ = [
    "RECORD_FORMAT",
    "RESERVED_IDS",
    "RUNTIME_IDS",
    "ModelRecordError",
    "allowed_targets",
    "check_expressions",
    "check_record_data",
    "record_digest",
]

RECORD_FORMAT = "monai-mine model record 1"
"""The ``format`` value of a record."""

RECORD_KEYS = ("format", "bundle", "config", "training", "weights_sha256", "record_sha256")
"""The keys a record may hold."""

BUNDLE_KEYS = ("name", "version")
"""The keys of a record's ``bundle``."""

RUNTIME_IDS = ("device",)
"""Ids never recorded: they describe the machine, not the model (a record may refer to them)."""

RESERVED_IDS = ("bundle_root", "imports", "_meta_", *RUNTIME_IDS)
"""Config ids a record never sets: where the bundle lives, what it imports, its metadata, the machine."""

TARGET_MODULES = {
    "monai_mine.networks": "monai_mine.networks",
    "monai_mine.losses": "monai_mine.losses",
    "monai.losses": "monai.losses",
    "monai.transforms.intensity.dictionary": "monai.transforms",
    "monai.transforms.intensity.array": "monai.transforms",
}
"""Module -> the package that also exports its names: where a record's ``_target_`` may come from."""

_TARGET_KEY = "_target_"


class ModelRecordError(ValueError):
    """A model record that is not plain data of the known shape, or not bound to its weights."""


@functools.cache
def allowed_targets() -> frozenset[str]:
    """Every ``_target_`` a record may name: each public class or function of :data:`TARGET_MODULES`, by its short
    name (as MONAI's component locator finds it), its module path and its package path (e.g.
    ``ScaleIntensityRangePercentilesd``, ``monai.transforms.ScaleIntensityRangePercentilesd``)."""
    names: set[str] = set()
    for module_name, package in TARGET_MODULES.items():
        module = importlib.import_module(module_name)
        public = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items() if not name.startswith("_") and inspect.isclass(value)
        ]
        for name in public:
            if callable(getattr(module, name, None)):
                names.update({name, f"{module_name}.{name}", f"{package}.{name}"})
    return frozenset(names)


def _top_id(reference: str) -> str:
    return ReferenceResolver.split_id(ReferenceResolver.normalize_id(reference))[0]


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(config path, value)`` of ``value`` and everything inside it, depth first (paths joined with ``#``)."""
    yield path, value
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}#{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}#{index}")


def _plain_problem(value: Any) -> str | None:
    """Why ``value`` (one node, not its content) is not plain JSON data, or ``None``."""
    if value is None or isinstance(value, (bool, int, float, str, list)):
        return None
    if isinstance(value, Mapping):
        bad = [key for key in value if not isinstance(key, str)]
        return f"a dict with a non-string key ({bad[0]!r})" if bad else None
    return f"a {type(value).__name__}, not plain JSON data"


def _config_problem(path: str, value: Any, record_ids: set[str]) -> str | None:
    """Why one node of a record's ``config`` could run code or reach outside the record, or ``None``."""
    if isinstance(value, Mapping):
        special = [key for key in value if key.startswith("_") and key.endswith("_") and key != _TARGET_KEY]
        if special:
            return f"holds {special[0]!r} (only '_target_' may name a component)"
        target = value.get(_TARGET_KEY)
        if _TARGET_KEY in value and target not in allowed_targets():
            return (
                f"has _target_ {target!r}, which is not an allowed component (the public networks and losses of "
                "monai_mine, MONAI's losses and intensity transforms)"
            )
        return None
    if not isinstance(value, str):
        return None
    if value.startswith(MACRO_KEY):
        return f"is a macro ({value[:60]!r}), which reads another file"
    if value.startswith(ReferenceResolver.ref) or ConfigExpression.is_expression(value):
        outside = sorted(ref for ref in ReferenceResolver.match_refs_pattern(value) if _top_id(ref) not in record_ids)
        if outside or (value.startswith(ReferenceResolver.ref) and not ReferenceResolver.match_refs_pattern(value)):
            return f"refers to {outside[0] if outside else value!r}, which the record does not hold"
    return None


def _recorded_closure(config: Mapping[str, Any], roots: tuple[str, ...]) -> set[str]:
    """The ids of ``config`` reachable from ``roots`` through ``@`` references."""
    reached: set[str] = set()
    pending = [root for root in roots if root in config]
    while pending:
        config_id = pending.pop()
        if config_id in reached:
            continue
        reached.add(config_id)
        strings = [item for _, item in _walk(config[config_id], config_id) if isinstance(item, str)]
        refs = [ref for item in strings for ref in ReferenceResolver.match_refs_pattern(item)]
        pending += [_top_id(ref) for ref in refs if _top_id(ref) in config]
    return reached


def check_record_data(data: Any, source: str, recorded_ids: tuple[str, ...]) -> None:
    """Raise unless ``data`` is a model record of plain values that runs nothing (see the module docstring).

    Args:
        data: the record as read from JSON or a ``weights_only`` checkpoint.
        source: the file (and entry) it came from, for the message.
        recorded_ids: the config ids a record starts from (the others must be referred to from them).

    Raises:
        ModelRecordError: one line naming ``source``, the key and what was expected.
    """
    if not isinstance(data, Mapping) or data.get("format") != RECORD_FORMAT or not isinstance(data.get("config"), dict):
        found = sorted(map(str, data))[:6] if isinstance(data, Mapping) else type(data).__name__
        raise ModelRecordError(
            f"{source} is not a monai-mine model record ({RECORD_FORMAT!r} with a 'config'); found {found}."
        )
    for key in ("bundle", "training"):
        if not isinstance(data.get(key) or {}, Mapping):
            raise ModelRecordError(f"{source}: {key} must be a dict, got {type(data[key]).__name__}.")
    unknown = [key for key in data if key not in RECORD_KEYS]
    unknown += [f"bundle#{key}" for key in data.get("bundle") or {} if key not in BUNDLE_KEYS]
    if unknown:
        expected = f"{list(RECORD_KEYS)}, bundle {list(BUNDLE_KEYS)}"
        raise ModelRecordError(f"{source}: unknown key {unknown[0]!r} in a model record (expected {expected}).")
    for key in ("weights_sha256", "record_sha256", "bundle#name", "bundle#version"):
        value = data.get(key) if "#" not in key else (data.get("bundle") or {}).get(key.split("#")[1])
        if value is not None and not isinstance(value, str):
            raise ModelRecordError(f"{source}: {key} must be a string or null, got {value!r}.")
    for path, value in _walk(dict(data), ""):
        problem = _plain_problem(value)
        if problem:
            raise ModelRecordError(f"{source}: {path.lstrip('#')} is {problem}.")
    config = data["config"]
    for path, value in _walk(config, "config"):
        problem = _config_problem(path, value, set(config) | set(RUNTIME_IDS))
        if problem:
            raise ModelRecordError(f"{source}: {path} {problem}; a model record holds data only.")
    bad_ids = [key for key in config if key in RESERVED_IDS or not key or "#" in key or ReferenceResolver.sep in key]
    stray = sorted(set(config) - _recorded_closure(config, recorded_ids))
    if bad_ids or stray:
        raise ModelRecordError(
            f"{source}: config#{(bad_ids or stray)[0]} is not a recorded id (a record holds {list(recorded_ids)} and "
            "the ids they refer to, never bundle_root, imports, _meta_ or device)."
        )


def _at(config: Any, path: list[str]) -> Any:
    """The value at ``path`` (dict keys and list indices as strings) of ``config``, or ``None`` when absent."""
    for part in path:
        if isinstance(config, Mapping) and part in config:
            config = config[part]
        elif isinstance(config, list) and part.isdigit() and int(part) < len(config):
            config = config[int(part)]
        else:
            return None
    return config


def check_expressions(config: Mapping[str, Any], source: str, trusted: list[Mapping[str, Any]]) -> None:
    """Raise unless every ``$`` expression in a record's ``config`` is the one a trusted config (the bundle's own
    configs and overlays being run) holds at the same place: the record chooses data, never code.

    Args:
        config: the record's config (checked by :func:`check_record_data`).
        source: the record's file, for the message.
        trusted: raw configs (macros and relative ids resolved), looked up in order.

    Raises:
        ModelRecordError: naming ``source`` and the config path of the first other expression.
    """
    for path, value in _walk(dict(config), ""):
        if not ConfigExpression.is_expression(value):
            continue
        parts = path.lstrip("#").split("#")
        if not any(_at(candidate, parts) == value for candidate in trusted):
            raise ModelRecordError(
                f"{source}: {'#'.join(parts)} is the expression {value[:80]!r}, which the bundle's configs do not "
                "hold there; a model record holds data only (expressions come from the bundle's own configs)."
            )


def record_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON (sorted keys, no spaces, ASCII) without its ``record_sha256``.

    The record names its weights' SHA-256, so the digest covers the weights and the record together.
    """
    content = {key: value for key, value in data.items() if key != "record_sha256"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
