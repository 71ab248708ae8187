"""What ``--instance_optimization`` accepts: presets, per-level schedules with a full-resolution level and whole
numbers, read by one parser; a preset gives the same DDF as its explicit schedule, in Python and in the bundles'
configs (in ``register``: tests/apps/registration/test_registration_register.py)."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.bundle import read_bundle_config
from monai_mine.bundle.loader import configured_inferer, configured_instance_optimizer
from monai_mine.optimization import InstanceOptimizer
from monai_mine.optimization.instance import InstanceOptimizationInferer
from monai_mine.optimization.schedule import (
    MAX_INSTANCE_STEPS,
    PRESETS,
    InstanceSchedule,
    instance_optimization_schedule,
)
from tests.helpers import REPOSITORY


def test_presets_schedules_and_numbers_are_read_by_one_parser():
    assert set(PRESETS) == {"fast", "balanced", "accurate"}
    accurate = instance_optimization_schedule(" Accurate ")
    assert accurate == InstanceSchedule((50, 50, 20), True, "accurate") and str(accurate) == "accurate (50/50/20)"
    assert accurate.value == "50/50/20" and instance_optimization_schedule("50/50/20").value == accurate.value
    assert instance_optimization_schedule("fast").steps == (25, 25, 0)
    assert instance_optimization_schedule("50 / 40 / 10") == InstanceSchedule((50, 40, 10), True)
    assert instance_optimization_schedule("50") == instance_optimization_schedule(50) == InstanceSchedule((50,))
    assert instance_optimization_schedule(50).value == 50 and not instance_optimization_schedule("0").refines
    assert instance_optimization_schedule(accurate) is accurate
    assert instance_optimization_schedule(f"0/0/{MAX_INSTANCE_STEPS}").refines


@pytest.mark.parametrize(
    "value", ["fastest", "", "50/", "/5", "5/-1/2", "1.5", 1.5, -1, True, f"1/{MAX_INSTANCE_STEPS + 1}/1", "1e3"]
)
def test_what_is_not_a_preset_a_schedule_or_a_number_is_refused_with_what_is_expected(value):
    with pytest.raises(ValueError, match=r"instance_optimization \S*: expected a whole number of Adam steps") as error:
        instance_optimization_schedule(value)
    assert "A/B/C (e.g. 50/50/20), or a preset (fast, balanced, accurate)" in str(error.value)


def test_a_schedule_adds_a_full_resolution_level_to_the_configured_ones():
    optimizer = InstanceOptimizer(steps="accurate", levels=(8, 16), learning_rate=0.5)
    assert optimizer.steps == (50, 50, 20) and optimizer.levels == (8, 16, math.inf)
    assert optimizer.learning_rate == (0.5, 0.5, 0.25)
    assert InstanceOptimizer(steps="7", levels=(8, 16)).steps == (7, 7)
    assert InstanceOptimizer(steps=(1, 2), levels=(8, "full")).levels == (8, math.inf)
    with pytest.raises(ValueError, match=r"instance_optimization 1/2: expected 3 counts, one per level \(8, 16\)"):
        InstanceOptimizer(steps="1/2", levels=(8, 16))


def test_a_preset_and_its_schedule_give_the_same_ddf_as_the_level_it_reaches():
    generator = torch.Generator().manual_seed(0)
    fixed = torch.nn.functional.interpolate(torch.rand(1, 1, 5, 5, 5, generator=generator), size=(20,) * 3)
    moving = torch.roll(fixed, 1, dims=2)
    preset, report = InstanceOptimizer(steps="fast", levels=(8, 16))(moving, fixed)
    explicit, _ = InstanceOptimizer(steps="25/25/0", levels=(8, 16))(moving, fixed)
    two_levels, _ = InstanceOptimizer(steps=25, levels=(8, 16))(moving, fixed)  # no step at full resolution
    assert torch.equal(preset, explicit) and torch.equal(preset, two_levels) and preset.abs().max() > 0.1
    assert report.levels == ((8, 8, 8), (16, 16, 16))
    small = {"learning_rate": 0.5, "levels": (8, 16)}
    full, report = InstanceOptimizer(steps="2/2/2", **small)(moving, fixed)
    assert report.levels[-1] == (20, 20, 20) and not torch.equal(
        full, InstanceOptimizer(steps=2, **small)(moving, fixed)[0]
    )


def test_bundle_configs_take_a_preset_in_instance_optimization_steps():
    # the evaluate and inference workflows: --instance_optimization_steps accurate (or 50/50/20, or 50)
    for config in ("inference.json", ["train.json", "evaluate.json"]):
        files = [
            REPOSITORY / "bundles" / "vtn_addd" / "configs" / name
            for name in ([config] if isinstance(config, str) else config)
        ]
        parser = read_bundle_config(
            REPOSITORY / "bundles" / "vtn_addd", files, {"instance_optimization_steps": "accurate"}
        )
        inferer = parser.get_parsed_content("inferer")
        assert inferer.optimizer.steps == (50, 50, 20) and inferer.optimizer.levels == (32, 64, math.inf)
    parser = read_bundle_config(
        REPOSITORY / "bundles" / "vtn_addd", [REPOSITORY / "bundles" / "vtn_addd" / "configs" / "inference.json"]
    )
    optimizer = configured_instance_optimizer(parser, "fast", "bundle", "remedy")
    assert optimizer.steps == (25, 25, 0) and parser["instance_optimization_steps"] == 0
    inferer = configured_inferer(parser, "50/50/20", "bundle", "remedy")  # MONAI Label's infer request
    assert isinstance(inferer, InstanceOptimizationInferer) and inferer.optimizer.steps == (50, 50, 20)
    assert configured_inferer(parser, 0, "bundle", "remedy").optimizer is None
    with pytest.raises(ValueError, match="instance_optimization 'fastest': expected"):
        configured_inferer(parser, "fastest", "bundle", "remedy")
