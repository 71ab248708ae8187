"""RegistrationEvaluator: per-pair decollated outputs, eval mode, no gradients."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, MetaTensor

from monai_mine.engines import RegistrationEvaluator
from monai_mine.flows import warp


def run_evaluator(network, data, batch_size=2, **kwargs) -> tuple[RegistrationEvaluator, list[dict]]:
    evaluator = RegistrationEvaluator("cpu", DataLoader(data, batch_size=batch_size, shuffle=False), network, **kwargs)
    outputs: list[dict] = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: outputs.extend(engine.state.output))
    evaluator.run()
    return evaluator, outputs


def test_outputs_one_dict_per_pair_with_ddf_warped_images_labels_and_runtime(tiny_vtn, meta_pairs):
    network = tiny_vtn("AD")
    data = meta_pairs(3)
    _, outputs = run_evaluator(network, data, batch_size=2)
    assert len(outputs) == 3
    network.eval()
    for item, pair in zip(outputs, data):
        image = torch.cat([pair["moving_image"].as_tensor(), pair["fixed_image"].as_tensor()])[None]
        with torch.no_grad():
            expected = network(image)[0]
        assert item["pred"].shape == (3, 16, 16, 16)
        torch.testing.assert_close(item["pred"], expected, atol=1e-5, rtol=1e-5)
        assert item["warped"].shape == (1, 16, 16, 16)
        torch.testing.assert_close(item["warped"], warp(pair["moving_image"].as_tensor()[None], expected[None])[0])
        warped_label = item["warped_label"]
        assert warped_label.shape == (1, 16, 16, 16)
        assert torch.equal(warped_label, warped_label.round()) and set(warped_label.unique().tolist()) <= {0, 1}
        nearest = warp(pair["moving_label"].as_tensor()[None].float(), expected[None], mode="nearest")[0]
        torch.testing.assert_close(warped_label.float(), nearest)
        assert float(item["runtime"]) > 0
        assert item["image"].shape == (2, 16, 16, 16)
        assert torch.equal(item["moving_label"].as_tensor(), pair["moving_label"].as_tensor())


def test_images_keep_their_files_meta_data(tiny_vtn, meta_pairs):
    _, outputs = run_evaluator(tiny_vtn("A"), meta_pairs(2))
    for index, item in enumerate(outputs):
        assert isinstance(item["fixed"], MetaTensor) and isinstance(item["moving"], MetaTensor)
        assert item["moving"].meta["filename_or_obj"] == f"/data/moving_{index}.nii.gz"
        assert item["fixed"].meta["filename_or_obj"] == f"/data/fixed_{index}.nii.gz"
        assert torch.allclose(torch.as_tensor(item["fixed"].affine).diagonal()[:3].float(), torch.full((3,), 2.0))


def test_the_network_runs_in_eval_mode_without_gradients(tiny_vtn, meta_pairs):
    network = tiny_vtn("AD").train()
    seen = []
    network.register_forward_hook(lambda module, *_: seen.append((module.training, torch.is_grad_enabled())))
    _, outputs = run_evaluator(network, meta_pairs(2))
    assert seen == [(False, False)]
    for item in outputs:
        assert not any(value.requires_grad for value in item.values() if isinstance(value, torch.Tensor))
    assert all(p.grad is None for p in network.parameters())


@pytest.mark.parametrize("keep", [None, "moving_label", "fixed_label"])
def test_pairs_without_both_labels_give_no_label_outputs(zero_flow, meta_pairs, keep):
    data = meta_pairs(2)
    for item in data:
        for key in ("moving_label", "fixed_label"):
            if key != keep:
                del item[key]
    _, outputs = run_evaluator(zero_flow, data)
    assert len(outputs) == 2
    for item in outputs:
        assert not {"warped_label", "moving_label", "fixed_label"} & set(item)
        assert {"pred", "warped", "moving", "fixed", "runtime"} <= set(item)


def test_runtime_is_per_pair(zero_flow, meta_pairs):
    """A batch's network time is split among its pairs: both pairs of one batch report the same time."""
    _, outputs = run_evaluator(zero_flow, meta_pairs(2), batch_size=2)
    assert float(outputs[0]["runtime"]) == float(outputs[1]["runtime"]) > 0


def test_amp_inference_on_cpu_gives_a_float32_ddf(tiny_vtn, meta_pairs):
    network = tiny_vtn("A")
    _, outputs = run_evaluator(network, meta_pairs(1), batch_size=1, amp=True)
    ddf = outputs[0]["pred"]
    assert ddf.dtype == torch.float32 and torch.isfinite(ddf).all()
    with torch.no_grad():
        image = torch.cat([meta_pairs(1)[0]["moving_image"], meta_pairs(1)[0]["fixed_image"]])[None].as_tensor()
        torch.testing.assert_close(ddf, network.eval()(image)[0], atol=0.05, rtol=0.05)
