"""Where a bundle lives: bundle_root of the running configs, and the bundles shipped in this source tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from monai_mine.bundle import bundle_root, shipped_bundle_dir

REPOSITORY = Path(__file__).resolve().parents[2]


def test_outside_a_workflow_the_working_directory_must_be_a_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"cannot tell which bundle is running .*pass --bundle_root"):
        bundle_root()
    shutil.copytree(REPOSITORY / "bundles" / "vtn_addd" / "configs", tmp_path / "configs")
    assert bundle_root() == str(tmp_path)


def test_a_config_parsed_by_hand_needs_bundle_root(tmp_path, monkeypatch):
    """Tools that read configs themselves set bundle_root; without it, the error says what to do."""
    monkeypatch.chdir(tmp_path)
    parser = ConfigParser({"imports": ["$import monai_mine"], "bundle_root": "$monai_mine.bundle.bundle_root()"})
    with pytest.raises(RuntimeError) as raised:
        parser.get_parsed_content("bundle_root")
    assert "pass --bundle_root" in str(raised.value.__cause__)


def test_shipped_bundles_are_found_and_others_named():
    assert shipped_bundle_dir("vtn_addd") == REPOSITORY / "bundles" / "vtn_addd"
    with pytest.raises(
        FileNotFoundError, match=r"no bundle 'nonesuch' in this installation \(looked in \S*bundles/nonesuch"
    ):
        shipped_bundle_dir("nonesuch")
