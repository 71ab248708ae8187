# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Learn2Reg submissions: displacement fields in the challenge's layout and their metrics.

Reading a task's ``*_dataset.json`` into datalists is :mod:`monai_mine.data.learn2reg`; here,
:func:`export_learn2reg` turns the bundles' DDFs into ``disp_FFFF_MMMM.nii.gz`` files and :func:`evaluate_learn2reg`
scores a folder of such files as the Learn2Reg evaluation does (Dice, HD95, TRE on keypoints, SDlogJ).
"""

from __future__ import annotations

from monai_mine.apps.learn2reg.evaluate import LEARN2REG_METRICS, evaluate_displacement, evaluate_learn2reg
from monai_mine.apps.learn2reg.export import export_displacement, export_learn2reg

__all__ = [
    "LEARN2REG_METRICS",
    "evaluate_displacement",
    "evaluate_learn2reg",
    "export_displacement",
    "export_learn2reg",
]
