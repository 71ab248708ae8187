"""OrthogonalityLoss and DeterminantLoss against their singular-value / determinant definitions."""

from __future__ import annotations

import pytest
import torch

from monai_mine.losses import DeterminantLoss, OrthogonalityLoss

EYE = torch.eye(3, dtype=torch.float64)


def random_rotations(batch: int, seed: int) -> torch.Tensor:
    """Random rotations (orthogonal, det +1) from the QR decomposition of Gaussian matrices, float64."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(batch, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # unique QR: positive diagonal of R
    q[:, :, 0] *= torch.sign(torch.linalg.det(q)).unsqueeze(1)  # fix det to +1
    return q


def random_matrices(batch: int, seed: int, scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return EYE + scale * torch.randn(batch, 3, 3, generator=g, dtype=torch.float64)


def singular_value_reference(a: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    s2 = torch.linalg.svdvals(a).square() + eps
    return s2.sum(-1) + (1 + eps) ** 2 * (1 / s2).sum(-1) - 6 * (1 + eps)


def test_rotations_are_orthogonal_helper():
    r = random_rotations(8, seed=0)
    assert torch.allclose(r.transpose(1, 2) @ r, EYE.expand(8, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(8, dtype=torch.float64), atol=1e-12)


def test_orthogonality_is_zero_for_rotations():
    r = random_rotations(8, seed=0)
    loss = OrthogonalityLoss(reduction="none")(r - EYE)
    assert loss.shape == (8,)
    assert loss.abs().max() < 1e-4
    assert abs(float(OrthogonalityLoss()(torch.zeros(2, 3, 3)))) < 1e-4  # identity
    # residual=False takes A itself
    assert OrthogonalityLoss(residual=False, reduction="none")(r).abs().max() < 1e-4


def test_orthogonality_is_zero_for_reflections_too():
    r = random_rotations(4, seed=1)
    r[:, :, 2] *= -1  # det -1: still orthogonal, only DeterminantLoss sees it
    assert OrthogonalityLoss(residual=False, reduction="none")(r).abs().max() < 1e-4
    assert torch.allclose(DeterminantLoss(residual=False, reduction="none")(r), torch.full((4,), 4.0), atol=1e-4)


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_orthogonality_matches_singular_values(eps):
    a = random_matrices(16, seed=2)
    expected = singular_value_reference(a, eps)
    assert (expected > 0.01).all()  # not trivially zero
    residual = OrthogonalityLoss(eps=eps, reduction="none")(a - EYE)
    direct = OrthogonalityLoss(residual=False, eps=eps, reduction="none")(a)
    assert torch.allclose(residual.double(), expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(direct.double(), expected, rtol=1e-4, atol=1e-5)


def test_orthogonality_of_scaling():
    # A = s I: sum_i (s^2 + s^-2) - 6 = 3 (s - 1/s)^2
    s = 1.2
    loss = OrthogonalityLoss(residual=False, eps=0.0)(s * torch.eye(3).unsqueeze(0))
    assert abs(float(loss) - 3 * (s - 1 / s) ** 2) < 1e-4


def test_orthogonality_reductions_and_gradient():
    w = (random_matrices(4, seed=3) - EYE).float().requires_grad_()
    per_sample = OrthogonalityLoss(reduction="none")(w)
    assert torch.allclose(OrthogonalityLoss(reduction="sum")(w), per_sample.sum())
    assert torch.allclose(OrthogonalityLoss()(w), per_sample.mean())
    OrthogonalityLoss()(w).backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_determinant_loss_matches_linalg():
    w = random_matrices(16, seed=4) - EYE
    expected = (torch.linalg.det(EYE + w) - 1).square()
    assert torch.allclose(DeterminantLoss(reduction="none")(w).double(), expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(
        DeterminantLoss(residual=False, reduction="none")(EYE + w).double(), expected, rtol=1e-4, atol=1e-6
    )
    assert torch.allclose(DeterminantLoss(reduction="sum")(w).double(), expected.sum(), rtol=1e-4)
    assert torch.allclose(DeterminantLoss()(w).double(), expected.mean(), rtol=1e-4)


def test_determinant_loss_is_zero_for_rotations():
    r = random_rotations(8, seed=5)
    assert DeterminantLoss(reduction="none")(r - EYE).abs().max() < 1e-6


@pytest.mark.parametrize("loss", [OrthogonalityLoss(), DeterminantLoss(), OrthogonalityLoss(residual=False)])
def test_matrix_shape_errors(loss):
    with pytest.raises(ValueError, match=r"matrix must have shape \(B, 3, 3\), got \(3, 3\)"):
        loss(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"matrix must have shape \(B, 3, 3\), got \(2, 4, 4\)"):
        loss(torch.zeros(2, 4, 4))
