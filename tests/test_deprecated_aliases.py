"""The old import paths of what moved into ``monai_mine.apps``, ``monai_mine.optimization`` and ``monai_mine.stages``
are deprecated aliases for one release: each old name warns (``DeprecationWarning``, naming the new home) and is the
object of the new home itself, also as a config's ``_target_``; MONAI's component scan of short names never warns."""

from __future__ import annotations

import importlib
import re
import warnings

import pytest
from monai.bundle import ConfigParser

import monai_mine.apps.cli
import monai_mine.optimization
from tests.test_layers import DEPRECATED_ALIASES

ALIASES = sorted(f"monai_mine.{name}" for name in DEPRECATED_ALIASES)


def moved_names() -> list[tuple[str, str, str]]:
    """``(old module, name, new home)`` of every deprecated alias."""
    return [(old, name, home) for old in ALIASES for name, home in importlib.import_module(old).MOVED.items()] + [
        ("monai_mine.networks", "StageRecord", "monai_mine.stages")
    ]


@pytest.mark.parametrize(("old", "name", "home"), moved_names(), ids=lambda value: value)
def test_an_old_name_warns_and_is_the_object_of_its_new_home(old, name, home):
    module = importlib.import_module(old)
    message = rf"{re.escape(old)}\.{name} has been deprecated since version 0\.1\.0\. .*removed in version 0\.2\.0.*"
    with pytest.warns(DeprecationWarning, match=message + rf"use {re.escape(home)}\.{name} instead"):
        alias = getattr(module, name)
    assert alias is getattr(importlib.import_module(home), name)
    assert name not in vars(module) and name not in dir(module)


def test_the_old_public_names_are_all_kept():
    """The ``__all__`` of each old module (0.1.0 before the move) is aliased in full."""
    old_all = {
        "monai_mine.registration": {
            "Grid", "InstanceOptimization", "InstanceOptimizationInferer", "InstanceOptimizer", "RegistrationReport",
            "RegistrationResult", "Volume", "closest_ras_grid", "ddf_to_grid", "jacobian_file", "load_ddf",
            "load_volume", "physical_displacement", "register_files", "register_volumes", "resample_to_grid",
            "save_ddf", "save_volume", "warp_file", "warp_to_grid", "working_grid",
        },
        "monai_mine.benchmark": {
            "TRACKS", "BenchmarkPair", "BrainTemplate", "ants_syn", "build_template", "elastix_affine_bspline",
            "make_pair", "run_benchmark",
        },
        "monai_mine.cli": set(monai_mine.apps.cli.__all__),
        "monai_mine.demo": {"DemoResult", "register_synthetic_pair", "vtn_table1_loss", "mean_dice"},
        "monai_mine.deploy": {
            "RegistrationBundle", "WorkingGridRegistration", "image_to_metatensor", "load_registration_bundle",
            "metatensor_to_image_parts", "read_bundle_configs",
        },
        "monai_mine.learn2reg": {
            "LEARN2REG_METRICS", "evaluate_displacement", "evaluate_learn2reg", "export_displacement",
            "export_learn2reg",
        },
    }  # fmt: skip
    for old, names in old_all.items():
        assert set(importlib.import_module(old).MOVED) == names, old
    label = importlib.import_module("monai_mine.label")
    assert set(label.MOVED) == set(importlib.import_module("monai_mine.apps.label").__all__)
    with pytest.raises(AttributeError, match="module 'monai_mine.registration' has no attribute 'steps'"):
        importlib.import_module("monai_mine.registration").steps  # noqa: B018


@pytest.mark.parametrize(
    ("target", "arguments"),
    [
        ("InstanceOptimizer", {"steps": 2, "levels": [8]}),
        ("InstanceOptimizationInferer", {"optimizer": {"_target_": "monai_mine.optimization.InstanceOptimizer"}}),
    ],
)
def test_a_config_naming_the_old_path_still_builds_it_with_a_warning(target, arguments):
    """What a bundle config of an earlier release (or the ``inference.json`` inside an older export) names."""
    parser = ConfigParser({"built": {"_target_": f"monai_mine.registration.{target}", **arguments}})
    with pytest.warns(DeprecationWarning, match=f"use monai_mine.optimization.{target} instead"):
        built = parser.get_parsed_content("built")
    assert isinstance(built, getattr(monai_mine.optimization, target))


def test_the_component_scan_of_short_names_never_touches_an_alias():
    """MONAI's ``ComponentLocator`` reads the members of every loaded ``monai*`` module for a ``_target_`` without
    a dot: with the aliases loaded it finds ``InstanceOptimizer`` once, in its home, and nothing warns."""
    for old in ALIASES:
        importlib.import_module(old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer = ConfigParser({"o": {"_target_": "InstanceOptimizer", "steps": 1}}).get_parsed_content("o")
    assert isinstance(optimizer, monai_mine.optimization.InstanceOptimizer)
    assert not [str(w.message) for w in caught if "monai_mine." in str(w.message) and "deprecated" in str(w.message)]
