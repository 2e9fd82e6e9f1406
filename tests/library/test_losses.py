"""The loss terms (painterly.losses): analytic values, invariants and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from painterly.losses import content_loss, cosine_content_loss, gram_matrix, style_loss, total_variation
from painterly.losses.gram import _low_precision_gram


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- total variation --------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [2.0, 2.5])
def test_tv_of_constant_image_is_zero(exponent):
    assert total_variation(torch.full((1, 3, 7, 5), 0.3), exponent).item() == 0.0


def test_tv_of_2x2_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # Horizontal pairs: 1 - 0, 4 - 2 -> mean of 1, 4 = 2.5; vertical pairs: 2 - 0, 4 - 1 -> mean of 4, 9 = 6.5.
    assert total_variation(x).item() == pytest.approx(9.0)
    # Per pixel (a difference across the frame is 0): (0,0) 1 + 4, (0,1) 0 + 9, (1,0) 4 + 0, (1,1) 0.
    assert total_variation(x, 2.5).item() == pytest.approx((5.0**1.25 + 9.0**1.25 + 4.0**1.25) / 4)


def test_tv_of_3x3_by_hand():
    x = torch.tensor([[[[0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [2.0, 0.0, 5.0]]]])
    # dx = x[i, j+1] - x[i, j] over 3×2 pairs, dy = x[i+1, j] - x[i, j] over 2×3 pairs.
    dx2 = [1, 4, 0, 0, 4, 25]
    dy2 = [1, 1, 0, 1, 4, 16]
    assert total_variation(x).item() == pytest.approx(sum(dx2) / 6 + sum(dy2) / 6)
    # Per pixel, row by row: dx² + dy² with 0 across the frame.
    squares = [1 + 1, 4 + 0, 0 + 4, 0 + 1, 0 + 1, 0 + 16, 4 + 0, 25 + 0, 0]
    assert total_variation(x, 2.5).item() == pytest.approx(sum(s**1.25 for s in squares) / 9)


def test_tv_is_a_mean_over_channels_and_batch():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    stacked = torch.cat([x, x * 0, x * 2], dim=1)  # channel TVs 9, 0, 36
    assert total_variation(stacked).item() == pytest.approx((9 + 0 + 36) / 3)
    assert total_variation(torch.cat([x, x], dim=0)).item() == pytest.approx(9.0)


def test_tv_does_not_depend_on_image_size_for_the_same_pattern():
    # A mean, not a sum: a ramp of the same slope has the same TV at any size.
    def ramp(n):
        return torch.arange(n, dtype=torch.float32).view(1, 1, 1, n).expand(1, 1, n, n) * 0.01

    assert total_variation(ramp(8)).item() == pytest.approx(total_variation(ramp(32)).item())


def test_tv_exponent_2_5_punishes_large_steps_more():
    small = torch.tensor([[[[0.0, 0.1], [0.1, 0.1]]]])
    big = torch.tensor([[[[0.0, 2.0], [2.0, 2.0]]]])
    # The same pattern with steps 20× larger: ×20² in the squared form, ×20^2.5 in the Keras form.
    assert (total_variation(big) / total_variation(small)).item() == pytest.approx(400.0)
    assert (total_variation(big, 2.5) / total_variation(small, 2.5)).item() == pytest.approx(20.0**2.5, rel=1e-5)


# --- Gram matrices ------------------------------------------------------------------------------------


def test_gram_of_known_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]]; divided by C*H*W = 4.
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.allclose(gram_matrix(f), expected)
    # The same values laid out as H=2, W=1 give the same Gram.
    assert torch.allclose(gram_matrix(f.view(1, 2, 2, 1)), expected)


def test_gram_matches_definition_on_random_features():
    f = _rand(2, 5, 4, 3)
    flat = f.reshape(2, 5, 12)
    expected = flat @ flat.transpose(1, 2) / (5 * 4 * 3)
    assert gram_matrix(f).shape == (2, 5, 5)
    assert torch.allclose(gram_matrix(f), expected, atol=1e-6)


def test_gram_is_symmetric_positive_semidefinite():
    g = gram_matrix(_rand(1, 16, 6, 7, seed=1).double())[0]
    assert torch.allclose(g, g.T)
    assert torch.linalg.eigvalsh(g).min().item() > -1e-12
    # More channels than positions: rank deficient, still PSD.
    g2 = gram_matrix(_rand(1, 16, 2, 2, seed=2).double())[0]
    eig = torch.linalg.eigvalsh(g2)
    assert eig.min().item() > -1e-12
    assert (eig > 1e-9).sum().item() <= 4


def test_gram_of_channels_last_equals_nchw():
    f = _rand(2, 8, 5, 6, seed=3)
    cl = f.contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()  # really the other layout
    assert torch.allclose(gram_matrix(cl), gram_matrix(f), atol=1e-6)


def test_gram_accumulates_low_precision_in_fp32():
    f = _rand(1, 4, 8, 8, seed=4)
    g = gram_matrix(f.bfloat16())
    assert g.dtype == torch.float32
    assert torch.allclose(g, gram_matrix(f), rtol=2e-2, atol=2e-2)
    assert gram_matrix(f.double()).dtype == torch.float64


@pytest.mark.parametrize("channels_last", [True, False])
def test_bf16_gram_over_many_positions_is_close_to_exact(channels_last):
    # 128x128 positions: many partial products, each rounded to bf16 once and summed in fp32.
    f = (_rand(1, 16, 128, 128, seed=5).relu() * 50).bfloat16()
    if channels_last:
        f = f.contiguous(memory_format=torch.channels_last)
    exact = gram_matrix(f.double())  # of the same bf16 values
    g = gram_matrix(f)
    assert g.dtype == torch.float32
    rel = ((g.double() - exact).abs() / exact.abs().max()).max().item()
    # One bf16 rounding of the whole sum can be off by 2⁻⁸ ≈ 4e-3 of an entry; 8 partials summed in
    # fp32 stay well inside that.
    assert rel < 2e-3, rel


@pytest.mark.parametrize("positions_first", [True, False])
def test_both_low_precision_gram_paths_agree(positions_first):
    # The CPU path (bf16 partial products) and the one other devices take (fp32 products of upcast
    # slices), run side by side on the CPU.
    f = (_rand(1, 16, 128, 128, seed=6).relu() * 50).bfloat16().flatten(2)
    flat = f.transpose(1, 2) if positions_first else f
    exact = (f.double() @ f.double().transpose(1, 2)).float()
    cpu = _low_precision_gram(flat, positions_first, upcast=False)
    other = _low_precision_gram(flat, positions_first, upcast=True)
    assert cpu.dtype == other.dtype == torch.float32
    assert torch.allclose(other, exact, rtol=1e-5)
    assert ((cpu - exact).abs().max() / exact.abs().max()).item() < 2e-3


# --- style loss ------------------------------------------------------------------------------------------


def test_style_loss_zero_iff_equal():
    g = gram_matrix(_rand(1, 6, 5, 5, seed=5))
    assert style_loss(g, g.clone()).item() == 0.0
    other = g.clone()
    other[0, 1, 2] += 1e-3
    assert style_loss(g, other).item() > 0.0


def test_style_loss_is_mean_squared_difference_and_broadcasts_a_2d_target():
    g = gram_matrix(_rand(1, 3, 4, 4, seed=6))
    t = gram_matrix(_rand(1, 3, 4, 4, seed=7))
    assert style_loss(g, t).item() == pytest.approx(((g - t) ** 2).mean().item())
    assert style_loss(g, t[0]).item() == pytest.approx(style_loss(g, t).item())


# --- content losses -----------------------------------------------------------------------------------------


def test_content_loss_is_mse():
    a, b = _rand(1, 4, 5, 6, seed=8), _rand(1, 4, 5, 6, seed=9)
    assert content_loss(a, b).item() == pytest.approx(F.mse_loss(a, b).item())
    assert content_loss(a, a).item() == 0.0


def test_content_loss_in_fp32_for_bf16_features():
    a, b = _rand(1, 4, 5, 6, seed=8), _rand(1, 4, 5, 6, seed=9)
    assert content_loss(a.bfloat16(), b).dtype == torch.float32


@pytest.mark.parametrize("scale", [1.0, 2.0, 1e-3, 1e3])
def test_cosine_loss_is_zero_for_positively_scaled_features(scale):
    p = _rand(1, 8, 5, 5, seed=10)
    assert cosine_content_loss(p * scale, p).item() == pytest.approx(0.0, abs=1e-6 * p.pow(2).mean().item())


def test_cosine_loss_positive_otherwise_and_bounded():
    p = _rand(1, 8, 5, 5, seed=11)
    q = _rand(1, 8, 5, 5, seed=12)
    scale = p.pow(2).mean().item()
    value = cosine_content_loss(q, p).item()
    assert 0.0 < value < 2 * scale
    # Opposite vectors: cos = -1 everywhere, the maximum 2 * mean(P^2).
    assert cosine_content_loss(-p, p).item() == pytest.approx(2 * scale, rel=1e-5)


def test_cosine_loss_by_hand():
    # Two positions, C=2: position 0 orthogonal (cos 0), position 1 identical (cos 1).
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)  # channel-major: P_0 = (1, 0), P_1 = (0, 2)
    f = torch.tensor([[0.0, 0.0], [3.0, 5.0]]).view(1, 2, 1, 2)  # F_0 = (0, 3), F_1 = (0, 5)
    mean_p2 = (1 + 0 + 0 + 4) / 4
    assert cosine_content_loss(f, p).item() == pytest.approx(((1 - 0) + (1 - 1)) / 2 * mean_p2)


def test_cosine_loss_ignores_contrast_where_mse_does_not():
    p = _rand(1, 8, 4, 4, seed=13).relu()
    assert content_loss(p * 3, p).item() > 0.1
    assert cosine_content_loss(p * 3, p).item() < 1e-6


# --- gradients -------------------------------------------------------------------------------------------------


def test_gradcheck_gram_style_loss():
    f = _rand(1, 3, 4, 5, seed=20, dtype=torch.float64).requires_grad_(True)
    target = gram_matrix(_rand(1, 3, 4, 5, seed=21, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: style_loss(gram_matrix(x), target), (f,))


def test_gradcheck_gram_channels_last():
    f = _rand(1, 3, 4, 5, seed=22, dtype=torch.float64).requires_grad_(True)
    target = gram_matrix(_rand(1, 3, 4, 5, seed=23, dtype=torch.float64))
    fn = lambda x: style_loss(gram_matrix(x.contiguous(memory_format=torch.channels_last)), target)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (f,))


def test_gradcheck_content_loss():
    f = _rand(1, 3, 4, 4, seed=24, dtype=torch.float64).requires_grad_(True)
    t = _rand(1, 3, 4, 4, seed=25, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: content_loss(x, t), (f,))


def test_gradcheck_cosine_content_loss():
    f = _rand(1, 3, 4, 4, seed=26, dtype=torch.float64).requires_grad_(True)
    t = _rand(1, 3, 4, 4, seed=27, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: cosine_content_loss(x, t), (f,))


@pytest.mark.parametrize("exponent", [2.0, 2.5])
def test_gradcheck_total_variation(exponent):
    x = _rand(1, 3, 5, 6, seed=28, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda im: total_variation(im, exponent), (x,))


def test_tv_gradient_is_finite_on_a_flat_image_with_exponent_below_4():
    x = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(total_variation(x, 2.5), x)
    assert torch.isfinite(g).all()
    assert g.abs().max().item() == 0.0


def test_losses_return_scalars():
    f = _rand(1, 4, 3, 3)
    for value in (
        style_loss(gram_matrix(f), gram_matrix(f)),
        content_loss(f, f),
        cosine_content_loss(f, f),
        total_variation(f),
        total_variation(f, 2.5),
    ):
        assert value.ndim == 0 and math.isfinite(value.item())
