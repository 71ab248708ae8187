# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What the MONAI model zoo's CI does with a bundle, done with the release instead of this checkout.

The source tree is built (``python -m build``: the sdist, and the wheel from it), the wheel installed into a fresh
virtual environment that also sees the packages of the environment running the tests (a ``.pth`` file naming its
site-packages, after the new environment's own: as ``--system-site-packages`` does, but also when the tests run in a
virtual environment themselves, e.g. under nox), so torch and MONAI are not downloaded again; the wheel itself with
``--no-deps --ignore-installed``, so that the checkout's editable install does not satisfy it. Then, from a
zoo-shaped tree ``<tmp>/models/<bundle>/`` copied out of the installed wheel, that environment's Python runs

- for every bundle: the zoo's directory check (necessary and preferred files), version and changelog, and MONAI's
  ``verify_metadata`` against the schema the metadata names (the zoo's ``prepare_schema`` copies it to
  ``eval/schema.json``; here it is the package's local copy, no download);
- for ``vtn_addd``, end to end: ``verify_net_in_out``, ``ckpt_export`` by tracing (the bundles are on the zoo's
  ``exclude_verify_torchscript_list``, see RELEASING.md: scripting fails), the export reloaded, and the bundle's own
  evaluate workflow as its README gives it (``python -m monai.bundle run evaluating ...``) on the demo data, whose
  mean label Dice is the metadata's ``bundle_evaluate_demo_mono_mean_dice``.

Nothing from the checkout is on that environment's path (the working directory is the zoo tree, and the test checks
that ``monai_mine`` is imported from the environment's site-packages). About a minute and a half on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import monai_mine
from tests.helpers import BUNDLES, REPOSITORY

pytestmark = pytest.mark.slow

SCHEMA = REPOSITORY / "monai_mine" / "schemas" / "meta_schema_20240725.json"
END_TO_END = "vtn_addd"
BUNDLE_FILES = {"LICENSE", "configs", "docs", "models/model.pt", "models/model_config.json"}
"""What a shipped bundle holds (setup.py's ``BUNDLE_FILES``); a zoo submission holds the same."""

ZOO_CHECKS = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

    import monai_mine

    models, end_to_end = sys.argv[1], sys.argv[2]
    print("monai_mine", monai_mine.__version__, monai_mine.__file__)
    for bundle in sorted(os.listdir(models)):
        root = os.path.join(models, bundle)
        # ci/verify_bundle.py: verify_bundle_directory, verify_version_changes, verify_metadata_format
        for name in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
            assert os.path.isfile(os.path.join(root, name)), f"{bundle}: {name} missing"
        meta_file = os.path.join(root, "configs", "metadata.json")
        with open(meta_file) as f:
            meta = json.load(f)
        assert meta["version"] in meta["changelog"], f"{bundle}: version {meta['version']} not in changelog"
        verify_metadata(meta_file=meta_file, filepath=os.path.join(root, "eval", "schema.json"))
        print(bundle, "metadata verified")
        if bundle != end_to_end:
            continue
        config_file = os.path.join(root, "configs", "inference.json")
        common = dict(net_id="network_def", meta_file=meta_file, config_file=config_file, bundle_root=root)
        verify_net_in_out(**common)
        print(bundle, "network input and output verified")
        exported = os.path.join(root, "models", "verify_model.ts")
        # traced at a smaller size than the metadata's, without trace's re-run check, for time
        ckpt_export(filepath=exported, ckpt_file=os.path.join(root, "models", "model.pt"), use_trace=True,
                    input_shape=[1, 2, 32, 32, 32], converter_kwargs={"check_trace": False}, **common)
        traced = torch.jit.load(exported)
        with torch.no_grad():
            ddf = traced(torch.rand(1, 2, 32, 48, 32))
        assert ddf.shape == (1, 3, 32, 48, 32) and torch.isfinite(ddf).all()
        print(bundle, "traced export verified")
    """
)


def _run(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    """Run ``command`` without ``PYTHONPATH`` (which could put the checkout on the release's path)."""
    env = {key: value for key, value in (env or os.environ).items() if key != "PYTHONPATH"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed ({result.returncode}):\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """The built wheel installed in a fresh virtual environment; returns the environment's Python."""
    work = tmp_path_factory.mktemp("release")
    dist = work / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPOSITORY)], cwd=work)
    wheels = sorted(dist.glob("monai_mine-*.whl"))
    assert [w.name for w in wheels] == [f"monai_mine-{monai_mine.__version__}-py3-none-any.whl"]
    assert len(list(dist.glob("monai_mine-*.tar.gz"))) == 1
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    own = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work).strip()
    parents = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)]
    (Path(own) / "_tests_parent_environment.pth").write_text("\n".join(parents) + "\n")
    install = ["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed", str(wheels[0])]
    _run([str(python), *install], cwd=work)
    return python


def _site_packages(python: Path, cwd: Path) -> Path:
    code = "import monai_mine, pathlib; print(pathlib.Path(monai_mine.__file__).parent)"
    return Path(_run([str(python), "-c", code], cwd=cwd).strip().splitlines()[-1])


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_runs_the_zoo_checks_and_a_bundle_with_no_checkout(release, tmp_path, demo_cache):
    zoo = tmp_path / "zoo"
    models = zoo / "models"
    models.mkdir(parents=True)
    package = _site_packages(release, zoo)
    assert package.parent.is_relative_to(release.parents[1]), f"monai_mine imported from {package}, not the venv"
    assert REPOSITORY not in package.parents

    for name in BUNDLES:
        shipped = package / "shipped_bundles" / name
        expected = {
            f
            for f in _files(REPOSITORY / "bundles" / name)
            if any(f == k or f.startswith(k + "/") for k in BUNDLE_FILES)
        }
        assert _files(shipped) == expected, f"the wheel's {name} differs from bundles/{name}"
        shutil.copytree(shipped, models / name)
        meta = json.loads((models / name / "configs" / "metadata.json").read_text())
        assert meta["schema"].rsplit("/", 1)[-1] == SCHEMA.name
        assert meta["required_packages_version"]["monai-mine"] == monai_mine.__version__
        (models / name / "eval").mkdir()
        shutil.copyfile(SCHEMA, models / name / "eval" / "schema.json")  # the zoo's ci/prepare_schema.py

    script = tmp_path / "zoo_checks.py"
    script.write_text(ZOO_CHECKS)
    output = _run([str(release), str(script), "models", END_TO_END], cwd=zoo)
    assert str(package) in output
    for name in BUNDLES:
        assert f"{name} metadata verified" in output
    assert f"{END_TO_END} traced export verified" in output

    env = {**os.environ, "MONAI_MINE_DATA": str(demo_cache)}  # the demo data, generated once for the session
    configs = [f"models/{END_TO_END}/configs/{name}.json" for name in ("train", "evaluate")]
    evaluate = [str(release), "-m", "monai.bundle", "run", "evaluating", "--config_file", json.dumps(configs),
                "--bundle_root", f"models/{END_TO_END}"]  # fmt: skip
    _run(evaluate, cwd=zoo, env=env)
    summary = json.loads((models / END_TO_END / "eval" / "metrics_summary.json").read_text())
    meta = json.loads((models / END_TO_END / "configs" / "metadata.json").read_text())
    assert summary["num_pairs"] == 4
    stated = meta["eval_metrics"]["bundle_evaluate_demo_mono_mean_dice"]
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(stated, abs=0.005)
