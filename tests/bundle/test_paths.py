"""Where a bundle lives: bundle_root, checked before a workflow writes anything, and the bundles shipped with this
installation."""

from __future__ import annotations

import re
import shutil

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_mine.bundle import BundleRootError, check_bundle_root, shipped_bundle_dir
from tests.helpers import REPOSITORY, copy_bundle

NOT_A_BUNDLE = (
    r"bundle_root '\.' \(\S+\) is not a bundle folder: it has no configs/metadata\.json\. Pass --bundle_root <the "
    r"folder of the bundle whose configs you run> \(e\.g\. --bundle_root bundles/<name> from the repository's root\)"
)
"""The error for ``bundle_root`` ``"."`` outside a bundle folder."""


def test_outside_a_workflow_the_working_directory_must_be_a_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleRootError, match=NOT_A_BUNDLE):
        check_bundle_root(".")
    with pytest.raises(FileNotFoundError, match=re.escape(f"({tmp_path.resolve()})")):  # names the folder
        check_bundle_root(".")
    shutil.copytree(REPOSITORY / "bundles" / "vtn_addd" / "configs", tmp_path / "configs")
    assert check_bundle_root(".") == "."
    assert check_bundle_root(tmp_path) == str(tmp_path)


def test_a_config_parsed_by_hand_needs_bundle_root(tmp_path, monkeypatch):
    """Tools that read configs themselves set bundle_root; without it, the error says what to do."""
    monkeypatch.chdir(tmp_path)
    config = {"imports": ["$import monai_mine"], "bundle_root": ".",
              "initialize": ["$monai_mine.bundle.check_bundle_root(@bundle_root)"]}  # fmt: skip
    parser = ConfigParser(config)
    with pytest.raises(RuntimeError) as raised:
        parser.get_parsed_content("initialize")
    assert "pass --bundle_root" in str(raised.value.__cause__).lower()
    parser["bundle_root"] = str(REPOSITORY / "bundles" / "vtn_addd")
    assert parser.get_parsed_content("initialize") == [str(REPOSITORY / "bundles" / "vtn_addd")]


@pytest.mark.parametrize("names", [("train.json",), ("train.json", "evaluate.json"), ("inference.json",)])
def test_a_workflow_without_bundle_root_stops_before_writing(names, tmp_path, monkeypatch):
    """From the repository's root, ``--config_file bundles/<name>/configs/...`` without ``--bundle_root``: the
    configs' ``"."`` is not the bundle, and ``initialize`` says so before anything is written."""
    copy_bundle("vtn_addd", tmp_path / "bundles" / "vtn_addd")
    monkeypatch.chdir(tmp_path)
    configs = [f"bundles/vtn_addd/configs/{name}" for name in names]
    before = sorted(tmp_path.rglob("*"))
    workflow = ConfigWorkflow(config_file=configs, logging_file=False, workflow_type=None)
    with pytest.raises(RuntimeError) as raised:
        workflow.initialize()
    assert isinstance(raised.value.__cause__, BundleRootError), raised.value
    assert f"({tmp_path.resolve()}) is not a bundle folder" in str(raised.value.__cause__)
    assert "--bundle_root" in str(raised.value.__cause__)
    assert sorted(tmp_path.rglob("*")) == before
    workflow = ConfigWorkflow(config_file=configs, logging_file=False, workflow_type=None,
                              bundle_root="bundles/vtn_addd")  # fmt: skip
    workflow.initialize()
    assert workflow.parser.get_parsed_content("ckpt_dir") == "bundles/vtn_addd/models"


def test_shipped_bundles_are_found_and_others_named():
    assert shipped_bundle_dir("vtn_addd") == REPOSITORY / "bundles" / "vtn_addd"
    with pytest.raises(
        FileNotFoundError, match=r"no bundle 'nonesuch' in this installation \(looked in \S*bundles/nonesuch"
    ):
        shipped_bundle_dir("nonesuch")
