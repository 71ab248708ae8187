"""MINE: the Donsker-Varadhan bound, its stable log-mean-exp, voxel shuffling and the MINELoss module."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.losses import (
    MINELoss,
    donsker_varadhan_bound,
    logmeanexp,
    sample_voxels,
    shuffle_voxels,
    standardize_intensities,
)
from monai_mine.networks.mine_critic import MINECritic
from tests.helpers import smooth_texture

RHO = 0.8
TRUE_MI = -0.5 * math.log(1 - RHO**2)  # 0.5108 nats for a bivariate Gaussian with correlation 0.8


def gaussian_pair(n: int, rho: float = RHO) -> tuple[torch.Tensor, torch.Tensor]:
    """n correlated standard Gaussian samples (x, y), each shaped as a (1, 1, n, 1, 1) volume."""
    x = torch.randn(n)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n)
    return x.reshape(1, 1, n, 1, 1), y.reshape(1, 1, n, 1, 1)


def per_voxel_critic() -> MINECritic:
    """kernel_size=1: the classic MINE statistics network, an MLP of the two intensities of one voxel."""
    return MINECritic(kernel_size=1, branch_channels=(16,), head_channels=(64, 64))


# -------------------------------------------------------------------------------- Gaussian mutual information


@pytest.mark.parametrize("ema_decay", [None, 0.99])
def test_estimates_gaussian_mutual_information(ema_decay):
    torch.manual_seed(0)
    loss = MINELoss(per_voxel_critic(), ema_decay=ema_decay)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    for _ in range(300):  # fresh samples each step; ~1.5 s on 2 CPU cores
        moving, fixed = gaussian_pair(1024)
        value = loss(moving, fixed)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    loss.eval()
    with torch.no_grad():
        estimates = []
        for _ in range(4):
            moving, fixed = gaussian_pair(65536)
            estimates.append(-float(loss(moving, fixed)))
            assert abs(estimates[-1] - float(loss.last_bound)) < 1e-6
        independent = [-float(loss(*gaussian_pair(65536, rho=0.0))) for _ in range(2)]
    estimate = sum(estimates) / len(estimates)
    # measured 0.49-0.51 over 5 seeds for both variants
    assert abs(estimate - TRUE_MI) < 0.1
    # on independent samples the trained critic finds (almost) no information
    assert max(independent) < 0.05


# ----------------------------------------------------------------------------------- aligned vs shuffled pair


def train_briefly(loss: MINELoss, moving: torch.Tensor, fixed: torch.Tensor, steps: int, lr: float = 3e-3) -> None:
    optimizer = torch.optim.Adam(loss.parameters(), lr=lr)
    for _ in range(steps):
        value = loss(moving, fixed)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()


def mean_bound(loss: MINELoss, moving: torch.Tensor, fixed: torch.Tensor, repeats: int = 4) -> float:
    with torch.no_grad():
        bounds = []
        for _ in range(repeats):
            loss(moving, fixed)
            bounds.append(float(loss.last_bound))
    return sum(bounds) / len(bounds)


def test_bound_is_higher_for_aligned_than_for_shuffled_pair():
    torch.manual_seed(1)
    moving = smooth_texture(16, seed=2)
    fixed = torch.cos(3.0 * moving) + 0.5 * moving**2  # a non-monotone intensity remapping
    loss = MINELoss(per_voxel_critic())
    train_briefly(loss, moving, fixed, steps=100)
    aligned = mean_bound(loss, moving, fixed)
    shuffled = mean_bound(loss, moving, shuffle_voxels(fixed, generator=torch.Generator().manual_seed(3)))
    misaligned = mean_bound(loss, torch.roll(moving, 4, dims=2), fixed)
    # measured (seeds 1, 2): aligned 2.0-2.4, shuffled -4 to -6, misaligned -4 to -6
    assert aligned > 1.0
    assert aligned > shuffled + 1.0
    assert aligned > misaligned + 1.0


def test_bound_with_default_critic_is_not_positive_for_an_uninformative_moving_image():
    torch.manual_seed(0)
    fixed = smooth_texture(16, seed=2)
    moving = torch.zeros_like(fixed)  # a constant image carries no information: MI(moving, fixed) = 0
    loss = MINELoss()  # default MINECritic, kernel_size=3
    train_briefly(loss, moving, fixed, steps=50, lr=1e-3)
    # a lower bound of MI = 0 must not be clearly positive; a critic whose fixed entrance saw neighbourhoods
    # reached 6.1 nats here (it tells a smooth fixed image from its shuffled copy); the per-voxel fixed entrance
    # keeps it at ~0
    assert mean_bound(loss, moving, fixed) < 0.1


def test_bound_with_per_voxel_critic_is_not_positive_for_an_uninformative_moving_image():
    torch.manual_seed(0)
    fixed = smooth_texture(16, seed=2)
    moving = torch.zeros_like(fixed)
    loss = MINELoss(MINECritic(kernel_size=1))
    train_briefly(loss, moving, fixed, steps=50, lr=1e-3)
    assert mean_bound(loss, moving, fixed) < 0.1


# ------------------------------------------------------------------------------------------ numerical safety


@pytest.mark.parametrize("offset", [1e4, -1e4, 0.0])
def test_logmeanexp_is_stable_for_large_scores(offset):
    g = torch.Generator().manual_seed(4)
    scores64 = offset + torch.randn(2, 1, 8, 8, 8, generator=g, dtype=torch.float64)
    flat = scores64.flatten(1)
    peak = flat.max(dim=1).values
    reference = torch.log(torch.exp(flat - peak[:, None]).mean(dim=1)) + peak
    if offset > 0:
        assert torch.isinf(torch.exp(scores64.float())).all()  # a naive mean(exp) overflows
    result64 = logmeanexp(scores64)
    assert result64.shape == (2,) and torch.isfinite(result64).all()
    assert torch.allclose(result64, reference, rtol=0, atol=1e-9)
    result32 = logmeanexp(scores64.float())
    assert torch.isfinite(result32).all()
    # float32 spacing at 1e4 is ~1e-3
    assert torch.allclose(result32.double(), reference, rtol=0, atol=5e-3)


def test_logmeanexp_with_mask_uses_foreground_only():
    g = torch.Generator().manual_seed(5)
    scores = 1e4 + torch.randn(2, 1, 6, 6, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 1, 6, 6, 6, generator=g) > 0.5
    result = logmeanexp(scores, mask)
    for b in range(2):
        fg = scores[b][mask[b]]
        expected = torch.log(torch.exp(fg - fg.max()).mean()) + fg.max()
        assert abs(float(result[b] - expected)) < 1e-9


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 1e-2)])
def test_donsker_varadhan_bound_is_finite_for_large_scores(dtype, atol):
    g = torch.Generator().manual_seed(6)
    joint = 1e4 + 2.0 + torch.randn(3, 1, 8, 8, 8, generator=g, dtype=torch.float64)
    marginal = 1e4 + torch.randn(3, 1, 8, 8, 8, generator=g, dtype=torch.float64)
    bound = donsker_varadhan_bound(joint.to(dtype), marginal.to(dtype))
    assert bound.shape == (3,) and torch.isfinite(bound).all()
    flat = marginal.flatten(1)
    peak = flat.max(dim=1).values
    expected = joint.flatten(1).mean(1) - (torch.log(torch.exp(flat - peak[:, None]).mean(1)) + peak)
    assert torch.allclose(bound.double(), expected, rtol=0, atol=atol)
    # equal score distributions: the bound is about 2 - 0.5 (the log-normal correction of the marginal term)
    assert ((bound.double() - 1.5).abs() < 0.3).all()


def test_donsker_varadhan_bound_shape_error():
    with pytest.raises(ValueError, match=r"joint_scores \(1, 1, 4, 4, 4\) and marginal_scores \(1, 1, 4, 4, 5\)"):
        donsker_varadhan_bound(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 5))


def test_mine_loss_stays_finite_with_huge_critic_outputs():
    critic = per_voxel_critic()
    with torch.no_grad():
        critic.score.conv.bias.fill_(1e4)  # every score is about 1e4: exp() would overflow
    torch.manual_seed(7)
    loss = MINELoss(critic, ema_decay=0.9)
    moving, fixed = gaussian_pair(512)
    value = loss(moving, fixed)
    assert torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters())


# --------------------------------------------------------------------------------------------- shuffle_voxels


def test_shuffle_voxels_permutes_values():
    image = torch.rand(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(8))
    shuffled = shuffle_voxels(image, generator=torch.Generator().manual_seed(9))
    assert shuffled.shape == image.shape
    for b in range(2):
        for c in range(3):
            assert torch.equal(shuffled[b, c].flatten().sort().values, image[b, c].flatten().sort().values)
    assert (shuffled != image).float().mean() > 0.95  # the order changed almost everywhere
    # one permutation for all channels of a sample: channel tuples of voxels are preserved
    voxels = image[0].flatten(1).T.tolist()
    assert sorted(shuffled[0].flatten(1).T.tolist()) == sorted(voxels)
    # reproducible with a generator
    again = shuffle_voxels(image, generator=torch.Generator().manual_seed(9))
    assert torch.equal(shuffled, again)


def test_shuffle_voxels_with_mask_permutes_foreground_only():
    g = torch.Generator().manual_seed(10)
    image = torch.rand(2, 2, 8, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8, 8)
    mask[:, :, 2:6, 1:7, 3:8] = 1.0
    mask[1, :, :, :, 0] = 1.0  # a different foreground for the second sample
    shuffled = shuffle_voxels(image, mask, generator=g)
    fg = mask.bool().expand_as(image)
    assert torch.equal(shuffled[~fg], image[~fg])  # background keeps its values in place
    for b in range(2):
        for c in range(2):
            fg_b = mask[b, 0].bool()
            assert torch.equal(shuffled[b, c][fg_b].sort().values, image[b, c][fg_b].sort().values)
    assert (shuffled[fg] != image[fg]).float().mean() > 0.9


def test_shuffle_voxels_errors():
    image = torch.rand(2, 1, 4, 4, 4)
    mask = torch.ones(2, 1, 4, 4, 4)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"mask is empty \(no foreground voxel\) for batch sample\(s\) \[1\]"):
        shuffle_voxels(image, mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 1, 4, 4, 4\), got \(2, 2, 4, 4, 4\)"):
        shuffle_voxels(image, torch.ones(2, 2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"image must have shape \(B, C, X, Y, Z\), got \(1, 4, 4, 4\)"):
        shuffle_voxels(torch.rand(1, 4, 4, 4))


# ----------------------------------------------------------------------------------------------- MINELoss


def test_mine_loss_with_mask_ignores_background():
    torch.manual_seed(11)
    moving = smooth_texture(12, seed=12)
    fixed = moving**2
    mask = torch.zeros(1, 1, 12, 12, 12)
    mask[..., 2:10, 2:10, 2:10] = 1
    loss = MINELoss(per_voxel_critic(), reduction="none")
    torch.manual_seed(13)
    value = loss(moving, fixed, mask)
    assert value.shape == (1,) and torch.isfinite(value).all()
    assert torch.allclose(value, -loss.last_bound)
    # a per-voxel critic with the same shuffle: changing background voxels changes nothing
    changed_moving, changed_fixed = moving.clone(), fixed.clone()
    changed_moving[mask == 0] = 5.0
    changed_fixed[mask == 0] = -3.0
    torch.manual_seed(13)
    assert torch.allclose(loss(changed_moving, changed_fixed, mask), value, atol=1e-6)
    # without the mask the background counts
    torch.manual_seed(13)
    assert not torch.allclose(loss(changed_moving, changed_fixed), value, atol=1e-3)


# ------------------------------------------------------------------------------------ standardised critic inputs


def test_standardize_intensities_per_sample_and_within_mask():
    image = torch.stack([smooth_texture(8, seed=1), 3.0 * smooth_texture(8, seed=2) + 5.0])[:, 0]
    out = standardize_intensities(image)
    assert torch.allclose(out.flatten(1).mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(out.flatten(1).std(1, unbiased=False), torch.ones(2), atol=1e-4)
    mask = torch.zeros(2, 1, 8, 8, 8)
    mask[..., :4, :, :] = 1
    masked = standardize_intensities(image, mask)
    inside = masked[mask.expand_as(masked) > 0].reshape(2, -1)
    assert torch.allclose(inside.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(inside.std(1, unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.equal(standardize_intensities(torch.full((1, 1, 4, 4, 4), 7.0)), torch.zeros(1, 1, 4, 4, 4))


def test_standardised_mine_loss_ignores_intensity_scale_and_offset():
    torch.manual_seed(3)
    moving, fixed = smooth_texture(12, seed=4), smooth_texture(12, seed=5)
    loss = MINELoss(MINECritic())
    torch.manual_seed(6)
    value = loss(moving, fixed)
    torch.manual_seed(6)
    assert torch.allclose(loss(40.0 * moving - 9.0, 0.01 * fixed + 2.0), value, atol=1e-5)
    raw = MINELoss(loss.critic, standardize=False)
    torch.manual_seed(6)
    assert not torch.allclose(raw(40.0 * moving - 9.0, 0.01 * fixed + 2.0), value, atol=1e-3)


def test_mine_loss_mask_errors():
    loss = MINELoss(per_voxel_critic())
    image = torch.rand(2, 1, 6, 6, 6)
    mask = torch.ones(2, 1, 6, 6, 6)
    mask[0] = 0
    with pytest.raises(ValueError, match="empty"):
        loss(image, image, mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 1, 6, 6, 6\)"):
        loss(image, image, torch.ones(1, 1, 6, 6, 6))
    message = r"pred \(2, 1, 6, 6, 6\) and target \(2, 1, 6, 6, 7\) must have the same shape"
    with pytest.raises(ValueError, match=message):
        loss(image, torch.rand(2, 1, 6, 6, 7))


@pytest.mark.parametrize("ema_decay", [0.0, 1.0, -0.5, 1.5])
def test_invalid_ema_decay_raises(ema_decay):
    with pytest.raises(ValueError, match=r"ema_decay must be in \(0, 1\) or None"):
        MINELoss(per_voxel_critic(), ema_decay=ema_decay)


def test_default_critic_and_reductions():
    loss = MINELoss(reduction="none")
    assert isinstance(loss.critic, MINECritic)
    assert {n for n, _ in loss.named_parameters()} == {"critic." + n for n, _ in loss.critic.named_parameters()}
    image = torch.rand(3, 1, 6, 6, 6, generator=torch.Generator().manual_seed(14))
    torch.manual_seed(15)
    per_sample = loss(image, image**2)
    assert per_sample.shape == (3,)
    assert torch.allclose(per_sample.mean(), -loss.last_bound)
    loss_sum = MINELoss(loss.critic, reduction="sum")
    torch.manual_seed(15)
    assert torch.allclose(loss_sum(image, image**2), per_sample.sum())


def test_ema_gradient_reaches_critic_and_value_is_minus_bound():
    moving = smooth_texture(12, seed=16)
    fixed = torch.sin(4 * moving)
    critic = MINECritic(branch_channels=(4,), head_channels=(8,))
    loss = MINELoss(critic, ema_decay=0.9)
    plain = MINELoss(critic)
    assert torch.isnan(loss.ema_log_denominator)

    torch.manual_seed(17)
    value = loss(moving, fixed)
    assert torch.allclose(value, -loss.last_bound)
    assert torch.isfinite(loss.ema_log_denominator)
    value.backward()
    grads = [p.grad.clone() for p in critic.parameters()]
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)

    # on the first call the moving average equals the batch value: the gradient is the plain one
    critic.zero_grad()
    torch.manual_seed(17)
    plain_value = plain(moving, fixed)
    assert torch.allclose(plain_value, value)
    plain_value.backward()
    for g, p in zip(grads, critic.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6)


def test_ema_buffer_update_and_corrected_gradient():
    moving = smooth_texture(8, seed=18)
    critic = per_voxel_critic()
    decay = 0.9
    loss = MINELoss(critic, ema_decay=decay, standardize=False)  # the expected values below call the critic directly
    torch.manual_seed(19)
    loss(moving, moving.sqrt())
    first = loss.ema_log_denominator.clone()

    # the buffer does not move under no_grad (evaluation)
    with torch.no_grad():
        loss(moving, 20 * moving - 10)
    assert torch.equal(loss.ema_log_denominator, first)

    # second training call, on another pair so that the batch value differs from the average
    fixed = 20 * moving - 10
    torch.manual_seed(20)
    value = loss(moving, fixed)
    torch.manual_seed(20)
    marginal = critic(moving, shuffle_voxels(fixed))
    batch_log = logmeanexp(marginal).detach()
    # log-space moving average of mean(exp(T_marginal))
    expected = torch.log(decay * torch.exp(first) + (1 - decay) * torch.exp(batch_log)).squeeze()
    assert torch.allclose(loss.ema_log_denominator, expected, atol=1e-6)
    assert abs(float(batch_log.squeeze() - expected)) > 0.01  # the correction below is not trivial
    assert torch.allclose(value, -loss.last_bound)
    assert torch.allclose(value, -(critic(moving, fixed).mean() - batch_log.squeeze()), atol=1e-5)  # value unchanged

    # gradient: -(grad mean(T_joint) - grad mean(exp T_marginal) / exp(ema))
    critic.zero_grad()
    value.backward()
    grads = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    reference = -(critic(moving, fixed).mean() - torch.exp(marginal).mean() / torch.exp(loss.ema_log_denominator))
    reference.backward()
    for g, p in zip(grads, critic.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6)
    # ... which differs from the plain minibatch gradient
    critic.zero_grad()
    torch.manual_seed(20)
    MINELoss(critic)(moving, fixed).backward()
    assert any(not torch.allclose(g, p.grad, rtol=1e-3, atol=1e-6) for g, p in zip(grads, critic.parameters()))
    assert "ema_log_denominator" in loss.state_dict()


# ------------------------------------------------------------------------------------ sampled voxels (minibatch)


def test_sampled_critic_scores_equal_the_full_critic_at_the_sampled_voxels():
    torch.manual_seed(0)
    critic = MINECritic()
    moving, fixed = torch.randn(2, 1, 9, 10, 11), torch.randn(2, 1, 9, 10, 11)
    joint_index = torch.stack([torch.randperm(990)[:60] for _ in range(2)])  # distinct voxels
    marginal_index = torch.randint(990, (2, 60))
    fixed_marginal = torch.zeros_like(fixed).flatten(2)
    for b in range(2):  # the shuffled image whose values at the joint voxels are the marginal draws
        fixed_marginal[b, 0, joint_index[b]] = fixed.flatten(2)[b, 0, marginal_index[b]]
    joint_full, marginal_full = critic.joint_and_marginal(moving, fixed, fixed_marginal.view_as(fixed))
    joint, marginal = critic.joint_and_marginal_at(moving, fixed, joint_index, marginal_index)
    assert joint.shape == marginal.shape == (2, 1, 60)
    torch.testing.assert_close(joint, joint_full.flatten(2).gather(2, joint_index[:, None]))
    torch.testing.assert_close(marginal, marginal_full.flatten(2).gather(2, joint_index[:, None]))


def test_sampled_critic_refuses_normalisation_and_mismatched_indices():
    moving = torch.randn(1, 1, 4, 4, 4)
    index = torch.zeros(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="norm=None"):
        MINECritic(norm="instance").joint_and_marginal_at(moving, moving, index, index)
    with pytest.raises(ValueError, match="marginal_index"):
        MINECritic().joint_and_marginal_at(moving, moving, index, index[:, :3])


def test_sample_voxels_draws_within_the_mask():
    image = torch.zeros(2, 1, 4, 4, 4)
    mask = torch.zeros(2, 1, 4, 4, 4)
    mask[0, 0, 1, 2, 3] = 1
    mask[1, 0, :2] = 1
    index = sample_voxels(image, 100, mask, generator=torch.Generator().manual_seed(0))
    assert index.shape == (2, 100) and index.dtype == torch.int64
    assert set(index[0].tolist()) == {1 * 16 + 2 * 4 + 3}
    assert index[1].max() < 32 and len(set(index[1].tolist())) > 10
    assert sample_voxels(image, 7).shape == (2, 7)


def test_sampled_loss_estimates_gaussian_mutual_information():
    torch.manual_seed(0)
    loss = MINELoss(per_voxel_critic(), ema_decay=0.99, samples=1024)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    moving, fixed = gaussian_pair(65536)
    for _ in range(300):  # the same pair each step: the minibatch of voxels is what changes
        value = loss(moving, fixed)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        full = MINELoss(loss.critic)  # the trained critic scoring every voxel
        estimate = -float(full(*gaussian_pair(65536)))
        independent = -float(full(*gaussian_pair(65536, rho=0.0)))
    assert abs(estimate - TRUE_MI) < 0.1
    assert independent < 0.05


def test_sampled_loss_gradient_reaches_the_moving_image_and_the_critic():
    torch.manual_seed(0)
    moving = smooth_texture(16, seed=3).requires_grad_(True)
    loss = MINELoss(samples=500)
    loss(moving, smooth_texture(16, seed=4)).backward()
    assert moving.grad is not None and moving.grad.abs().sum() > 0
    assert all(parameter.grad is not None for parameter in loss.critic.parameters())


@pytest.mark.parametrize("samples", [0, -3, 2.5, True])
def test_invalid_samples_raise(samples):
    with pytest.raises(ValueError, match="samples"):
        MINELoss(samples=samples)


def test_samples_need_a_critic_that_scores_sampled_voxels():
    with pytest.raises(ValueError, match="joint_and_marginal_at"):
        MINELoss(critic=lambda moving, fixed: moving * fixed, samples=100)


# ------------------------------------------------------------------------------------------- drift penalty


class ConstantCritic(torch.nn.Module):
    """Scores every voxel with one learnable constant: the bound is 0 whatever it is, so only the penalty moves it."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.value.expand_as(moving[:, :1])


def test_drift_penalty_adds_the_squared_log_denominator():
    image = torch.rand(2, 1, 6, 6, 6, generator=torch.Generator().manual_seed(30))
    plain = MINELoss(ConstantCritic(3.0))
    penalised = MINELoss(ConstantCritic(3.0), drift_penalty=0.1)
    assert float(plain(image, image)) == pytest.approx(0.0, abs=1e-6)  # mean(c) - log mean(exp c) = 0
    assert float(penalised(image, image)) == pytest.approx(0.1 * 3.0**2, rel=1e-5)  # logmeanexp(c) = c
    assert float(penalised.last_bound) == pytest.approx(0.0, abs=1e-6)  # the logged bound is the bound alone


def optimise_constant_critic(loss: MINELoss, steps: int = 200) -> float:
    """The constant of a :class:`ConstantCritic` after ``steps`` SGD steps on ``loss`` of one fixed pair."""
    image = torch.rand(1, 1, 6, 6, 6, generator=torch.Generator().manual_seed(31))
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(image, image).backward()
        optimizer.step()
    return loss.critic.value.item()


def test_without_drift_penalty_a_constant_offset_stays():
    assert optimise_constant_critic(MINELoss(ConstantCritic(5.0))) == pytest.approx(5.0)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_drift_penalty_pulls_a_drifted_critic_back(ema_decay):
    # with the moving average the offset's gradient also has a lagging term (it settles more slowly)
    loss = MINELoss(ConstantCritic(5.0), ema_decay=ema_decay, drift_penalty=0.5)
    assert optimise_constant_critic(loss) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("penalty", [-0.1, float("nan"), float("inf")])
def test_invalid_drift_penalty_raises(penalty):
    with pytest.raises(ValueError, match=r"drift_penalty must be a finite weight >= 0, got"):
        MINELoss(per_voxel_critic(), drift_penalty=penalty)
