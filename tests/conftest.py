# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The root conftest. pytest imports it before any test module; as ``tests`` is a package, its default ``prepend``
import mode puts the repository root on ``sys.path`` to do so, and every test module and folder conftest can then
``from tests.helpers import ...`` (the shared helpers, defined once). The test folders themselves are no packages:
their modules keep importing their folder's own helper modules (``registration_cases``, ``robustness_runs``, ...) by
name, so test file names must stay unique across folders.

Fixtures stay in the conftest of the folder that uses them; ``pytest -m "not slow"`` leaves out the end-to-end tests
(see the ``slow`` marker in setup.cfg)."""
