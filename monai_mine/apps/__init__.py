# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Applications built on the core and the workflows, as MONAI keeps its own under ``monai.apps``.

:mod:`~monai_mine.apps.cli` (``monai-mine ...``, ``python -m monai_mine ...``),
:mod:`~monai_mine.apps.registration` (registering image files on any grids), :mod:`~monai_mine.apps.template` (the
ICBM152 brain template), :mod:`~monai_mine.apps.benchmark` (the brain and speed benchmarks),
:mod:`~monai_mine.apps.deploy` (MONAI Deploy), :mod:`~monai_mine.apps.label` (MONAI Label),
:mod:`~monai_mine.apps.learn2reg` (Learn2Reg submissions) and :mod:`~monai_mine.apps.demo`. An application may import
any part of ``monai_mine``; nothing outside ``monai_mine.apps`` imports an application (``docs/design.md``
section 1). This package imports none of them, so that the command line starts without torch.
"""
