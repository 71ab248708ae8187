# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Builds monai-mine (metadata in setup.cfg). One addition to setuptools' defaults: the shipped bundles
(``bundles/<name>/``: configs, docs, LICENSE, the shipped weights and their record) go into the wheel as the package
data ``monai_mine/shipped_bundles/<name>/``, where :func:`monai_mine.bundle.shipped_bundle_dir` finds them with
``importlib.resources`` once installed. In a source checkout (``pip install -e .``) it reads ``bundles/`` itself."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLE_FILES = ("LICENSE", "configs", "docs", "models/model.pt", "models/model_config.json")
"""What a shipped bundle carries; local outputs (eval/, runs/, checkpoints, exports) stay out."""


class BuildWithBundles(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "monai_mine" / "shipped_bundles"
        for bundle in sorted((HERE / "bundles").glob("*/configs/metadata.json")):
            source = bundle.parents[1]
            for relative in BUNDLE_FILES:
                path, destination = source / relative, target / source.name / relative
                if path.is_dir():
                    shutil.copytree(path, destination, dirs_exist_ok=True)
                elif path.is_file():
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, destination)


setup(cmdclass={"build_py": BuildWithBundles})
