"""Activation checkpointing: the same outputs, the same gradients and the same weights as without it.

Every network takes ``checkpointing=True``; checkpointing only changes what is kept for the backward pass, so a
checkpointed copy of a network must give exactly the forward output and (to float rounding) the gradients of the
original, keep its state-dict keys (checkpoints load either way) and run plainly without gradients.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_mine.networks import AffineNet, UNetDeformNet, VTNDenseNet, build_miregnet, build_vtn

FACTORIES = {
    "AffineNet": lambda on: AffineNet(channels=(4, 8, 8), strides=(2, 1, 2), norm="instance", checkpointing=on),
    "VTNDenseNet": lambda on: VTNDenseNet(channels=4, depth=3, checkpointing=on),
    "UNetDeformNet": lambda on: UNetDeformNet(channels=(4, 8, 8), strides=(2, 2), checkpointing=on),
    "vtn-ADDD": lambda on: build_vtn("ADDD", channels=4, depth=3, checkpointing=on),
    "miregnet": lambda on: build_miregnet(
        affine_channels=(4, 8),
        affine_strides=(2, 2),
        deform_channels=(4, 8, 8),
        deform_strides=(2, 2),
        checkpointing=on,
    ),
}


def pair_and_twin(name: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    plain = FACTORIES[name](False)
    checkpointed = FACTORIES[name](True)
    checkpointed.load_state_dict(plain.state_dict())  # same keys: checkpointing adds no wrapper modules
    return plain, checkpointed


def make_input() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    noise = torch.rand(2, 2, 16, 16, 16, generator=generator)
    return nn.functional.avg_pool3d(noise, 3, stride=1, padding=1, count_include_pad=False)


def gradients(net: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = image.clone().requires_grad_(True)
    output = net.predict_affine(image)[0] if isinstance(net, AffineNet) else net(image)
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(3))
    (output * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    return output.detach(), {"input": image.grad, **grads}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_checkpointing_gives_the_same_output_and_gradients(name):
    plain, checkpointed = pair_and_twin(name)
    image = make_input()
    output, expected = gradients(plain, image)
    checkpointed_output, actual = gradients(checkpointed, image)
    torch.testing.assert_close(checkpointed_output, output, rtol=0, atol=0)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert value.abs().sum() > 0, f"{key} has no gradient, the comparison would be blind"
        torch.testing.assert_close(actual[key], value, rtol=1e-5, atol=1e-7, msg=f"gradient of {key}")


def test_checkpointing_recomputes_in_the_backward_pass():
    """The switch really checkpoints: the encoder levels run again during backward."""
    _, net = pair_and_twin("VTNDenseNet")
    calls = []
    net.encoder[0].register_forward_pre_hook(lambda *_: calls.append(1))
    output = net(make_input().requires_grad_(True))
    assert len(calls) == 1
    output.sum().backward()
    assert len(calls) == 2  # recomputed once for the backward pass


def test_checkpointing_is_a_plain_call_without_gradients():
    plain, checkpointed = pair_and_twin("miregnet")
    calls = []
    checkpointed.subnetworks[1].unet.model[0].register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        torch.testing.assert_close(checkpointed(make_input()), plain(make_input()), rtol=0, atol=0)
    assert len(calls) == 1
