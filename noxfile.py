# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Test sessions on each supported Python (``pip install nox``; docs/install.md, "Python versions"):

    nox -l                                    # tests-3.10, tests-3.11, tests-3.12
    nox -s tests-3.10                         # the whole suite on Python 3.10 (as .ci/run does on the default one)
    nox -s tests-3.10 -- tests/losses tests/networks tests/zoo_unit_tests    # a part of it

Each session makes a fresh virtual environment in ``.nox/`` with that Python (found on ``PATH`` as ``python3.10``
... ; with pyenv: ``PYENV_VERSION=3.11.7:3.10.13:3.12.1 nox ...``), installs the project as docs/install.md does
(``pip install -c constraints.txt -e ".[test]"``, plus the extras named in ``MONAI_MINE_NOX_EXTRAS``, e.g.
``test,benchmark,export``) and runs pytest on the arguments after ``--`` (default: ``tests``). Where no CPU build of
torch is on the package index for that Python, pip takes PyPI's standard torch wheel with its CUDA libraries (about
4.6 GB per environment), which runs on CPU too.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"

PYTHONS = ("3.10", "3.11", "3.12")
"""The versions setup.cfg declares (python_requires >= 3.10); the model zoo's CI runs 3.10."""


@nox.session(python=PYTHONS, name="tests")
def tests(session: nox.Session) -> None:
    extras = os.environ.get("MONAI_MINE_NOX_EXTRAS", "test")
    session.install("-c", "constraints.txt", "-e", f".[{extras}]")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or ["tests"]))
