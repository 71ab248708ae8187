# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""File output: atomic writes (:mod:`~monai_mine.io.atomic`: a reader never sees a half-written file), one writer
per output (:mod:`~monai_mine.io.lock`), NIfTI images written so (:mod:`~monai_mine.io.nifti`) and image file endings
(:mod:`~monai_mine.io.formats`)."""

from __future__ import annotations

from monai_mine.io.atomic import atomic_output, atomic_write_text
from monai_mine.io.formats import output_suffix, strip_suffix
from monai_mine.io.lock import output_lock
from monai_mine.io.nifti import save_nifti

__all__ = ["atomic_output", "atomic_write_text", "output_lock", "output_suffix", "save_nifti", "strip_suffix"]
