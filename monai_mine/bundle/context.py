# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The MONAI config parser that is instantiating the current component.

MONAI gives a config expression or component no handle on the parser that builds it, and nothing else can give
the two places that need the running config in raw form what they need: the model record (``ModelRecorder``, in
``train.json``: the raw values of ``network_def``, ``image_size``, ``intensity``, ``loss_terms`` and of the ids
they refer to, as run, overlays and ``--id value`` overrides included) and ``apply_model_record`` (in the evaluate
and inference workflows' ``initialize``: it sets the weights' recorded values in the config being run). A ``%``
macro or an ``@`` reference cannot carry raw config into a component: MONAI instantiates every ``_target_``
definition and evaluates every ``$`` expression it is handed. Both therefore look for the innermost
``ConfigParser.get_parsed_content`` on the call stack (``bundle_root`` no longer does: it is a plain config value).

Checked against MONAI 1.6.1 (issue 30): ``ConfigWorkflow`` builds its parser with default globals and merges
overlays and ``--id value`` overrides into it alone; expressions see the parser's module globals and already built
``__local_refs``; the executed config is saved (``save_execute_config``) only with ``--tracking``. Re-reading the
config files would lose the overrides, and recording built objects would lose the raw ``$``/``@`` values a record
holds. The frame is matched by the code object of ``get_parsed_content`` itself, not by any ``self`` that is a
parser; this module goes when MONAI hands a component its parser or the executed config.
"""

from __future__ import annotations

import sys

from monai.bundle import ConfigParser

__all__ = ["running_parser"]

_PARSING = ConfigParser.get_parsed_content.__code__


def running_parser() -> ConfigParser | None:
    """The ``ConfigParser`` whose ``get_parsed_content`` is running up the call stack (the innermost), else
    ``None``."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _PARSING and isinstance(frame.f_locals.get("self"), ConfigParser):
            return frame.f_locals["self"]
        frame = frame.f_back
    return None
