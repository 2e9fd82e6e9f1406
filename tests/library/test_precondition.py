"""The smoothing preconditioner: a symmetric operator P ⪰ I that amplifies smooth components."""

from __future__ import annotations

import pytest
import torch

from painterly.precondition import pyramid_preconditioner

SHAPES = [(1, 3, 32, 48), (1, 3, 37, 50), (2, 1, 21, 16), (1, 3, 9, 200)]


def _random(shape, seed):
    return torch.randn(torch.Size(shape).numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_strength_zero_is_no_preconditioner():
    assert pyramid_preconditioner((1, 3, 32, 32), 0.0) is None


def test_negative_strength_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        pyramid_preconditioner((1, 3, 32, 32), -1.0)


@pytest.mark.parametrize("shape", SHAPES)
def test_symmetric(shape):
    # L-BFGS needs a symmetric H₀: <Pu, v> = <u, Pv> (the transposed convolutions are exact adjoints,
    # odd sides included).
    p = pyramid_preconditioner(shape, 1.4)
    u, v = _random(shape, 0), _random(shape, 1)
    assert torch.dot(p(u), v).item() == pytest.approx(torch.dot(u, p(v)).item(), rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_at_least_the_identity(shape):
    # P = I + (positive semi-definite): <Pu, u> ≥ <u, u>, so H₀ = γP stays positive definite.
    p = pyramid_preconditioner(shape, 1.4)
    for seed in range(5):
        u = _random(shape, seed)
        assert torch.dot(p(u), u).item() >= torch.dot(u, u).item()


def test_amplifies_smooth_components_and_passes_fine_detail():
    shape = (1, 1, 128, 128)
    p = pyramid_preconditioner(shape, 1.4, levels=4)
    inner = (slice(None), slice(None), slice(48, 80), slice(48, 80))  # away from the zero-padded edges
    constant = torch.ones(shape, dtype=torch.float64)
    amplified = p(constant.reshape(-1)).reshape(shape)
    assert torch.allclose(amplified[inner], torch.full_like(amplified[inner], 1 + 1.4 + 1.4**2 + 1.4**3 + 1.4**4))
    # The finest checkerboard is what the [1, 3, 3, 1] tent removes entirely: it passes unchanged.
    i, j = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checker = ((-1.0) ** (i + j)).to(torch.float64).reshape(shape)
    out = p(checker.reshape(-1)).reshape(shape)
    assert torch.allclose(out[inner], checker[inner])


def test_keeps_dtype_device_and_shape_and_does_not_modify_its_input():
    shape = (1, 3, 24, 40)
    p = pyramid_preconditioner(shape, 1.0)
    v = torch.randn(torch.Size(shape).numel())
    before = v.clone()
    out = p(v)
    assert out.dtype == torch.float32 and out.shape == v.shape and out.device == v.device
    assert torch.equal(v, before)


def test_images_too_small_to_halve_get_the_identity():
    shape = (1, 3, 3, 3)
    v = _random(shape, 0)
    assert torch.equal(pyramid_preconditioner(shape, 1.4)(v), v)
