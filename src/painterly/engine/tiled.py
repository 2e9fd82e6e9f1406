"""The objective evaluated tile by tile: exact by construction, with memory bounded by the tile.

Every standard term is a function of sums over positions (a layer's Gram is Σ_p F_p F_pᵀ, the
content loss Σ (F − P)², the smoothness Σ (dx² + dy²), the Laplacian loss Σ (D(pool(x)) − D(pool(c)))²), so an image's loss and gradient can be
computed from tiles without approximating anything:

1. pass 1, no gradients: the encoder runs over each tile plus a halo as wide as the receptive field
   of the deepest layer read, and each term adds up its statistics over the tile's *own* positions
   (:meth:`~painterly.engine.objective.AdditiveTerm.partials`); the loss and dLoss/dStatistics are
   formed once from the sums (autograd on the small statistics);
2. pass 2: per tile, forward with gradients and backward from the tile's share,
   ``Σ_s ⟨dLoss/ds, s_tile⟩``; the crop's gradient (halo pixels included) is added into the image's.

Why it is exact: a feature at stride ``S`` depends on input pixels within ``r`` of its own cell, where
``r`` is the sum of the strides of the convolutions before it (a 2×2 pool adds nothing beyond its
cell). Tile origins are multiples of the deepest layer's stride, so a crop's 2×2 pools see the same
pairs as the whole image's, and the halo (``r`` rounded up to that stride) keeps a crop's own
positions out of reach of the crop's zero padding; where a crop meets the image border, its zero
padding is the image's. A term on the pixels that reads beyond a pixel (the smoothness term its
neighbours, the Laplacian term its pooled cells) says what it needs as ``tile_reach``, and the origins
and halo are widened to it (:func:`pixel_reach`). Results equal the untiled ones up to floating-point round-off.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ..encoder import VGG19Encoder
from ..errors import ConfigError, PainterlyWarning
from ..layers import EDGE_MULTIPLE, VGG19_LAYERS, deepest, feature_side
from ..losses import gram_sum
from .objective import Objective
from .pyramid import HW


@dataclass(frozen=True)
class Window:
    """One tile of an image of size ``hw``: ``crop`` ``(y0, y1, x0, x1)`` is what the encoder sees
    (tile plus halo, clipped to the image), ``own_pixels`` the tile itself (the tiles partition the image)."""

    crop: tuple[int, int, int, int]
    own_pixels: tuple[int, int, int, int]
    hw: HW

    def own(self, t: Tensor, stride: int) -> Tensor:
        """The tile's own positions of ``t``, the crop's features at ``stride`` ``(N, C, h, w)``."""
        (y0, y1, x0, x1), (cy, _, cx, _) = self.own_pixels, self.crop
        ys, xs = feature_side(y1, stride) - cy // stride, feature_side(x1, stride) - cx // stride
        return t[..., (y0 - cy) // stride : ys, (x0 - cx) // stride : xs]

    def slots(self, stride: int) -> tuple[slice, slice]:
        """Where the tile's own positions lie in a map of the whole image at ``stride``."""
        y0, y1, x0, x1 = self.own_pixels
        return slice(y0 // stride, feature_side(y1, stride)), slice(x0 // stride, feature_side(x1, stride))

    def whole(self, t: Tensor, stride: int) -> Tensor:
        """The tile's own positions of ``t``, a map of the whole image at ``stride`` (a target)."""
        return t[(..., *self.slots(stride))]

    def slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.crop
        return slice(y0, y1), slice(x0, x1)


def whole_image(objective: Objective) -> str | None:
    """What in ``objective`` needs the whole image at once (a term without ``partials``, e.g. one
    that sorts all positions), as words for a message; ``None`` when every term is a sum over positions."""
    for term in objective.terms:
        if not (hasattr(term, "partials") and hasattr(term, "from_partials")):
            return getattr(term, "whole_image", f"the {term.name} loss")
    return None


def receptive_radius(name: str) -> int:
    """How far (in input pixels) beyond its own ``stride × stride`` cell a feature of layer ``name``
    reads: the sum of the strides of the 3×3 convolutions up to it."""
    last = deepest([name])
    return sum(lay.stride for lay in VGG19_LAYERS if lay.kind == "conv" and lay.index <= last.index)


def geometry(layers: Iterable[str], reach: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """``(stride, halo)`` for tiles feeding ``layers`` and terms on the pixels that need ``reach``
    (:func:`pixel_reach`): origins are multiples of ``stride`` (the deepest layer's, the terms' alignment
    and the encoder's :data:`~painterly.layers.EDGE_MULTIPLE`); the halo is the larger of the receptive radius and the terms' halo, rounded up to ``stride``."""
    layers = tuple(layers)
    stride, need = reach
    if layers:
        # Origins on the encoder's EDGE_MULTIPLE too: a crop that ends at the image's bottom or right
        # edge is then continued past it as the whole image is (layers.edge_padding).
        last = deepest(layers)
        stride, need = math.lcm(stride, last.stride, EDGE_MULTIPLE), max(need, receptive_radius(last.name))
    return stride, math.ceil(need / stride) * stride


def pixel_reach(terms: Iterable[object]) -> tuple[int, int]:
    """``(alignment, halo)`` that the terms' ``partials`` need of a tile, in pixels: each term may say
    its own as ``tile_reach`` (the smoothness term: a 1 px halo for its right and lower neighbours; the
    Laplacian term: its pools' grid and one cell); ``(1, 0)`` for a term on features only."""
    align, halo = 1, 0
    for term in terms:
        a, h = getattr(term, "tile_reach", (1, 0))
        align, halo = math.lcm(align, a), max(halo, h)
    return align, halo


def windows(hw: HW, tile: int, stride: int, halo: int) -> list[Window]:
    """The tiles of an image of size ``hw``: sides ``tile`` rounded down to a multiple of ``stride``
    (at least ``stride``); a last strip narrower than ``stride`` joins the one before it (so every
    tile owns a position at every layer)."""
    side = max(stride, tile // stride * stride)

    def cuts(n: int) -> list[tuple[int, int]]:
        starts = list(range(0, n, side))
        if len(starts) > 1 and n - starts[-1] < stride:
            starts.pop()
        ends = starts[1:] + [n]
        return list(zip(starts, ends))

    h, w = hw
    out = []
    for y0, y1 in cuts(h):
        for x0, x1 in cuts(w):
            crop = (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))
            out.append(Window(crop, (y0, y1, x0, x1), (h, w)))
    return out


def _add(into: dict[str, Tensor], part: Mapping[str, Tensor]) -> None:
    for k, v in part.items():
        into[k] = into[k] + v if k in into else v


class TiledEvaluation:
    """``evaluation(x) -> (total, grad, values)`` of ``objective`` by tiles of ``tile`` px (plus halo):
    the same numbers as :meth:`Objective.evaluation` up to round-off, with the encoder's memory that of
    one tile.

    Raises:
        ConfigError: a term is not a function of sums over positions (it has no ``partials``).
    """

    def __init__(self, objective: Objective, tile: int) -> None:
        reason = whole_image(objective)
        if reason is not None:
            raise ConfigError(f"`tile` cannot be used with {reason}: it is not a sum over positions; use `tile` 0")
        if tile < 1:
            raise ConfigError(f"`tile` must be positive to tile, got {tile}")
        self.objective = objective
        self.stride, self.halo = geometry(objective.layers, pixel_reach(objective.terms))
        self.tile = max(self.stride, tile // self.stride * self.stride)
        self.active: int | None = None
        """The index (in :meth:`windows` order) of the tile being evaluated now, ``None`` between
        evaluations: other threads may read it to show the work in progress (the studio does)."""

    def windows(self, hw: HW) -> list[Window]:
        return windows(hw, self.tile, self.stride, self.halo)

    def grid(self, hw: HW) -> tuple[tuple[int, int, int, int], ...]:
        """The tiles of an image of ``hw`` as ``(top, left, height, width)`` of their own pixels."""
        return tuple((y0, x0, y1 - y0, x1 - x0) for y0, y1, x0, x1 in (w.own_pixels for w in self.windows(hw)))

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        try:
            return self._evaluate(x)
        finally:
            self.active = None

    def _evaluate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obj = self.objective
        x = x.detach()
        tiles = self.windows(tuple(x.shape[-2:]))
        # Pass 1: the statistics of the whole image, tile by tile.
        stats: dict[str, dict[str, Tensor]] = {t.name: {} for t in obj.terms}
        with torch.no_grad():
            for i, win in enumerate(tiles):
                self.active = i
                crop = x[(..., *win.slices())]
                features = obj.features(crop)
                for term in obj.terms:
                    _add(stats[term.name], term.partials(crop, features, win))
        # The loss from the sums, and its gradient with respect to them.
        leaves = {name: {k: v.detach().requires_grad_(True) for k, v in s.items()} for name, s in stats.items()}
        flat = [v for s in leaves.values() for v in s.values()]
        with torch.enable_grad():
            terms = obj.assemble({t.name: t.from_partials(leaves[t.name], x.shape) for t in obj.terms}, x)
            grads = torch.autograd.grad(terms.total, flat, allow_unused=True) if flat else ()
        dstats = dict(zip(map(id, flat), grads))
        # Pass 2: each tile's share of the gradient.
        grad = torch.zeros_like(x)
        for i, win in enumerate(tiles):
            self.active = i
            crop = x[(..., *win.slices())].clone().requires_grad_(True)
            outputs, weights = [], []
            with torch.enable_grad():
                features = obj.features(crop)
                for term in obj.terms:
                    part = term.partials(crop, features, win)
                    for k, v in part.items():
                        d = dstats.get(id(leaves[term.name][k]))
                        if d is not None and v.requires_grad:
                            outputs.append(v)
                            weights.append(d)
                if outputs:
                    torch.autograd.backward(outputs, weights)
            if crop.grad is not None:
                grad[(..., *win.slices())] += crop.grad
        values = terms.values.detach()
        return values[0], grad, values


def encode_by_tiles(
    encoder: VGG19Encoder,
    image: Tensor,
    tile: int,
    keep: Sequence[str] = (),
    grams: Sequence[str] = (),
    autocast: torch.dtype | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Without gradients, by tiles of ``image`` ``(1, 3, H, W)``: the features of the layers ``keep``
    (float32, assembled whole) and the Gram matrices (as :func:`~painterly.losses.gram_matrix`) of the
    layers ``grams``: for style and content targets of images too large to encode at once."""
    stride, halo = geometry(tuple(keep) + tuple(grams))
    h, w = image.shape[-2:]
    acc = torch.float64 if image.dtype == torch.float64 else torch.float32
    features: dict[str, Tensor] = {}
    sums: dict[str, Tensor] = {}
    ctx = torch.autocast(image.device.type, dtype=autocast, enabled=autocast is not None)
    with torch.no_grad():
        for win in windows((h, w), tile, stride, halo):
            with ctx:
                out = encoder(image[(..., *win.slices())].contiguous(memory_format=torch.channels_last))
            for n in grams:
                _add(sums, {n: gram_sum(win.own(out[n], deepest([n]).stride))})
            for n in keep:
                s = deepest([n]).stride
                part = win.own(out[n], s).to(acc)
                if n not in features:
                    features[n] = image.new_zeros((1, part.shape[1], feature_side(h, s), feature_side(w, s)), dtype=acc)
                features[n][..., win.slots(s)[0], win.slots(s)[1]] = part
    out_grams = {}
    for n, g in sums.items():
        s = deepest([n]).stride
        out_grams[n] = g / (g.shape[-1] * feature_side(h, s) * feature_side(w, s))
    return features, out_grams


@dataclass(frozen=True)
class LevelTiles:
    """The tiling policy of one level (``setting``: Config.tile): :meth:`side` is the tile side for
    an image of ``hw`` (``None``: whole), chosen by :func:`~painterly.engine.memory.choose_tile`."""

    setting: int | None
    encoder: VGG19Encoder
    device: torch.device
    element_bytes: int

    def side(self, hw: HW, announce: bool = False, free: int | None = None) -> int | None:
        """The tile side; with ``announce``, an automatic choice is reported (a PainterlyWarning).
        ``free``: the memory available (default: now)."""
        from .memory import choose_tile

        tile, note = choose_tile(self.setting, self.encoder, tuple(hw), self.device, self.element_bytes, free)
        if announce and note:
            warnings.warn(note, PainterlyWarning, stacklevel=3)
        return tile

    def for_objective(self, objective: Objective, hw: HW, free: int | None = None) -> int | None:
        """The tile side for evaluating ``objective`` at ``hw`` (``None``: whole), as :meth:`side`
        announces it; for an objective that needs the whole image (:func:`whole_image`) an automatic
        choice of tiles becomes, in one line, an untiled evaluation when the image fits in the memory
        available (``free``; default: now), and a ConfigError when it does not."""
        reason = whole_image(objective)
        if reason is None or self.setting is not None:
            return self.side(hw, announce=True, free=free)  # an explicit `tile` with such a term: TiledEvaluation refuses
        from .memory import GB, activation_bytes, available_bytes, choose_tile

        free = available_bytes(self.device) if free is None else free
        if choose_tile(None, self.encoder, tuple(hw), self.device, self.element_bytes, free)[0] is None:
            return None
        need, (h, w) = activation_bytes(self.encoder, tuple(hw), self.element_bytes), hw
        if need > free:
            raise ConfigError(
                f"{w}x{h} px needs ~{need / GB:.1f} GB untiled ({free / GB:.1f} GB available), and {reason} cannot be "
                f"evaluated by tiles (`tile`): use a smaller `size`, or `style_loss` gram or w2"
            )
        warnings.warn(
            f"{w}x{h} px is evaluated whole, not by tiles: {reason} cannot be evaluated by tiles "
            f"(~{need / GB:.1f} GB needed, {free / GB:.1f} GB available)",
            PainterlyWarning,
            stacklevel=2,
        )
        return None


def level_tiles(setting: int | None, encoder: VGG19Encoder, device: torch.device, autocast: torch.dtype | None) -> LevelTiles:
    """The :class:`LevelTiles` of a run's settings (activations of ``autocast``'s size, else fp32)."""
    element_bytes = torch.finfo(autocast).bits // 8 if autocast is not None else 4
    return LevelTiles(setting, encoder, device, element_bytes)
