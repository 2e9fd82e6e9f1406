"""The frame of a result is treated like its inside: every pixel reaches every layer a loss reads.

Found by looking at real results (docs/quality.md): the demo (451x300) came out with its last three
columns about three times smoother than the rest (they stayed near the photo), and a texture from noise at
120x75 px kept more of its starting noise in its bottom 11 rows than inside. The 2×2 pools dropped the last row/column of an odd-sized map, so the strip of an
image whose side is no multiple of 16 never reached relu5_1 (nor, for the wider ones, relu4_1 ...) and got
no style from those layers. The last cell is now kept (layers.feature_side), and whole: the network sees
the image continued past its bottom and right edges to a multiple of 16 (layers.edge_padding).
"""

from __future__ import annotations

import pytest
import torch

from painterly.encoder import VGG19Encoder, random_state
from painterly.engine.objective import GramStyleTerm
from painterly.layers import VGG19_LAYERS, feature_side, layer
from painterly.losses import gram_matrix, total_variation
from painterly.masks import layer_guides

SIZES = [(45, 61), (75, 120), (17, 33), (16, 32), (31, 31)]


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("hw", SIZES)
def test_feature_side_is_the_encoders_own_size(pooling: str, hw: tuple[int, int]) -> None:
    names = [n.name for n in VGG19_LAYERS if n.kind != "conv"]
    enc = VGG19Encoder(random_state(), "caffe", names, pooling)
    out = enc(torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0)))
    for name in names:
        stride = layer(name).stride
        assert out[name].shape[-2:] == (feature_side(hw[0], stride), feature_side(hw[1], stride)), name


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_every_row_and_column_gets_style_from_the_deepest_layer(pooling: str) -> None:
    # The Gram loss of relu5_1 alone, on an image whose sides are no multiple of 16 (75 = 4·16 + 11,
    # 61 = 3·16 + 13). With floor pooling the strip beyond the last whole 16 px cell reached relu5_1
    # only through the receptive fields of positions inside it: its weakest row got 0.11–0.19 of an
    # average row's gradient, its weakest column 0.23–0.29 (max/avg pooling); now 0.46–0.65.
    hw = (75, 61)
    enc = VGG19Encoder(random_state(), "caffe", ("relu5_1",), pooling).double()
    gen = torch.Generator().manual_seed(3)
    style = torch.rand(1, 3, 64, 64, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        target = gram_matrix(enc(style)["relu5_1"])
    term = GramStyleTerm({"relu5_1": target}, {"relu5_1": 1.0}, 1.0)
    x = torch.rand(1, 3, *hw, generator=gen, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(term(x, enc(x)), x)
    per_row = grad.abs().sum(dim=(0, 1, 3))
    per_col = grad.abs().sum(dim=(0, 1, 2))
    assert float(per_row[64:].min() / per_row[:64].mean()) > 0.4
    assert float(per_col[48:].min() / per_col[:48].mean()) > 0.4


def test_a_mask_reaches_the_layers_at_the_encoders_size() -> None:
    # The region guides follow the encoder: continued past the edge by reflection, then pooled.
    guide = torch.zeros(1, 1, 45, 61, dtype=torch.float64)
    guide[..., :, 60:] = 1.0  # only the last column is in the region
    out = layer_guides(guide, ("relu5_1", "relu3_1"), "avg")
    assert out["relu5_1"].shape[-2:] == (feature_side(45, 16), feature_side(61, 16))
    # The last cell of relu3_1 (stride 4) holds column 60 and, reflected, 59, 58 and 57 (the image the
    # network sees there): a quarter of it is in the region.
    assert out["relu3_1"][..., :, -1].min().item() == pytest.approx(0.25)
    assert out["relu3_1"][..., :, -1].max().item() == pytest.approx(0.25)
    assert out["relu3_1"][..., :, :-1].max().item() == 0.0


# --- the smoothness term -----------------------------------------------------------------------------
# Seen in a texture from noise (starry_night, 256x160, a multiple of 16): its last column had 1.5× the
# detail of the inside, single-pixel colour speckle. The (H−1)×(W−1) grid of the former form never
# compared the last column's pixels with each other (nor the last row's), nor the corner with anything.


def test_smoothness_is_the_same_seen_from_every_side() -> None:
    x = torch.rand(2, 3, 9, 13, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tv = total_variation(x).item()
    for seen in (x.flip(-1), x.flip(-2), x.flip(-1, -2)):
        assert total_variation(seen).item() == pytest.approx(tv, rel=1e-12)
    # Turned a quarter: the two directions swap their roles (a square image: the same value).
    square = x[..., :9, :9]
    assert total_variation(square.transpose(-1, -2)).item() == pytest.approx(total_variation(square).item(), rel=1e-12)


@pytest.mark.parametrize("corner", [(0, 0), (0, -1), (-1, 0), (-1, -1)])
def test_a_speck_in_any_corner_is_smoothed_alike(corner: tuple[int, int]) -> None:
    x = torch.zeros(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    speck = torch.zeros_like(x)
    speck[(0, 0, *corner)] = 1.0
    (grad,) = torch.autograd.grad(total_variation(x + speck), x)
    # Two neighbours each: 1/(6·6) for the horizontal pair, 1/(5·7) for the vertical one.
    assert total_variation(speck).item() == pytest.approx(1 / 36 + 1 / 35)
    assert grad[(0, 0, *corner)].item() == pytest.approx(2 / 36 + 2 / 35)
