"""Fast inference: the float32 fast path gives the eager DDF, autocast stays finite, bad settings are refused."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from monai_mine.inference import FastRegistration, resolve_dtype
from monai_mine.losses import MINELoss
from monai_mine.networks import build_miregnet, build_vtn

NETWORKS = {
    # PyTorch's default flow-layer initialisation, so that the untrained network gives a real displacement
    "vtn-ADDD": lambda: build_vtn("ADDD", channels=4, depth=3, flow_init_std=None),
    "miregnet": lambda: build_miregnet(
        affine_channels=(4, 8), affine_strides=(2, 2), deform_channels=(4, 8, 8), deform_strides=(2, 2)
    ),
}

# The fast float32 path only changes memory layout and skips nothing the DDF depends on: equal to rounding.
FLOAT32_TOLERANCE = 1e-4  # voxels


def smooth_pair(batch: int = 1, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    noise = torch.rand(batch, 2, size, size, size, generator=generator)
    return nn.functional.avg_pool3d(noise, 5, stride=1, padding=2, count_include_pad=False)


def network(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = NETWORKS[name]().eval()
    for module in net.modules():  # a clearly non-identity transform, so the comparison is not trivial
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.05)
    return net


def eager_ddf(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.stages(image[:, :1], image[:, 1:])[-1].composed_flow


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fast_float32_ddf_equals_eager(name):
    net = network(name)
    image = smooth_pair(batch=2)
    expected = eager_ddf(net, image)
    assert expected.abs().max() > 0.5  # a real displacement, not the identity
    ddf = FastRegistration(copy.deepcopy(net))(image)
    assert ddf.dtype == torch.float32 and ddf.shape == expected.shape
    assert (ddf - expected).abs().max() < FLOAT32_TOLERANCE


@pytest.mark.parametrize("name", list(NETWORKS))
def test_without_channels_last_the_ddf_is_the_networks_exactly(name):
    """What ``register`` runs: the DDF of ``network(image)`` under ``no_grad`` (the evaluator's), bit for bit."""
    net = network(name)
    image = smooth_pair(batch=2)
    with torch.no_grad():
        expected = net(image)
    ddf = FastRegistration(net, channels_last=False, cudnn_benchmark=False)(image)
    torch.testing.assert_close(ddf, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fast_bfloat16_ddf_is_finite_float32_and_close(name):
    net = network(name)
    image = smooth_pair()
    expected = eager_ddf(net, image)
    ddf = FastRegistration(copy.deepcopy(net), amp_dtype="bfloat16")(image)
    assert ddf.dtype == torch.float32
    assert torch.isfinite(ddf).all()
    # bfloat16 keeps 8 significant bits: a few percent of the largest displacement
    assert (ddf - expected).abs().max() < 0.05 * expected.abs().max()


def test_forward_skips_only_the_unused_last_resampling():
    net = network("vtn-ADDD")
    image = smooth_pair()
    with torch.no_grad():
        records = net.stages(image[:, :1], image[:, 1:], warp_last=False)
        full = net.stages(image[:, :1], image[:, 1:])
        assert records[-1].warped is None and all(record.warped is not None for record in records[:-1])
        torch.testing.assert_close(net(image), full[-1].composed_flow, rtol=0, atol=0)
        torch.testing.assert_close(records[-1].composed_flow, full[-1].composed_flow, rtol=0, atol=0)


def test_training_step_under_bfloat16_autocast_is_finite():
    """The MINE loss (logmeanexp over the critic's scores) and the cascade train under CPU autocast."""
    net = build_miregnet(
        affine_channels=(4, 8), affine_strides=(2, 2), deform_channels=(4, 8, 8), deform_strides=(2, 2)
    )
    mine = MINELoss()
    image = smooth_pair(batch=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        records = net(image, return_stages=True)
        loss = mine(records[-1].warped, image[:, 1:])
    assert records[-1].composed_flow.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(torch.as_tensor(mine.last_bound))
    loss.backward()
    grads = [p.grad for p in [*net.parameters(), *mine.parameters()] if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"amp_dtype must be one of \['bfloat16', 'float16', 'float32'\] or None"):
        FastRegistration(network("vtn-ADDD"), amp_dtype="int8")
    with pytest.raises(ValueError, match=r"cuda_graph needs a CUDA device, got device=cpu"):
        FastRegistration(network("vtn-ADDD"), cuda_graph=True)
    assert resolve_dtype("float32") is None and resolve_dtype(torch.float16) is torch.float16
