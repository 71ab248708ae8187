# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Each bundle stands alone: its README's commands need only the bundle folder, it names a file outside the bundle
only as the monai-mine repository's, and it has the model zoo template's sections and a data licence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import BUNDLES, REPOSITORY

REPO_URL = "https://github.com/monai-mine/monai-mine"
PATH = re.compile(r"(?<![\w/.:-])(?:\./)?((?:bundles|benchmarks|monai_mine|tests|sample-apps|configs)/[\w./*-]*)")
ZOO_SECTIONS = ("Model Overview", "Data", "Performance", "MONAI Bundle Commands", "Authors", "Tags", "References")
SHIPPED_OVERLAYS = ("quick.json", "augment.json")


def _units(text: str) -> list[str]:
    """Paragraphs, list items and table rows of the prose; in code blocks each command with the comment lines above
    it, or the whole block when the sentence before it names the repository."""
    units, current, code, block, noted = [], [], False, [], False

    def flush():
        if current:
            units.append("\n".join(current))
            current.clear()

    for line in text.splitlines():
        if line.startswith("```"):
            if code:
                flush()
                if noted:
                    units.append("monai-mine repository\n" + "\n".join(block))
                block = []
            else:
                noted = bool(units) and "monai-mine repository" in units[-1]
                flush()
            code = not code
            continue
        if code:
            block.append(line)
            if noted:
                continue
            if not line.strip():
                flush()
            elif (
                line.startswith("#") and current and not current[-1].startswith("#") and not current[-1].endswith("\\")
            ):
                flush()
                current.append(line)
            else:
                current.append(line)
            continue
        if not line.strip() or line.startswith(("- ", "|", "#")):
            flush()
        if line.strip():
            current.append(line)
    flush()
    return units


def _outside(bundle: Path, path: str) -> bool:
    path = path.rstrip(".,;:)")
    return not path.startswith("configs/") or not (bundle / path).exists()


@pytest.mark.parametrize("name", BUNDLES)
def test_readme_names_no_file_outside_the_bundle_unless_it_says_whose(name):
    bundle = REPOSITORY / "bundles" / name
    text = (bundle / "docs" / "README.md").read_text()
    unnamed = [
        unit
        for unit in _units(text)
        if "monai-mine repository" not in unit and any(_outside(bundle, m.group(1)) for m in PATH.finditer(unit))
    ]
    assert not unnamed, f"{name}: files outside the bundle, not named as the repository's:\n\n" + "\n\n".join(unnamed)
    assert f"[repo]: {REPO_URL}" in text and "<monai-mine repository URL>" not in text
    assert "from the repository root" not in text.lower()


@pytest.mark.parametrize("name", BUNDLES)
def test_readme_commands_run_from_the_bundle_folder(name):
    bundle = REPOSITORY / "bundles" / name
    text = (bundle / "docs" / "README.md").read_text()
    for overlay in SHIPPED_OVERLAYS:
        assert (bundle / "configs" / overlay).is_file()
        assert f"configs/{overlay}" in text
    for config in re.findall(r"'(configs/[\w.]+)'|--config_file (configs/[\w.]+)", text):
        path = next(part for part in config if part)
        assert (bundle / path).is_file() or path.rsplit("/", 1)[-1] in _repository_overlays(), path


def _repository_overlays() -> set[str]:
    return {path.name for path in (REPOSITORY / "configs").glob("*.json")}


@pytest.mark.parametrize("name", BUNDLES)
def test_readme_has_the_zoo_template_sections_and_the_data_licence(name):
    bundle = REPOSITORY / "bundles" / name
    text = (bundle / "docs" / "README.md").read_text()
    headings = set(re.findall(r"^#+ (.+?)\s*$", text, flags=re.M))
    assert set(ZOO_SECTIONS) <= headings, sorted(set(ZOO_SECTIONS) - headings)
    licence = (bundle / "docs" / "data_license.txt").read_text()
    assert "Louis Collins" in licence and "ICBM 2009a nonlinear symmetric" in licence
    assert "docs/data_license.txt" in text
    # the TorchScript exclusion a model zoo pull request adds, with its reason
    assert f'exclude_verify_torchscript_list = [..., "{name}"]' in text or f'"{name}",' in text
    assert "--use_trace True" in text


@pytest.mark.parametrize("name", BUNDLES)
def test_model_record_is_clean_and_of_the_bundles_version(name):
    bundle = REPOSITORY / "bundles" / name
    record = json.loads((bundle / "models" / "model_config.json").read_text())
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert record["bundle"] == {"name": name, "version": meta["version"]}
    assert not re.search(r"(^|[\s\"'])/(tmp|home|root|Users)/", json.dumps(record["training"]))
