"""The objective of a run: what is minimised over the image's pixels, as a composable object.

An :class:`Objective` is an encoder plus a list of *terms*. A term is a small object with one call
shape, ``term(image, features) -> weighted loss`` (0-d), that names the encoder layers it reads; the
objective runs the encoder once over the layers all terms need and adds the terms up. New kinds of
loss (a mask-guided style term, a temporal term for video, other style statistics) are new terms;
new ways of evaluating (tiles, CUDA graphs) wrap :meth:`Objective.value_and_grad`. Neither touches the
run loop.

What the terms compare against is computed once per level by :func:`~painterly.engine.targets.build_targets`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

import torch
from torch import Tensor

from ..color import luminance
from ..config import Config
from ..encoder import VGG19Encoder
from ..errors import ConfigError, shown
from ..imageio import resize
from ..layers import feature_side, layer
from ..losses import content_loss, cosine_content_loss, gram_matrix, gram_sum, style_loss, total_variation
from ..losses.temporal import temporal_loss
from .laplacian import LaplacianTerm
from .pyramid import HW
from .style_terms import STYLE_LOSS_SCALES, HistogramTerm, SlicedStyleTerm, W2StyleTerm
from .targets import Targets

if TYPE_CHECKING:
    from .tiled import Window

STANDARD_TERMS = ("content", "style", "tv")
"""The terms every run reports (0 when a term is off), in the order they are added up."""
BUILTIN_TERMS = STANDARD_TERMS + ("laplacian",)
"""Every term a :class:`Config` can turn on: :data:`STANDARD_TERMS`, then those reported only when on
(``laplacian``). What shows losses lists these (the studio's page and its history, from here)."""


class Term(Protocol):
    """One weighted loss term."""

    name: str
    """The key it reports under (``content``, ``style``, ``tv``, ...)."""
    layers: tuple[str, ...]
    """The encoder layers it reads (empty for terms on the pixels alone)."""

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        """The weighted loss, a 0-d float32 tensor (float64 for float64 input), differentiable in
        ``image`` ``(1, 3, H, W)`` and in ``features`` (``{layer: (1, C, h, w)}``)."""
        ...


class AdditiveTerm(Term, Protocol):
    """A term that is a function of sums over positions, so that it can be evaluated by tiles
    (:mod:`painterly.engine.tiled`): ``from_partials(Σ_tiles partials(tile), shape) == term(image)``."""

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """The additive statistics of one tile's own positions (``window.own``), from the tile's crop
        ``image`` and its features; fp32 (fp64 for fp64 input), differentiable."""
        ...

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        """The weighted loss from the statistics summed over all tiles of an image of ``shape``."""
        ...


def _acc(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class LossTerms:
    """The terms of one evaluation: ``values[i]`` is the term ``names[i]``; ``names[0]`` is ``total``.

    ``values`` stays on the device (reading it costs a device→host transfer): the run reads it once
    per iteration, with :meth:`as_dict`.
    """

    names: tuple[str, ...]
    values: Tensor

    @property
    def total(self) -> Tensor:
        """The weighted sum of the terms, a 0-d tensor on the device."""
        return self.values[0]

    def as_dict(self) -> dict[str, float]:
        """``{name: value}``, read from the device (one transfer)."""
        return dict(zip(self.names, self.values.tolist()))


@dataclass(frozen=True)
class ContentTerm:
    """``weight × mean over layers of the content loss`` (MSE, or cosine with ``cosine=True``)."""

    targets: Mapping[str, Tensor]
    weight: float
    cosine: bool = False
    name: str = "content"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        fn = cosine_content_loss if self.cosine else content_loss
        return sum(fn(features[n], t) for n, t in self.targets.items()) / len(self.targets) * self.weight

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per layer: Σ (F − P)² over the tile's positions, or Σ (1 − cos(F_p, P_p)) with ``cosine``."""
        out = {}
        for n, t in self.targets.items():
            stride = layer(n).stride
            f, p = window.own(features[n], stride), window.whole(t, stride)
            if self.cosine:
                f, p = f.to(_acc(f)), p.to(_acc(f))
                out[n] = (1.0 - torch.nn.functional.cosine_similarity(f, p, dim=1, eps=1e-8)).sum()
            else:
                out[n] = content_loss(f, p) * f.numel() if f.numel() else f.new_zeros((), dtype=_acc(f))
        return out

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        total = 0.0
        for n, t in self.targets.items():
            if self.cosine:
                total = total + stats[n] / (t.numel() // t.shape[1]) * t.to(stats[n].dtype).pow(2).mean()
            else:
                total = total + stats[n] / t.numel()
        return total / len(self.targets) * self.weight


@dataclass(frozen=True)
class GramStyleTerm:
    """``weight × Σ_layers layer_weight × style_loss(Gram(features), target)``.

    Summed over layers with weight 1 each by default, as jcjohnson/neural-style does, so that
    ``style_weight`` means what it means there (the paper's w_l = 1/5 is a factor of 5 in beta).
    """

    targets: Mapping[str, Tensor]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = sum(self.layer_weights[n] * style_loss(gram_matrix(features[n]), t) for n, t in self.targets.items())
        return loss * self.weight

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per layer: the unnormalised Gram Σ_p F_p F_pᵀ ``(1, C, C)`` of the tile's positions."""
        return {n: gram_sum(window.own(features[n], layer(n).stride)) for n in self.targets}

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        h, w = shape[-2:]
        loss = 0.0
        for n, t in self.targets.items():
            stride, c = layer(n).stride, stats[n].shape[-1]
            positions = feature_side(h, stride) * feature_side(w, stride)
            loss = loss + self.layer_weights[n] * style_loss(stats[n] / (c * positions), t)
        return loss * self.weight


@dataclass(frozen=True)
class TVTerm:
    """``weight × total_variation(image)``: the smoothness prior."""

    weight: float
    name: str = "tv"
    layers: tuple[str, ...] = ()
    tile_reach: tuple[int, int] = (1, 1)
    """Tiles (:func:`painterly.engine.tiled.pixel_reach`): any origin, a halo of 1 px for the neighbours."""

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        return total_variation(image) * self.weight

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Σ dx² and Σ dy² over the pairs whose first pixel is the tile's own (their right and lower
        neighbours lie in the crop: the halo is at least 1 px)."""
        (y0, y1, x0, x1), (cy, _, cx, _) = window.own_pixels, window.crop
        h, w = window.hw
        r0, r1, c0, c1 = y0 - cy, y1 - cy, x0 - cx, x1 - cx
        x = image.to(_acc(image))
        right = x[..., r0:r1, c0 : min(x1, w - 1) - cx]
        below = x[..., r0 : min(y1, h - 1) - cy, c0:c1]
        dx = x[..., r0:r1, c0 + 1 : min(x1, w - 1) - cx + 1] - right
        dy = x[..., r0 + 1 : min(y1, h - 1) - cy + 1, c0:c1] - below
        return {"tv_x": dx.pow(2).sum(), "tv_y": dy.pow(2).sum()}

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        n, c, h, w = shape
        return (stats["tv_x"] / (n * c * h * (w - 1)) + stats["tv_y"] / (n * c * (h - 1) * w)) * self.weight


@dataclass(frozen=True)
class TemporalTerm:
    """``weight × Σ_j temporal_loss(image, warped[j], weights[j])``: Ruder et al.'s temporal term.

    ``warped[j]`` ``(1, 3, H, W)`` is an earlier stylised frame warped onto this one by the optical flow
    and ``weights[j]`` ``(1, 1, H, W)`` in [0, 1] where it may be trusted (one pair for the previous frame;
    several for the long-term form). Given at the output size; :meth:`at_level` resizes them to a level's.
    ``on_luminance``: compare the image's luminance only (``original_colors="after"``: the frames as saved
    have the content's colours, the run paints in the style's; only the luminance is both's).
    """

    warped: tuple[Tensor, ...]
    weights: tuple[Tensor, ...]
    weight: float
    name: str = "temporal"
    layers: tuple[str, ...] = ()
    on_luminance: bool = False

    def at_level(self, hw: HW, device: torch.device) -> "TemporalTerm":
        """This term at a level of size ``hw`` on ``device``."""
        warped = tuple(resize(w, hw).to(device) for w in self.warped)
        weights = tuple(resize(c, hw).clamp(0, 1).to(device) for c in self.weights)
        return TemporalTerm(warped, weights, self.weight, self.name, on_luminance=self.on_luminance)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        if self.on_luminance:
            image = luminance(image)
        loss = sum(temporal_loss(image, w.to(image.dtype), c.to(image.dtype)) for w, c in zip(self.warped, self.weights))
        return loss * self.weight


class Objective:
    """``objective(x) -> LossTerms``: the encoder run once over ``x``, every term added up.

    Args:
        encoder: the frozen network (its layers must include every term's).
        terms: the loss terms; the reported names are ``total``, then :data:`STANDARD_TERMS` (0 for
            those absent), then any other term's name.
        autocast: the dtype the encoder runs in (``None``: fp32); the terms always add up in fp32.
    """

    def __init__(self, encoder: VGG19Encoder, terms: Sequence[Term], autocast: torch.dtype | None = None) -> None:
        self.encoder = encoder
        self.terms = tuple(terms)
        self.autocast = autocast
        names = [t.name for t in self.terms]
        twice = sorted({n for n in names if names.count(n) > 1} | ({"total"} & set(names)))
        if twice:
            # Each term reports (and is added up) under its name: a second one would silently replace the first.
            raise ConfigError(f"two loss terms report as {shown(twice[0])}: give the extra term a name of its own")
        self.names = ("total",) + STANDARD_TERMS + tuple(n for n in names if n not in STANDARD_TERMS)
        self.layers = tuple(dict.fromkeys(n for t in self.terms for n in t.layers))

    def __call__(self, x: Tensor) -> LossTerms:
        """The terms at ``x`` ``(1, 3, H, W)``; ``values`` is differentiable when ``x`` requires grad."""
        features = self.features(x)
        return self.assemble({t.name: t(x, features) for t in self.terms}, x)

    def features(self, x: Tensor) -> Mapping[str, Tensor]:
        """The encoder's outputs for ``x`` (an image or a crop of one), in the objective's precision."""
        if not self.layers:
            return {}
        with self._autocast(x.device):
            return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def assemble(self, parts: Mapping[str, Tensor], x: Tensor) -> LossTerms:
        """The reported terms from each term's weighted loss ``parts[name]`` (the total first)."""
        zero = x.new_zeros(())
        total = zero
        for name in self.names[1:]:
            total = total + parts[name] if name in parts else total
        values = [total] + [parts.get(name, zero) for name in self.names[1:]]
        return LossTerms(self.names, torch.stack([v.to(total.dtype) for v in values]))

    def value_and_grad(self, x: Tensor) -> tuple[LossTerms, Tensor]:
        """The terms at ``x`` (detached) and the gradient of their total with respect to ``x``.

        No device→host transfer happens here (the caller decides when to read the values).
        """
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            terms = self(x)
            (grad,) = torch.autograd.grad(terms.total, x)
        return LossTerms(terms.names, terms.values.detach()), grad

    def begin_iteration(self, seed: int, iteration: int) -> bool:
        """Called by the run once before each iteration: terms whose objective changes per iteration
        (the sliced loss's random directions) change here, never inside an iteration's line search.
        Returns whether the objective changed at this iteration (values known from before are stale)."""
        changed = False
        for term in self.terms:
            redraw = getattr(term, "redraw", None)
            if redraw is not None:
                changed = bool(redraw(seed, iteration)) or changed
        return changed

    def evaluation(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`value_and_grad` as plain tensors ``(total, grad, values)``: the shape a CUDA graph
        captures (see :mod:`painterly.graphs`)."""
        terms, grad = self.value_and_grad(x)
        return terms.total, grad, terms.values

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        dtype = self.autocast
        # No weight-cast cache: it lives only as long as one autocast region anyway, and a CUDA graph
        # cannot capture its bookkeeping.
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=False)


def check_terms(terms: Sequence[Term], layers: Sequence[str]) -> tuple[Term, ...]:
    """``terms`` (a run's ``extra_terms``) as a tuple, each checked to have the :class:`Term` shape and
    to read only ``layers`` (what the run's encoder outputs).

    Raises:
        ConfigError: naming the term and what is wrong with it.
    """
    if isinstance(terms, Tensor) or not isinstance(terms, (list, tuple)):
        raise ConfigError(f"extra_terms must be a list of loss terms, got {type(terms).__name__}")
    taken = {"total", *BUILTIN_TERMS}  # the rest (a style kind's own term) is refused by Objective
    for term in terms:
        name, reads = getattr(term, "name", None), getattr(term, "layers", None)
        if isinstance(term, type):
            raise ConfigError(f"extra term {term.__name__}: give an instance of the class, not the class")
        if not isinstance(name, str) or not name or not callable(term):
            raise ConfigError(f"extra term {shown(term)}: a term is callable as term(image, features) and has a name string")
        if name in taken:
            raise ConfigError(f"extra term {shown(name)}: another term reports under that name; give it a name of its own")
        taken.add(name)
        if not isinstance(reads, tuple) or not all(isinstance(n, str) for n in reads):
            raise ConfigError(f"extra term {shown(name)}: its layers must be a tuple of layer names, got {shown(reads)}")
        missing = [n for n in reads if n not in layers]
        if missing:
            raise ConfigError(
                f"extra term {shown(name)} reads {', '.join(missing)}, which the encoder does not output; "
                f"build it with them: StyleTransfer(config, encoder=build_encoder(config, extra_layers=...))"
            )
    return tuple(terms)


def build_objective(
    encoder: VGG19Encoder,
    config: Config,
    targets: Targets,
    autocast: torch.dtype | None,
    extra_terms: Sequence[Term] = (),
    hw: HW | None = None,
    device: torch.device | None = None,
) -> Objective:
    """The objective of ``config``'s loss settings over ``targets`` (terms with zero weight left out),
    plus ``extra_terms`` (a run's own terms, e.g. :class:`TemporalTerm`); a term with an ``at_level(hw,
    device)`` method is first adapted to the level's size ``hw``."""
    terms: list[Term] = []
    if targets.content:
        terms.append(ContentTerm(targets.content, config.content_weight, cosine=config.content_loss == "cosine"))
    layer_weights = dict(zip(config.style_layers, config.style_layer_weights or (1.0,) * len(config.style_layers)))
    if targets.grams:
        terms.append(GramStyleTerm(targets.grams, layer_weights, config.style_weight))
    # Each kind's weight is scaled so that one `style_weight` means about the same strength (STYLE_LOSS_SCALES).
    weight = config.style_weight * STYLE_LOSS_SCALES[config.style_loss]
    if targets.style.gaussians:
        terms.append(W2StyleTerm(targets.style.gaussians, layer_weights, weight))
    if targets.style.samples:
        device = next(iter(targets.style.samples.values()))[0][1].device
        terms.append(SlicedStyleTerm(targets.style.samples, targets.hw, layer_weights, weight, device))
    if targets.style.histograms:
        terms.append(HistogramTerm(targets.style.histograms, layer_weights, weight))
    if any(targets.guided.values()):
        from .guided import GuidedStyleTerm

        terms.append(GuidedStyleTerm(targets.guided, layer_weights, config.style_weight))
    region_term = targets.region_style.term(layer_weights, weight) if targets.region_style is not None else None
    if region_term is not None:
        terms.append(region_term)
    if targets.laplacians:
        terms.append(LaplacianTerm(targets.laplacians, config.laplacian_weight))
    if config.tv_weight > 0:
        terms.append(TVTerm(config.tv_weight))
    for term in extra_terms:
        at_level = getattr(term, "at_level", None)
        terms.append(at_level(hw, device) if at_level is not None and hw is not None else term)
    return Objective(encoder, terms, autocast)
