# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The MONAI config parser and workflow that are instantiating the current component.

MONAI gives a config expression or component no handle on the parser that builds it. Two things need one: the
bundles' ``bundle_root`` (where the running configs live) and the model record (the config values that rebuild
a trained network, written beside its weights). Both look for the innermost ``ConfigParser`` /
``ConfigWorkflow`` method on the call stack: components are built inside ``ConfigParser.get_parsed_content``,
and a workflow's ``initialize``/``run`` call it.
"""

from __future__ import annotations

import sys

from monai.bundle import ConfigParser, ConfigWorkflow

__all__ = ["running_parser", "running_workflow"]


def _innermost(kind: type):
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, kind):
            return candidate
        frame = frame.f_back
    return None


def running_parser() -> ConfigParser | None:
    """The ``ConfigParser`` whose ``get_parsed_content`` is running up the call stack, else ``None``."""
    return _innermost(ConfigParser)


def running_workflow() -> ConfigWorkflow | None:
    """The ``ConfigWorkflow`` whose method is running up the call stack (``python -m monai.bundle run ...``, or a
    workflow run from Python), else ``None``."""
    return _innermost(ConfigWorkflow)
