# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""``python -m monai_mine``: the command line of :mod:`monai_mine.apps.cli`."""

from monai_mine.apps.cli import run

run()
