"""Instance optimisation on the DDF: it recovers a known smooth deformation far better than the identity, improves
a rough start, keeps its inputs, folds nothing in the diffeomorphic mode, trains a critic along, and works inside an
evaluator's inference mode (in ``register_volumes``: tests/apps/registration/test_registration_register.py)."""

from __future__ import annotations

import math

import pytest
import torch

from monai_mine.flows import jacobian_determinant, warp
from monai_mine.losses import MINELoss
from monai_mine.networks import MINECritic
from monai_mine.optimization import FeatureSimilarity, InstanceOptimizer
from monai_mine.optimization.instance import InstanceOptimizationInferer, similarity_loss
from tests.helpers import smooth_texture

SIZE = 32


def textured_image(seed: int = 0) -> torch.Tensor:
    """A smooth random texture in [0, 1], (1, 1, SIZE, SIZE, SIZE): structure at every place for the similarity."""
    return smooth_texture(SIZE, seed, coarse=SIZE // 4, align_corners=False)


def smooth_displacement(size: int = SIZE, amplitude: float = 2.0) -> torch.Tensor:
    """A smooth DDF (1, 3, size, size, size) in voxels: one sine period per axis, ``amplitude`` voxels."""
    axes = torch.meshgrid(*[torch.arange(size, dtype=torch.float32) * 2 * math.pi / size] * 3, indexing="ij")
    components = [torch.sin(axes[1]), torch.sin(axes[2] + 1.0), torch.sin(axes[0] + 2.0)]
    return amplitude * torch.stack(components)[None]


def known_pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(moving, fixed, answer)`` with ``fixed = warp(moving, answer)`` exactly."""
    moving = textured_image()
    answer = smooth_displacement()
    return moving, warp(moving, answer), answer


def mean_error(ddf: torch.Tensor, answer: torch.Tensor, margin: int = 4) -> float:
    """Mean end-point error away from the borders (where border padding leaves the answer undetermined)."""
    inner = (slice(None), slice(None), *[slice(margin, -margin)] * 3)
    return float((ddf - answer)[inner].norm(dim=1).mean())


def test_recovers_a_known_smooth_deformation_far_better_than_the_identity():
    moving, fixed, answer = known_pair()
    ddf, report = InstanceOptimizer(steps=60, levels=(16, 32), learning_rate=0.5, smoothness=0.5)(moving, fixed)
    identity_error = mean_error(torch.zeros_like(answer), answer)
    assert identity_error > 2.0
    assert mean_error(ddf, answer) < 0.25 * identity_error
    assert (
        report.steps == 120 and report.levels == ((16, 16, 16), (32, 32, 32)) and report.loss_after < report.loss_before
    )
    assert ddf.shape == answer.shape and ddf.dtype == torch.float32 and not ddf.requires_grad


def test_a_rough_start_is_improved():
    moving, fixed, answer = known_pair()
    start = answer + 0.8 * torch.sin(torch.arange(SIZE, dtype=torch.float32) / 3.0).view(1, 1, 1, 1, SIZE)
    ddf, _ = InstanceOptimizer(steps=40, levels=(16, 32), learning_rate=0.3, smoothness=0.5)(moving, fixed, start)
    assert mean_error(ddf, answer) < 0.6 * mean_error(start, answer)


def test_inputs_are_never_modified():
    moving, fixed, answer = known_pair()
    start = 0.5 * answer
    copies = [tensor.clone() for tensor in (moving, fixed, start)]
    ddf, _ = InstanceOptimizer(steps=5, levels=(16, 32))(moving, fixed, start)
    for original, copy in zip((moving, fixed, start), copies):
        assert torch.equal(original, copy)
    assert ddf.data_ptr() not in {moving.data_ptr(), fixed.data_ptr(), start.data_ptr()}


def test_diffeomorphic_mode_does_not_fold_where_the_additive_one_does():
    moving, fixed, _ = known_pair()
    wild = {"steps": 40, "levels": (16, 32), "learning_rate": 1.0, "smoothness": 0.05, "field_factor": 1}
    additive, _ = InstanceOptimizer(**wild)(moving, fixed)
    diffeomorphic, _ = InstanceOptimizer(**wild, diffeomorphic=True)(moving, fixed)
    assert float((jacobian_determinant(additive) <= 0).float().mean()) > 0.01  # the test can fail
    # folding-free up to the discretisation of scaling and squaring and of the Jacobian: at most 1 voxel in 10^4
    assert float((jacobian_determinant(diffeomorphic) <= 0).float().mean()) <= 1e-4


def test_zero_steps_return_the_start_unchanged():
    moving, fixed, answer = known_pair()
    ddf, report = InstanceOptimizer(steps=0)(moving, fixed, answer)
    assert torch.equal(ddf, answer) and report.steps == 0
    ddf, report = InstanceOptimizer(steps=(0, 3), levels=(8, 16))(moving, fixed, torch.zeros_like(answer))
    assert report.steps == 3 and report.levels == ((16, 16, 16),) and ddf.abs().max() > 0.1


def objective(moving, fixed, ddf, smoothness=1.0) -> float:
    """The additive mode's objective on the images' own grid: local correlation + smoothness x diffusion."""
    from monai_mine.losses import TotalVariationLoss

    loss = similarity_loss("local_correlation")(warp(moving, ddf), fixed) + smoothness * TotalVariationLoss()(ddf)
    return float(loss)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_identical_tiny_pair_is_never_made_worse(seed):
    # issue 28: five Adam steps on a 4^3 identical pair raised the loss and folded 6.25 % of the voxels (Adam's
    # first step moves every unknown by the learning rate, 1 voxel here, whatever the gradient's size)
    image = torch.rand(1, 1, 4, 4, 4, generator=torch.Generator().manual_seed(seed))
    start = torch.zeros(1, 3, 4, 4, 4)
    ddf, report = InstanceOptimizer(steps=5)(image, image.clone(), start)
    assert objective(image, image, ddf) <= objective(image, image, start)
    assert report.loss_after <= report.loss_before
    assert float((jacobian_determinant(ddf) <= 0).float().mean()) == 0.0


def test_a_good_start_is_not_made_worse_by_an_overshooting_first_step():
    moving, fixed, answer = known_pair()
    start = 0.9 * answer
    for steps in (1, 2, 3, 10):
        ddf, report = InstanceOptimizer(steps=steps, levels=(32,), learning_rate=2.0)(moving, fixed, start)
        assert objective(moving, fixed, ddf) <= objective(moving, fixed, start) + 1e-6, steps
        assert report.loss_after <= report.loss_before
    # the step is taken half back rather than given up: ten steps improve on the start
    assert objective(moving, fixed, ddf) < objective(moving, fixed, start) - 1e-4


def test_levels_that_each_keep_their_best_are_judged_together_against_the_start():
    # a coarse level's gain may be the finest level's loss: the finest level decides, the start is kept if better
    moving, fixed, answer = known_pair()
    for levels, steps in (((8, 16, 32), (20, 5, 0)), ((8, 32), (30, 1))):
        ddf, report = InstanceOptimizer(steps=steps, levels=levels)(moving, fixed, answer)
        assert report.loss_after <= report.loss_before
        finest = report.levels[-1]
        down = [torch.nn.functional.interpolate(image, size=finest, mode="area") for image in (moving, fixed)]
        from monai_mine.flows import resize_ddf

        assert objective(*down, resize_ddf(ddf, finest)) <= objective(*down, resize_ddf(answer, finest)) + 1e-6


def test_a_batch_is_refined_pair_by_pair():
    moving, fixed, _ = known_pair()
    other = textured_image(seed=1)
    optimizer = InstanceOptimizer(steps=5, levels=(16,))
    batch, _ = optimizer(torch.cat([moving, other]), torch.cat([fixed, other]))
    alone, _ = optimizer(moving, fixed)
    torch.testing.assert_close(batch[:1], alone, atol=1e-4, rtol=0)
    assert batch[1].abs().max() < batch[0].abs().max()  # the identical pair barely moves


def test_a_mine_critic_trains_along_with_its_own_learning_rate():
    torch.manual_seed(0)
    moving, fixed, _ = known_pair()
    mine = MINELoss(MINECritic(branch_channels=(4,), head_channels=(8,)))
    before = {name: value.clone() for name, value in mine.state_dict().items()}
    ddf, report = InstanceOptimizer(steps=3, levels=(16,), similarity=mine, similarity_learning_rate=1e-3)(
        moving, 1.0 - fixed
    )
    assert math.isfinite(report.loss_after) and ddf.shape == (1, 3, SIZE, SIZE, SIZE)
    assert any(not torch.equal(value, before[name]) for name, value in mine.state_dict().items())


def test_mind_registers_across_an_inverted_contrast_by_warping_descriptors():
    moving, fixed, answer = known_pair()
    optimizer = InstanceOptimizer(steps=60, levels=(16, 32), similarity="mind", learning_rate=0.5, smoothness=0.5)
    assert isinstance(optimizer.similarity, FeatureSimilarity)
    ddf, report = optimizer(1.0 - moving, fixed)
    assert mean_error(ddf, answer) < 0.4 * mean_error(torch.zeros_like(answer), answer)
    # the objective is of the warped descriptors: the finest level's, recomputed from the returned DDF
    mind = optimizer.similarity
    features = mind.features(1.0 - moving)
    expected = mind.compare(warp(features, ddf), mind.features(fixed)) + optimizer.smoothness * optimizer.diffusion(ddf)
    assert report.loss_after == pytest.approx(float(expected), rel=1e-4)


def test_inferer_refines_inside_inference_mode_and_autocast():
    moving, fixed, answer = known_pair()
    inferer = InstanceOptimizationInferer(InstanceOptimizer(steps=20, levels=(16, 32), learning_rate=0.5))
    network = torch.nn.Identity()

    def zero_network(image: torch.Tensor) -> torch.Tensor:
        return torch.zeros(image.shape[0], 3, *image.shape[2:])

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ddf = inferer(torch.cat([moving, fixed], dim=1), zero_network)
    assert ddf.dtype == torch.float32 and mean_error(ddf, answer) < 0.5 * mean_error(torch.zeros_like(ddf), answer)
    assert inferer.last is not None and inferer.last.steps == 40
    plain = InstanceOptimizationInferer(InstanceOptimizer(steps=0))
    assert torch.equal(plain(torch.zeros(1, 3, 4, 4, 4), network), torch.zeros(1, 3, 4, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_images_device():
    moving, fixed, answer = (tensor.cuda() for tensor in known_pair())
    ddf, _ = InstanceOptimizer(steps=30, levels=(16, 32), learning_rate=0.5)(moving, fixed)
    assert ddf.device.type == "cuda"
    assert mean_error(ddf, answer) < 0.5 * mean_error(torch.zeros_like(answer), answer)


def test_bad_input_and_settings_are_refused_with_the_reason():
    moving, fixed, answer = known_pair()
    with pytest.raises(ValueError, match=r"moving and fixed must be \(B, C, X, Y, Z\) of one shape"):
        InstanceOptimizer()(moving, fixed[..., :-1])
    with pytest.raises(ValueError, match=r"ddf \(1, 3, 32, 32, 31\) must be \(B, 3, X, Y, Z\) over the images"):
        InstanceOptimizer()(moving, fixed, answer[..., :-1])
    with pytest.raises(ValueError, match=r"levels must be grid sizes >= 2 voxels"):
        InstanceOptimizer(levels=(16, 1))
    with pytest.raises(ValueError, match=r"steps must be >= 0, one count or one per level \(32, 64\), got \[1, 2, 3\]"):
        InstanceOptimizer(steps=[1, 2, 3])
    with pytest.raises(ValueError, match="smoothness must be >= 0 and the learning rates > 0"):
        InstanceOptimizer(smoothness=-1.0)
    with pytest.raises(ValueError, match="unknown similarity 'ssd'"):
        similarity_loss("ssd")
    broken = moving.clone()
    broken[0, 0, 5, 5, 5] = float("nan")
    with pytest.raises(FloatingPointError, match="instance optimisation objective is nan at step 0"):
        InstanceOptimizer(steps=2, levels=(32,))(broken, fixed)
