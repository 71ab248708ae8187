# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""``check_workflow`` as the MONAI model zoo's ``ci/unit_tests/utils.py`` defines it, so that the ``test_<bundle>.py``
files here run unchanged both in this repository and copied into the zoo's ``ci/unit_tests/`` (where the zoo's own
``utils.py`` provides it, and nothing else they use: each test file finds its bundle itself)."""

from __future__ import annotations

from monai.bundle import ConfigWorkflow

__all__ = ["check_workflow"]


def check_workflow(workflow: ConfigWorkflow, check_properties: bool = False):
    workflow.initialize()
    if check_properties is True:
        check_result = workflow.check_properties()
        if check_result is not None and len(check_result) > 0:
            raise ValueError(f"check properties for workflow failed: {check_result}")
    workflow.run()
    workflow.finalize()
