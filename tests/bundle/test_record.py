"""The model record: what it keeps of a bundle config, how it is applied, and overrides that contradict it."""

from __future__ import annotations

import copy

import pytest
from monai.bundle import ConfigParser

from monai_mine.bundle import ModelRecord, ModelRecordError, record_config, weights_record
from monai_mine.bundle.record import apply_record
from tests.helpers import REPOSITORY

CONFIG = {
    "bundle_name": "toy",
    "device": "$torch.device('cpu')",
    "width": 8,
    "depth": 3,
    "unused": 1,
    "image_size": 64,
    "network_def": {
        "_target_": "monai_mine.networks.build_vtn",
        "channels": "$[@width * m for m in (1, 2)]",
        "depth": "@depth",
    },
    "intensity": {"_target_": "ScaleIntensityd", "keys": "@image_keys"},
    "image_keys": ["moving_image", "fixed_image"],
    "loss_terms": [{"_target_": "monai_mine.losses.SimilarityTerm", "loss": "@similarity", "device": "@device"}],
    "similarity": {"_target_": "monai_mine.losses.CorrelationCoefficientLoss"},
}


def parser(**overrides) -> ConfigParser:
    built = ConfigParser(copy.deepcopy(CONFIG))
    built.update(overrides)
    return built


def test_record_keeps_the_recorded_ids_and_what_they_refer_to():
    config = record_config(parser())
    assert set(config) == {"network_def", "image_size", "intensity", "loss_terms", "width", "depth", "image_keys",
                           "similarity"}  # fmt: skip
    assert config["network_def"] == CONFIG["network_def"]  # raw config, not a built network
    assert "device" not in config and "unused" not in config  # the machine is not part of the model


def test_record_round_trips_and_refuses_other_json():
    record = ModelRecord(bundle={"name": "toy", "version": "1"}, config=record_config(parser()), training={"a": 1})
    again = ModelRecord.from_dict(record.to_dict(), "x.json")
    assert again == record and again.source == "x.json"
    with pytest.raises(ValueError, match=r"other\.json is not a monai-mine model record"):
        ModelRecord.from_dict({"config": {}}, "other.json")


def trained_record(**settings) -> ModelRecord:
    return ModelRecord(bundle={"name": "toy"}, config=record_config(parser(**settings)), source="model_config.json")


def test_recorded_values_replace_the_defaults():
    current = parser()
    apply_record(current, trained_record(width=16, image_size=32), defaults=parser())
    assert current["width"] == 16 and current["image_size"] == 32 and current["unused"] == 1


def test_an_override_that_agrees_with_the_record_is_accepted():
    current = parser(width=16)
    apply_record(current, trained_record(width=16), defaults=parser(), overrides=["width"])
    assert current["width"] == 16


@pytest.mark.parametrize(
    "override, message",
    [
        ({"image_size": 48}, r"image_size = 48 contradicts the configuration the weights were trained with "
                             r"\(image_size = 32, recorded in model_config\.json\)"),
        ({"width": 4}, r"width = 4 contradicts .* \(width = 8,"),
        ({"network_def#depth": 5}, r"network_def#depth = 5 contradicts .* \(network_def#depth = \"@depth\""),
        ({"intensity": {"_target_": "NormalizeIntensityd", "keys": "@image_keys"}},
         r"intensity#_target_ = \"NormalizeIntensityd\" contradicts .* \"ScaleIntensityd\""),
    ],
)  # fmt: skip
def test_an_override_that_contradicts_the_record_names_both_values(override, message):
    with pytest.raises(ValueError, match=message):
        apply_record(parser(**override), trained_record(image_size=32), defaults=parser(), overrides=list(override))


def test_an_overlay_is_compared_even_without_explicit_overrides():
    """A value that differs from the bundle's own configs came from an overlay the user chose."""
    with pytest.raises(ValueError, match=r"width = 4 contradicts"):
        apply_record(parser(width=4), trained_record(), defaults=parser())


def test_weights_of_another_bundle_are_refused():
    record = ModelRecord(bundle={"name": "other"}, config={}, source="model_config.json")
    with pytest.raises(ValueError, match=r"trained with bundle 'other', not 'toy': load them with their own bundle"):
        apply_record(parser(), record, defaults=parser())


def _with(config_id: str, value) -> dict:
    data = trained_record().to_dict()
    data["config"][config_id] = value
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (_with("width", "%/tmp/other.json#width"), r"config#width is a macro"),
        (_with("width", "@unused"), r"config#width refers to 'unused', which the record does not hold"),
        (_with("width", "$@bundle_root + 'x'"), r"config#width refers to 'bundle_root'"),
        (_with("similarity", {"_target_": "monai_mine.losses.MINELoss", "_mode_": "debug"}),
         r"config#similarity holds '_mode_'"),
        (_with("similarity", {"_target_": "builtins.eval", "source": "1"}),
         r"config#similarity has _target_ 'builtins\.eval', which is not an allowed component"),
        (_with("bundle_root", "/elsewhere"), r"config#bundle_root is not a recorded id"),
        (_with("extra", 1), r"config#extra is not a recorded id"),
        (_with("width", {1: 2}), r"config#width is a dict with a non-string key"),
        ({**trained_record().to_dict(), "code": "x"}, r"unknown key 'code'"),
    ],
)  # fmt: skip
def test_a_record_that_is_not_plain_data_is_refused_naming_file_and_key(data, message):
    with pytest.raises(ModelRecordError, match=rf"^model_config\.json: {message}"):
        ModelRecord.from_dict(data, "model_config.json")


def test_an_expression_is_accepted_only_where_the_bundle_holds_it():
    current = parser()
    apply_record(current, trained_record(width=16), defaults=parser())  # network_def#channels: the bundle's own
    assert current["network_def"]["channels"] == CONFIG["network_def"]["channels"]
    record = trained_record()
    record.config["network_def"]["channels"] = "$[@width * m for m in (1, 4)]"
    with pytest.raises(ModelRecordError, match=r"^model_config\.json: network_def#channels is the expression"):
        apply_record(parser(), record, defaults=parser())


def test_the_shipped_records_are_plain_data_bound_to_their_weights():
    for name in ("vtn_addd", "vtn_addd_inv", "miregnet", "midiceregnet"):
        weights = REPOSITORY / "bundles" / name / "models" / "model.pt"
        assert weights_record(weights, None).name == name
