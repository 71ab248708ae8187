# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The model record: how a trained network was configured, kept with its weights (docs/design.md section 8).

A record holds the bundle configuration that rebuilds the network and its preprocessing (``network_def``,
``image_size``, ``intensity``) and the training loss (``loss_terms``), together with every config id these refer
to, as raw config (``_target_`` definitions and expressions, macros and relative ids resolved). Applied to a
bundle's configs as overrides, it rebuilds exactly what was trained, whatever the bundle's defaults are now.

A record is data (:mod:`monai_mine.bundle.record_schema`): :meth:`ModelRecord.from_dict` refuses one that could run
code or that is not bound to its weights, and :func:`apply_record` refuses an expression the bundle's own configs
do not hold.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.reference_resolver import ReferenceResolver

from monai_mine.bundle.record_schema import (
    RECORD_FORMAT,
    RUNTIME_IDS,
    ModelRecordError,
    check_expressions,
    check_record_data,
    record_digest,
)

__all__ = ["RECORDED_IDS", "ModelRecord", "ModelRecordError", "apply_record", "record_config"]

RECORDED_IDS = ("network_def", "image_size", "intensity", "loss_terms")
"""The config ids a record keeps (with the ids they refer to): network, working grid, intensity normalisation and
the training loss the weights were trained with."""

_MISSING = object()


@dataclass
class ModelRecord:
    """How a trained network was configured.

    Attributes:
        bundle: ``{"name": ..., "version": ...}`` of the bundle that trained it.
        config: config id -> raw config value (see the module docstring); applied as overrides it rebuilds the
            network, its preprocessing and its loss.
        training: a summary of the training data and length (datalist, pairs, iterations, epochs, ...).
        weights_sha256: the SHA-256 of the weights file this record describes (``None`` inside a training
            checkpoint, which holds its weights itself; in an export, the weights it was exported from). The saved
            record adds ``record_sha256``, the SHA-256 of its canonical JSON (this hash left out), binding the two.
        source: where the record was read from, for messages (not saved).
    """

    bundle: dict[str, Any]
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    source: str = field(default="the model record", compare=False)

    @property
    def name(self) -> str:
        return str(self.bundle.get("name", "unknown"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what ``model_config.json`` and a training checkpoint's ``model_record`` hold), bound by
        its ``record_sha256``."""
        data = {
            "format": RECORD_FORMAT,
            "bundle": dict(self.bundle),
            "config": copy.deepcopy(self.config),
            "training": copy.deepcopy(self.training),
            "weights_sha256": self.weights_sha256,
        }
        return {**data, "record_sha256": record_digest(data)}

    @classmethod
    def from_dict(cls, data: Any, source: str, require_binding: bool = True) -> ModelRecord:
        """Read :meth:`to_dict`'s data, from whatever file it came (``source`` names it in errors): the one check
        of every record read (:func:`~monai_mine.bundle.record_schema.check_record_data`), then its binding.

        Args:
            data: the record as read.
            source: its file (and entry), for messages.
            require_binding: check ``record_sha256``; only re-binding (``rebind_record``) and a resumed training,
                which records its own configuration, read a record without it.

        Raises:
            ModelRecordError: (a ``ValueError``) naming ``source`` and the key when ``data`` is not a model record
                of plain values, holds something that would run code, was edited after it was saved, or was saved
                before records were bound (with how to re-bind it).
        """
        check_record_data(data, source, RECORDED_IDS)
        if require_binding and data.get("record_sha256") is None:
            raise ModelRecordError(
                f"{source} is a model record without record_sha256 (saved before records were bound to their "
                "weights): check that it holds what you expect, then re-bind it with "
                "monai_mine.bundle.rebind_record(<its weights or checkpoint file>); for an export, export it again."
            )
        if require_binding and data["record_sha256"] != record_digest(data):
            raise ModelRecordError(
                f"{source}: the model record was changed after it was saved (record_sha256 differs from its "
                "content): restore it, or use the weights with the record they were saved with."
            )
        return cls(
            bundle=dict(data.get("bundle") or {}),
            config=dict(data["config"]),
            training=dict(data.get("training") or {}),
            weights_sha256=data.get("weights_sha256"),
            source=source,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def _references(value: Any) -> set[str]:
    """The config ids that a raw config value refers to (``"@id"`` and inside ``"$..."`` expressions)."""
    if isinstance(value, Mapping):
        return set().union(*(_references(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value)) if value else set()
    if isinstance(value, str):
        return set(ReferenceResolver.match_refs_pattern(value))
    return set()


def _top_id(config_id: str) -> str:
    return ReferenceResolver.split_id(ReferenceResolver.normalize_id(config_id))[0]


def _resolved_copy(parser: ConfigParser) -> ConfigParser:
    """A copy of ``parser``'s raw config with macros and relative ids resolved (``parser`` itself is left alone:
    it may be in the middle of building components)."""
    copied = ConfigParser(copy.deepcopy(parser.get()))
    copied.resolve_macro_and_relative_ids()
    return copied


def record_config(parser: ConfigParser, ids: Iterable[str] = RECORDED_IDS) -> dict[str, Any]:
    """The raw values of ``ids`` and of every top-level id they refer to, transitively, from ``parser``.

    Ids that the parser lacks are left out; :data:`RUNTIME_IDS` are never followed.

    Args:
        parser: a bundle's configs as run (overrides applied); macros and relative ids are resolved in a copy.
        ids: the ids to start from.
    """
    parser = _resolved_copy(parser)
    recorded: dict[str, Any] = {}
    pending = [config_id for config_id in ids if config_id in parser.get()]
    while pending:
        config_id = pending.pop()
        if config_id in recorded or config_id in RUNTIME_IDS:
            continue
        value = json.loads(json.dumps(parser[config_id]))  # a plain copy; raises for a non-JSON value
        recorded[config_id] = value
        pending += [_top_id(ref) for ref in _references(value) if _top_id(ref) in parser.get()]
    return recorded


def _first_difference(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    """Where two raw config values first differ: ``(id, value in a, value in b)``, or ``None`` when equal."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [key for key in b if key not in a]:
            found = _first_difference(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}#{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (item_a, item_b) in enumerate(zip(a, b)):
            found = _first_difference(item_a, item_b, f"{path}#{index}")
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def _shown(value: Any) -> str:
    return "(not set)" if value is _MISSING else json.dumps(value)


def apply_record(
    parser: ConfigParser,
    record: ModelRecord,
    defaults: ConfigParser,
    overrides: Iterable[str] = (),
) -> None:
    """Set the recorded config values in ``parser``, refusing values the user chose that contradict them.

    The user chose a value when its id is in ``overrides``, or when it differs from ``defaults`` (the same configs
    without the user's overrides and overlays); such a value must equal the recorded one. Any other value is the
    bundle's default and is replaced by the recorded one. (Inside a running workflow the overrides are not known
    apart from the configs: an override equal to the bundle's default then counts as the default.)

    Args:
        parser: the configs about to be run, overrides applied.
        record: the weights' record.
        defaults: the bundle's configs as shipped (no overrides).
        overrides: the config ids the user set explicitly (``{id: value}`` keys, nested ids allowed).

    Raises:
        ModelRecordError: naming the record's file and the config path of an expression that neither ``parser``
            nor ``defaults`` holds there (a record chooses values, never code).
        ValueError: when the record is of another bundle, or naming the config id, the value asked for and the
            recorded one.
    """
    bundle_name = parser.get("bundle_name")
    if record.bundle.get("name") and bundle_name and record.bundle["name"] != bundle_name:
        raise ValueError(
            f"the weights recorded in {record.source} were trained with bundle {record.bundle['name']!r}, not "
            f"{bundle_name!r}: load them with their own bundle."
        )
    current_config, default_config = _resolved_copy(parser), _resolved_copy(defaults)
    check_expressions(record.config, record.source, [current_config.get(), default_config.get()])
    chosen = {_top_id(config_id) for config_id in overrides}
    for config_id, recorded in record.config.items():
        current = current_config.get(config_id, _MISSING)
        if current is _MISSING or (config_id not in chosen and current == default_config.get(config_id, _MISSING)):
            continue
        difference = _first_difference(current, recorded, config_id)
        if difference:
            where, asked, trained = difference
            raise ValueError(
                f"{where} = {_shown(asked)} contradicts the configuration the weights were trained with ({where} = "
                f"{_shown(trained)}, recorded in {record.source}): drop that override, or use weights trained with it."
            )
    parser.update({config_id: json.loads(json.dumps(value)) for config_id, value in record.config.items()})
