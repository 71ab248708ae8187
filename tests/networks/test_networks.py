"""Registration networks: shapes, gradients, identity initialisation, cascade composition, TorchScript export
and input validation.

Every registration network maps (B, 2, X, Y, Z) (channel 0 moving, channel 1 fixed) to a DDF (B, 3, X, Y, Z) in
voxels; the MINE critic maps (moving, fixed) to per-voxel scores (B, 1, X, Y, Z). All configurations here are
tiny so that the whole module runs in seconds on two CPU cores.
"""

from __future__ import annotations

import warnings
from math import lcm

import pytest
import torch
from torch import nn

from monai_mine import flows
from monai_mine.networks import (
    AffineNet,
    MINECritic,
    RegistrationCascade,
    UNetDeformNet,
    VTNDenseNet,
    build_miregnet,
    build_vtn,
)
from monai_mine.stages import StageRecord

VTN_LAYOUTS = ("A", "D", "AD", "ADDD", "DA")


def small_miregnet() -> RegistrationCascade:
    return build_miregnet(
        affine_channels=(4, 8), affine_strides=(2, 2), deform_channels=(4, 8, 8), deform_strides=(2, 2)
    )


# name -> (factory, expected total stride); every factory gives a small network
NETWORKS = {
    "AffineNet": (lambda: AffineNet(channels=(4, 8), strides=(2, 2)), 4),
    "AffineNet-instance": (lambda: AffineNet(channels=(4, 8, 8), strides=(2, 1, 2), norm="instance"), 4),
    "VTNDenseNet": (lambda: VTNDenseNet(channels=4, depth=3), 8),
    "UNetDeformNet": (lambda: UNetDeformNet(channels=(4, 8, 8), strides=(2, 2)), 4),
    **{
        f"vtn-{layout}": ((lambda layout=layout: build_vtn(layout, channels=4, depth=3)), 4 if layout == "A" else 8)
        for layout in VTN_LAYOUTS
    },
    "miregnet": (small_miregnet, 4),
}
NETWORK_NAMES = list(NETWORKS)
CASCADE_NAMES = [name for name in NETWORK_NAMES if name.startswith(("vtn-", "miregnet"))]

# two input sizes, batch 1 and 2; every size is divisible by all total strides above (4 and 8)
SHAPES = [(1, 2, 16, 16, 16), (2, 2, 24, 16, 32)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make(name: str) -> nn.Module:
    return NETWORKS[name][0]()


def pair(shape, seed: int = 1) -> torch.Tensor:
    """A smooth-ish random pair (B, 2, X, Y, Z) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(shape, generator=generator)
    return nn.functional.avg_pool3d(noise, 3, stride=1, padding=1, count_include_pad=False)


def perturb_affine_heads(net: nn.Module, std: float = 0.05, bias_std: float = 1.0) -> None:
    """Make every AffineNet head predict a clearly non-identity transform, so compositions are non-trivial."""
    generator = torch.Generator().manual_seed(7)
    for module in net.modules():
        if isinstance(module, AffineNet):
            with torch.no_grad():
                module.head.weight.copy_(torch.randn(module.head.weight.shape, generator=generator) * std)
                module.head.bias.copy_(torch.randn(module.head.bias.shape, generator=generator) * bias_std)


def trace(module: nn.Module, example, no_grad: bool = False):
    with warnings.catch_warnings(), torch.set_grad_enabled(not no_grad):
        warnings.simplefilter("ignore")  # TracerWarning on the Python shape checks, torch.jit.trace deprecation
        return torch.jit.trace(module, example, check_trace=False)


def assert_every_parameter_has_gradient(net: nn.Module) -> None:
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    zero = [name for name, p in net.named_parameters() if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"
    assert not zero, f"all-zero gradient for {zero}"


def weighted_sum(output: torch.Tensor) -> torch.Tensor:
    """A scalar of the output with random weights (a plain sum is blind behind instance normalisation)."""
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(3))
    return (output * weights).sum()


# ---------------------------------------------------------------------------------------------------------------
# every registration network: shapes, gradients, validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_output_is_ddf_of_input_shape(name, shape):
    net = make(name).eval()
    with torch.no_grad():
        ddf = net(pair(shape))
    assert ddf.shape == (shape[0], 3, *shape[2:])
    assert ddf.dtype == torch.float32
    assert torch.isfinite(ddf).all()


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_total_stride(name):
    assert make(name).total_stride == NETWORKS[name][1]


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_gradient_reaches_every_parameter(name):
    net = make(name).train()
    weighted_sum(net(pair((2, 2, 16, 16, 16)))).backward()
    assert_every_parameter_has_gradient(net)


@pytest.mark.parametrize("name", NETWORK_NAMES)
@pytest.mark.parametrize(
    "shape", [(1, 3, 16, 16, 16), (1, 1, 16, 16, 16), (2, 16, 16, 16), (1, 2, 16, 16, 16, 16)], ids=str
)
def test_wrong_input_shape_raises(name, shape):
    net = make(name)
    with pytest.raises(ValueError, match=r"expects image of shape \(B, 2, X, Y, Z\)"):
        net(torch.zeros(shape))


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_spatial_size_not_divisible_by_total_stride_raises(name):
    net = make(name)
    stride = net.total_stride
    image = torch.zeros(1, 2, 2 * stride + 2, 2 * stride, 2 * stride)
    with pytest.raises(ValueError, match=rf"divisible by its total stride {stride}\b"):
        net(image)


def test_affine_predict_affine_also_validates_input():
    net = make("AffineNet")
    with pytest.raises(ValueError, match=r"expects image of shape \(B, 2, X, Y, Z\)"):
        net.predict_affine(torch.zeros(1, 3, 16, 16, 16))
    with pytest.raises(ValueError, match="divisible by its total stride 4"):
        net.predict_affine(torch.zeros(1, 2, 16, 18, 16))


# ---------------------------------------------------------------------------------------------------------------
# AffineNet
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: AffineNet(channels=(4, 8), strides=(2, 2)), (2, 2, 16, 16, 16)),
        (lambda: AffineNet(channels=(4, 8), strides=(2, 2), norm="instance"), (2, 2, 24, 16, 32)),
        (AffineNet, (1, 2, 32, 32, 32)),  # the VTN defaults, total stride 32
    ],
    ids=["small", "instance", "default"],
)
def test_affine_net_is_near_identity_at_initialisation(factory, shape):
    net = factory().eval()
    image = pair(shape)
    with torch.no_grad():
        matrix, translation = net.predict_affine(image)
        ddf = net(image)
    assert matrix.shape == (shape[0], 3, 3)
    assert translation.shape == (shape[0], 3)
    assert matrix.abs().max() < 1e-2
    assert translation.abs().max() < 1e-2
    assert ddf.shape == (shape[0], 3, *shape[2:])
    # far below one voxel although the grid reaches +-(N - 1) / 2 from the centre
    assert ddf.abs().max() < 0.01 * max(shape[2:])
    assert ddf.abs().max() < 0.1
    torch.testing.assert_close(ddf, flows.affine_to_ddf(matrix, translation, shape[2:]))


def test_affine_net_with_zero_init_is_exact_identity():
    net = AffineNet(channels=(4, 8), strides=(2, 2), init_std=0.0)
    ddf = net(pair((2, 2, 16, 16, 16)))
    assert torch.equal(ddf, torch.zeros_like(ddf))


def test_affine_net_ddf_is_in_voxels():
    """W = 0, b = (1, -2, 0.5) shifts every voxel by b; W = diag(0.1, 0, 0) gives 0.1 (x - c) along x."""
    net = AffineNet(channels=(4, 8), strides=(2, 2))
    shape = (16, 8, 12)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0] * 9 + [1.0, -2.0, 0.5]))
        ddf = net(pair((1, 2, *shape)))
        for axis, value in enumerate((1.0, -2.0, 0.5)):
            assert torch.allclose(ddf[0, axis], torch.full(shape, value))
        net.head.bias.copy_(torch.tensor([0.1] + [0.0] * 11))
        ddf = net(pair((1, 2, *shape)))
    x = torch.arange(shape[0], dtype=torch.float32) - (shape[0] - 1) / 2
    torch.testing.assert_close(ddf[0, 0], (0.1 * x)[:, None, None].expand(shape))
    assert torch.equal(ddf[0, 1:], torch.zeros(2, *shape))


def test_affine_net_rejects_mismatched_channels_and_strides():
    with pytest.raises(ValueError, match="equal length"):
        AffineNet(channels=(4, 8), strides=(2,))
    with pytest.raises(ValueError, match="non-empty"):
        AffineNet(channels=(), strides=())


def test_affine_net_moments_pooling_sees_where_features_are():
    """Mean pooling cannot tell a feature map from its mirror image; moment pooling can (first moments flip)."""
    features = torch.rand(1, 3, 4, 5, 6)
    mirrored = features.flip(2)
    mean_net = AffineNet(channels=(3,), strides=(1,))
    moments_net = AffineNet(channels=(3,), strides=(1,), pooling="moments")
    assert moments_net.head.in_features == 4 * mean_net.head.in_features == 12
    torch.testing.assert_close(mean_net._pool(features), mean_net._pool(mirrored))
    pooled, pooled_mirror = moments_net._pool(features), moments_net._pool(mirrored)
    torch.testing.assert_close(pooled[:, :3], pooled_mirror[:, :3])  # the means
    torch.testing.assert_close(pooled[:, 3:6], -pooled_mirror[:, 3:6])  # first moments along the mirrored axis
    torch.testing.assert_close(pooled[:, 6:], pooled_mirror[:, 6:])
    u = torch.linspace(-1, 1, 4)  # centred coordinates in [-1, 1]
    expected = (features * u[:, None, None]).mean(dim=(2, 3, 4))
    torch.testing.assert_close(pooled[:, 3:6], expected)
    assert moments_net._pool(torch.rand(1, 3, 2, 1, 2))[:, 6:9].abs().max() == 0  # a 1-voxel axis has no moment


def test_affine_net_moments_pooling_traces_for_other_sizes():
    net = AffineNet(channels=(4, 4), strides=(2, 2), pooling="moments").eval()
    with torch.no_grad():
        net.head.weight.normal_()
        traced = torch.jit.trace(net, torch.rand(1, 2, 16, 16, 16), check_trace=False)
        other = torch.rand(1, 2, 24, 16, 32)
        torch.testing.assert_close(traced(other), net(other))


def test_affine_net_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of"):
        AffineNet(pooling="max")


# ---------------------------------------------------------------------------------------------------------------
# VTN dense subnetwork and U-Net DeformNet
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_vtn_dense() -> VTNDenseNet:
    return VTNDenseNet()


def test_vtn_dense_default_has_about_28m_parameters(default_vtn_dense):
    count = sum(p.numel() for p in default_vtn_dense.parameters())
    assert 27e6 < count < 29.5e6
    assert default_vtn_dense.total_stride == 64


def test_vtn_dense_default_decoder_channels(default_vtn_dense):
    """VTN Figure 5: the decoder concatenates [skip, deconv, flow] into 515, 259, 131, 67, 35 channels."""
    net = default_vtn_dense
    encoder_out = [level[-1].conv.out_channels for level in net.encoder]
    assert encoder_out == [16, 32, 64, 128, 256, 512]
    assert [len(level) for level in net.encoder] == [1, 1, 2, 2, 2, 2]
    concat = [m.conv.in_channels for m in net.predict_flow[1:]] + [net.final_flow.conv.in_channels]
    assert concat == [515, 259, 131, 67, 35]
    assert [m.conv.in_channels for m in net.upsample_features] == [512, 515, 259, 131, 67]
    assert [m.conv.out_channels for m in net.upsample_features] == [256, 128, 64, 32, 16]
    assert net.predict_flow[0].conv.in_channels == 512
    assert all(m.conv.out_channels == 3 for m in net.predict_flow)
    assert all(m.conv.in_channels == m.conv.out_channels == 3 for m in net.upsample_flow)
    assert net.final_flow.conv.out_channels == 3
    assert net.flow_scale == 20.0


def test_vtn_dense_rejects_shallow_depth():
    with pytest.raises(ValueError, match="depth must be at least 2"):
        VTNDenseNet(depth=1)


def test_vtn_dense_flow_multiplier_scales_output():
    image = pair((1, 2, 16, 16, 16))
    torch.manual_seed(5)
    full = VTNDenseNet(channels=4, depth=3).eval()
    torch.manual_seed(5)
    half = VTNDenseNet(channels=4, depth=3, flow_multiplier=0.5).eval()
    with torch.no_grad():
        torch.testing.assert_close(half(image), 0.5 * full(image))


def test_unet_deform_flow_scale_scales_output():
    image = pair((1, 2, 16, 16, 16))
    torch.manual_seed(5)
    base = UNetDeformNet(channels=(4, 8, 8), strides=(2, 2)).eval()
    torch.manual_seed(5)
    scaled = UNetDeformNet(channels=(4, 8, 8), strides=(2, 2), flow_scale=3.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(scaled(image), 3.0 * base(image))


# ---------------------------------------------------------------------------------------------------------------
# cascades
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", VTN_LAYOUTS + ("AA", "DD"))
def test_build_vtn_stage_kinds(layout):
    net = build_vtn(layout, channels=4, depth=3)
    assert net.stage_kinds == layout
    assert len(net.subnetworks) == len(layout)
    for letter, stage in zip(layout, net.subnetworks):
        assert isinstance(stage, AffineNet if letter == "A" else VTNDenseNet)


def test_build_vtn_accepts_lower_case_layout():
    assert build_vtn("ad", channels=4, depth=3).stage_kinds == "AD"


@pytest.mark.parametrize("layout", ["AXD", "", "ADx", "A D"])
def test_build_vtn_rejects_bad_layout(layout):
    with pytest.raises(ValueError, match="non-empty string of 'A'"):
        build_vtn(layout, channels=4, depth=3)


def test_default_builders():
    vtn = build_vtn()
    assert vtn.stage_kinds == "ADDD"
    assert vtn.total_stride == 64  # lcm of the affine 32 and the dense 2^6
    dense_counts = [sum(p.numel() for p in s.parameters()) for s in vtn.subnetworks[1:]]
    assert all(27e6 < count < 29.5e6 for count in dense_counts)
    miregnet = build_miregnet()
    assert miregnet.stage_kinds == "AD"
    assert isinstance(miregnet.subnetworks[0], AffineNet)
    assert isinstance(miregnet.subnetworks[1], UNetDeformNet)
    assert miregnet.total_stride == 32


def test_small_miregnet_structure():
    net = small_miregnet()
    assert net.stage_kinds == "AD"
    assert [type(s) for s in net.subnetworks] == [AffineNet, UNetDeformNet]
    assert net.total_stride == lcm(net.subnetworks[0].total_stride, net.subnetworks[1].total_stride) == 4


def test_cascade_rejects_no_stage():
    with pytest.raises(ValueError, match="at least one stage"):
        RegistrationCascade([])


def test_cascade_rejects_stage_without_total_stride():
    with pytest.raises(ValueError, match="integer total_stride"):
        RegistrationCascade([nn.Conv3d(2, 3, 3, padding=1)])


def test_cascade_stages_rejects_mismatched_pair():
    net = build_vtn("AD", channels=4, depth=3)
    with pytest.raises(ValueError, match="must have the same shape"):
        net.stages(torch.zeros(1, 1, 16, 16, 16), torch.zeros(1, 1, 16, 16, 24))
    with pytest.raises(ValueError, match="divisible by its total stride 8"):
        net.stages(torch.zeros(1, 1, 16, 16, 12), torch.zeros(1, 1, 16, 16, 12))


def run_stages(name: str, shape=(2, 2, 16, 16, 24)):
    net = make(name).eval()
    perturb_affine_heads(net)
    image = pair(shape)
    moving, fixed = image[:, :1], image[:, 1:]
    with torch.no_grad():
        records = net.stages(moving, fixed)
        total = net(image)
    return net, moving, fixed, records, total


@pytest.mark.parametrize("name", CASCADE_NAMES)
def test_cascade_records(name):
    net, moving, fixed, records, total = run_stages(name)
    layout = net.stage_kinds
    assert len(records) == len(layout)
    assert all(isinstance(r, StageRecord) for r in records)
    assert [r.kind for r in records] == ["affine" if letter == "A" else "dense" for letter in layout]
    ddf_shape = (moving.shape[0], 3, *moving.shape[2:])
    for record in records:
        assert record.flow.shape == record.composed_flow.shape == ddf_shape
        assert record.warped.shape == moving.shape
        # the original moving image is warped once by the composed flow, never re-warped
        torch.testing.assert_close(record.warped, flows.warp(moving, record.composed_flow))
        if record.kind == "affine":
            assert record.matrix.shape == (moving.shape[0], 3, 3)
            assert record.translation.shape == (moving.shape[0], 3)
            torch.testing.assert_close(
                record.flow, flows.affine_to_ddf(record.matrix, record.translation, moving.shape[2:])
            )
        else:
            assert record.matrix is None and record.translation is None
    torch.testing.assert_close(records[0].composed_flow, records[0].flow)
    torch.testing.assert_close(total, records[-1].composed_flow)


@pytest.mark.parametrize("name", ["vtn-AD", "miregnet"])
def test_cascade_affine_then_dense_composes_exactly(name):
    _, _, _, records, total = run_stages(name)
    affine, dense = records
    assert affine.matrix.abs().max() > 1e-2  # the perturbed head: a real affine, not the identity
    expected = flows.compose_affine_ddf(affine.matrix, affine.translation, dense.flow)
    torch.testing.assert_close(dense.composed_flow, expected)
    torch.testing.assert_close(total, expected)


def test_cascade_addd_composition_chain():
    _, _, _, records, total = run_stages("vtn-ADDD")
    a, d1, d2, d3 = records
    torch.testing.assert_close(a.composed_flow, a.flow)
    torch.testing.assert_close(d1.composed_flow, flows.compose_affine_ddf(a.matrix, a.translation, d1.flow))
    torch.testing.assert_close(d2.composed_flow, flows.compose_ddf(d1.composed_flow, d2.flow))
    torch.testing.assert_close(d3.composed_flow, flows.compose_ddf(d2.composed_flow, d3.flow))
    torch.testing.assert_close(total, d3.composed_flow)


def test_cascade_dense_then_affine_composes_by_resampling():
    _, _, _, records, total = run_stages("vtn-DA")
    dense, affine = records
    torch.testing.assert_close(dense.composed_flow, dense.flow)
    torch.testing.assert_close(affine.composed_flow, flows.compose_ddf(dense.flow, affine.flow))
    torch.testing.assert_close(total, affine.composed_flow)


def test_cascade_two_affines_compose_parameters():
    net = build_vtn("AA", channels=4, depth=3).eval()
    perturb_affine_heads(net)
    image = pair((2, 2, 16, 16, 24))
    with torch.no_grad():
        first, second = net.stages(image[:, :1], image[:, 1:])
    matrix, translation = flows.compose_affine_params(
        (first.matrix, first.translation), (second.matrix, second.translation)
    )
    torch.testing.assert_close(second.composed_flow, flows.affine_to_ddf(matrix, translation, image.shape[2:]))


def test_cascade_stage_inputs_are_previous_warped_and_fixed():
    net = build_vtn("ADDD", channels=4, depth=3).eval()
    perturb_affine_heads(net)
    seen = {}
    for index, stage in enumerate(net.subnetworks[1:], start=1):
        stage.register_forward_pre_hook(lambda module, args, index=index: seen.__setitem__(index, args[0].clone()))
    image = pair((1, 2, 16, 16, 16))
    with torch.no_grad():
        records = net.stages(image[:, :1], image[:, 1:])
    assert sorted(seen) == [1, 2, 3]
    for index, stage_input in seen.items():
        torch.testing.assert_close(stage_input[:, :1], records[index - 1].warped)
        assert torch.equal(stage_input[:, 1:], image[:, 1:])


# ---------------------------------------------------------------------------------------------------------------
# MINE critic
# ---------------------------------------------------------------------------------------------------------------

CRITICS = {
    "default": (lambda: MINECritic(), 1),
    "mlp": (lambda: MINECritic(branch_channels=(4,), head_channels=(8,), kernel_size=1), 1),
    "two-channel-instance": (lambda: MINECritic(in_channels=2, branch_channels=(4, 4), norm="instance"), 2),
    "no-head": (lambda: MINECritic(branch_channels=(4,), head_channels=()), 1),
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(CRITICS))
def test_critic_scores_shape(name, shape):
    factory, channels = CRITICS[name]
    critic = factory().eval()
    moving, fixed = torch.rand(shape[0], channels, *shape[2:]), torch.rand(shape[0], channels, *shape[2:])
    with torch.no_grad():
        scores = critic(moving, fixed)
    assert scores.shape == (shape[0], 1, *shape[2:])
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", list(CRITICS))
def test_critic_gradient_reaches_every_parameter(name):
    factory, channels = CRITICS[name]
    critic = factory().train()
    weighted_sum(critic(torch.rand(2, channels, 8, 8, 8), torch.rand(2, channels, 8, 8, 8))).backward()
    assert_every_parameter_has_gradient(critic)


def test_critic_with_kernel_one_is_a_per_voxel_function():
    critic = CRITICS["mlp"][0]().eval()
    moving, fixed = torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8)
    permutation = torch.randperm(8 * 8 * 8)

    def shuffle(t):
        return t.reshape(1, -1, 512)[..., permutation].reshape(t.shape)

    with torch.no_grad():
        torch.testing.assert_close(critic(shuffle(moving), shuffle(fixed)), shuffle(critic(moving, fixed)))


def test_critic_joint_and_marginal_equals_two_calls_with_the_same_gradients():
    inputs = [torch.rand(2, 1, 8, 8, 8) for _ in range(3)]
    critic = MINECritic(branch_channels=(4, 6), head_channels=(5,))
    shared = critic.joint_and_marginal(*inputs)
    separate = separate_scores(critic, inputs)
    for a, b in zip(shared, separate):
        torch.testing.assert_close(a, b)

    def gradients(scores):
        critic.zero_grad()
        (scores[0].square().mean() - scores[1].exp().mean()).backward()
        return [p.grad.clone() for p in critic.parameters()]

    for a, b in zip(gradients(critic.joint_and_marginal(*inputs)), gradients(separate_scores(critic, inputs))):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="fixed_marginal"):
        critic.joint_and_marginal(inputs[0], inputs[1], torch.rand(2, 1, 8, 8, 4))


def separate_scores(critic, inputs):
    return critic(inputs[0], inputs[1]), critic(inputs[0], inputs[2])


def test_critic_validates_inputs():
    critic = MINECritic(branch_channels=(4,), head_channels=(4,))
    good = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match=r"MINECritic expects moving of shape \(B, 1, X, Y, Z\)"):
        critic(torch.zeros(1, 2, 8, 8, 8), good)
    with pytest.raises(ValueError, match=r"MINECritic expects fixed of shape \(B, 1, X, Y, Z\)"):
        critic(good, torch.zeros(1, 8, 8, 8))
    with pytest.raises(ValueError, match="differ in shape"):
        critic(good, torch.zeros(1, 1, 8, 8, 16))
    with pytest.raises(ValueError, match="at least one convolution"):
        MINECritic(branch_channels=())


# ---------------------------------------------------------------------------------------------------------------
# TorchScript export (trace, save, load)
# ---------------------------------------------------------------------------------------------------------------

TRACE_SHAPE = (1, 2, 16, 16, 16)
OTHER_SHAPE = (2, 2, 24, 16, 32)


def save_and_load(traced, path):
    torch.jit.save(traced, str(path))
    return torch.jit.load(str(path))


@pytest.mark.parametrize(
    "name, no_grad",
    [(name, False) for name in NETWORK_NAMES] + [(name, True) for name in CASCADE_NAMES],
    ids=lambda value: {False: "traced-with-grad", True: "traced-no-grad"}.get(value, value),
)
def test_trace_export_round_trip(name, no_grad, tmp_path):
    net = make(name).eval()
    perturb_affine_heads(net)
    example = pair(TRACE_SHAPE)
    loaded = save_and_load(trace(net, example, no_grad=no_grad), tmp_path / f"{name}.pt")
    with torch.no_grad():
        eager, exported = net(example), loaded(example)
        assert exported.shape == eager.shape
        assert (exported - eager).abs().max() < 1e-4
        # Another batch and spatial size. Measured with torch 2.13, tracing with or without grad: the tracer
        # records the shape arithmetic (affine grid, warps, U-Net and decoder sizes), so every traced network,
        # the cascades included, gives the eager result at a size other than the traced one (difference 0.0),
        # not only at the traced shape. Only the Python input checks are frozen (next test).
        other = pair(OTHER_SHAPE, seed=2)
        eager, exported = net(other), loaded(other)
        assert exported.shape == (2, 3, 24, 16, 32)
        assert (exported - eager).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["VTNDenseNet", "vtn-ADDD"])
def test_traced_vtn_loses_the_input_checks(name, tmp_path):
    """The traced module keeps no ValueError check: a size not divisible by 2^depth fails inside torch.cat."""
    loaded = save_and_load(trace(make(name).eval(), pair(TRACE_SHAPE)), tmp_path / "net.pt")
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        loaded(torch.zeros(1, 2, 20, 16, 16))
    with pytest.raises(RuntimeError, match="channels"):
        loaded(torch.zeros(1, 3, 16, 16, 16))


@pytest.mark.parametrize("name", list(CRITICS))
def test_critic_trace_export_round_trip(name, tmp_path):
    factory, channels = CRITICS[name]
    critic = factory().eval()
    example = (torch.rand(1, channels, 16, 16, 16), torch.rand(1, channels, 16, 16, 16))
    loaded = save_and_load(trace(critic, example), tmp_path / "critic.pt")
    with torch.no_grad():
        assert (loaded(*example) - critic(*example)).abs().max() < 1e-4
        other = (torch.rand(2, channels, 24, 16, 32), torch.rand(2, channels, 24, 16, 32))
        exported = loaded(*other)
        assert exported.shape == (2, 1, 24, 16, 32)
        assert (exported - critic(*other)).abs().max() < 1e-4


def test_unet_deform_starts_near_the_identity():
    """The flow head's small initial weights give a near-zero DDF, so a new DeformNet does not scramble its input."""
    torch.manual_seed(0)
    net = UNetDeformNet(channels=(4, 8, 8), strides=(2, 2)).eval()
    with torch.no_grad():
        ddf = net(pair((2, 2, 16, 16, 16)))
    assert ddf.abs().max() < 1e-2
    assert ddf.abs().max() > 0  # not dead: gradients reach the head's weights


def test_untrained_vtn_dense_stages_start_near_the_identity():
    """Flow layers initialised near zero (the default): each dense stage's untrained DDF is far below a voxel, where
    PyTorch's default initialisation (the paper's, flow_init_std=None) gives a random field of about a voxel."""
    pair = torch.rand(1, 2, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    sizes = {}
    for std in (1e-5, None):
        torch.manual_seed(0)
        network = build_vtn("ADDD", channels=4, depth=3, flow_init_std=std).eval()
        with torch.no_grad():
            records = network.stages(pair[:, :1], pair[:, 1:])
        sizes[std] = [float(record.flow.abs().mean()) for record in records[1:]]
    assert max(sizes[1e-5]) < 1e-2 and min(sizes[None]) > 0.1, sizes
