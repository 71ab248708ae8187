# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""vtn_loss_terms: Table I's terms for ADDD (as the VTN bundles listed them before), the rule for other layouts."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from monai_mine.losses import (
    CorrelationCoefficientLoss,
    InvertibilityLoss,
    InvertibilityTerm,
    SimilarityTerm,
    TotalVariationLoss,
    vtn_loss_terms,
)

SIMILARITY, FLOW = "monai_mine.losses.SimilarityTerm", "monai_mine.losses.FlowTerm"
AFFINE, INVERTIBILITY = "monai_mine.losses.AffineTerm", "monai_mine.losses.InvertibilityTerm"


def entry(target: str, loss, weight: float, stage: int, name: str) -> dict:
    return {"_target_": target, "loss": loss, "weight": weight, "stage": stage, "name": name}


# the loss_terms list of bundles/vtn_addd/configs/train.json before it was built from the layout
ADDD_TERMS = [
    entry(SIMILARITY, "@similarity", 1.0, 0, "cc_affine"),
    entry(AFFINE, {"_target_": "monai_mine.losses.OrthogonalityLoss", "residual": True}, 0.1, 0, "orthogonality"),
    entry(AFFINE, {"_target_": "monai_mine.losses.DeterminantLoss", "residual": True}, 0.1, 0, "determinant"),
    entry(SIMILARITY, "@similarity", 0.0, 1, "cc_dense1"),
    entry(FLOW, "@smoothness", 1.0, 1, "tv_dense1"),
    entry(SIMILARITY, "@similarity", 0.05, 2, "cc_dense2"),
    entry(FLOW, "@smoothness", 1.0, 2, "tv_dense2"),
    entry(SIMILARITY, "@similarity", 1.0, 3, "cc_dense3"),
    entry(FLOW, "@smoothness", 1.0, 3, "tv_dense3"),
]
# and the term that bundles/vtn_addd_inv/configs/train.json added
INVERTIBILITY_TERM = entry(
    INVERTIBILITY,
    {"_target_": "monai_mine.losses.InvertibilityLoss", "central_fraction": 0.5},
    0.001,
    -1,
    "invertibility",
)


def listed_terms(entries: list[dict]):
    parser = ConfigParser(
        {
            "similarity": {"_target_": "monai_mine.losses.CorrelationCoefficientLoss"},
            "smoothness": {"_target_": "monai_mine.losses.TotalVariationLoss"},
            "terms": entries,
        }
    )
    return parser.get_parsed_content("terms")


def loss_settings(terms) -> list[dict]:
    return [{k: v for k, v in vars(t.loss).items() if not k.startswith("_") and not callable(v)} for t in terms]


@pytest.mark.parametrize("invertibility", [False, True], ids=["ADDD", "ADDD+inv"])
def test_addd_is_the_bundles_former_explicit_list(invertibility):
    expected = listed_terms(ADDD_TERMS + ([INVERTIBILITY_TERM] if invertibility else []))
    built = vtn_loss_terms(
        "ADDD",
        CorrelationCoefficientLoss(),
        TotalVariationLoss(),
        invertibility=InvertibilityLoss(central_fraction=0.5) if invertibility else None,
    )
    assert [(type(t), type(t.loss), t.weight, t.stage, t.name) for t in built] == [
        (type(t), type(t.loss), t.weight, t.stage, t.name) for t in expected
    ]
    assert loss_settings(built) == loss_settings(expected)


def test_similarity_and_smoothness_modules_are_shared():
    similarity, smoothness = CorrelationCoefficientLoss(), TotalVariationLoss()
    terms = vtn_loss_terms("ADDD", similarity, smoothness)
    assert all(t.loss is similarity for t in terms if isinstance(t, SimilarityTerm))
    assert sum(t.loss is smoothness for t in terms) == 3


@pytest.mark.parametrize(
    "stages, similarity_weights",
    [
        ("D", {"cc_dense1": 1.0}),
        ("DD", {"cc_dense1": 0.05, "cc_dense2": 1.0}),
        ("DDD", {"cc_dense1": 0.0, "cc_dense2": 0.05, "cc_dense3": 1.0}),
        ("AD", {"cc_affine": 1.0, "cc_dense1": 1.0}),
        ("ADD", {"cc_affine": 1.0, "cc_dense1": 0.05, "cc_dense2": 1.0}),
        ("addd", {"cc_affine": 1.0, "cc_dense1": 0.0, "cc_dense2": 0.05, "cc_dense3": 1.0}),
        ("A", {"cc_affine": 1.0}),
    ],
)
def test_layouts_follow_the_papers_rule(stages, similarity_weights):
    terms = vtn_loss_terms(stages, CorrelationCoefficientLoss(), TotalVariationLoss())
    by_name = {t.name: t for t in terms}
    assert {n: t.weight for n, t in by_name.items() if n.startswith("cc_")} == similarity_weights
    dense = stages.upper().count("D")
    first_dense = len(stages) - dense
    assert [(by_name[f"tv_dense{k}"].stage, by_name[f"tv_dense{k}"].weight) for k in range(1, dense + 1)] == [
        (first_dense + k, 1.0) for k in range(dense)
    ]
    assert [by_name[f"cc_dense{k}"].stage for k in range(1, dense + 1)] == list(range(first_dense, len(stages)))
    affine = {"orthogonality": 0.1, "determinant": 0.1} if stages.upper().startswith("A") else {}
    assert {n: (t.weight, t.stage) for n, t in by_name.items() if n in ("orthogonality", "determinant")} == {
        n: (w, 0) for n, w in affine.items()
    }
    assert not any(isinstance(t, InvertibilityTerm) for t in terms)


@pytest.mark.parametrize("stages", ["", "DA", "AAD", "ADXD"])
def test_other_layouts_are_refused_by_name(stages):
    with pytest.raises(ValueError, match=f"stages must be a VTN layout.*got {stages!r}"):
        vtn_loss_terms(stages, CorrelationCoefficientLoss(), TotalVariationLoss())
