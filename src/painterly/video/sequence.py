"""The temporal method of Ruder, Dosovitskiy & Brox ("Artistic style transfer for videos", 2016) as a
library object: frames go in one at a time, each becomes a :class:`~painterly.engine.Run` that starts
from the previous stylised frame warped by the optical flow and carries a
:class:`~painterly.engine.TemporalTerm` holding it there, wherever the consistency check trusts the flow.

Frames are sequential by nature (each starts from the last result), so a clip is one frame after the
other; only what depends on the input clip alone (decoding, the flow and its consistency weights) is
computed ahead, in a background thread (:meth:`ClipStyler.frames`, painterly.video.ahead). Nothing
here prints or writes files.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch
from torch import Tensor

from .. import color
from ..config import Config
from ..engine import ImageLike, Inputs, Run, StyleTransfer, TemporalTerm, load_inputs, to_tensor
from ..errors import ConfigError, shown
from ..imageio import fit_size, resize
from ..engine.pyramid import MIN_SIDE
from . import TEMPORAL_WEIGHT
from .ahead import FrameFlows, ahead, check_flow_ahead, default_flow_ahead, with_flows
from .flow import flow_pair, warp

LONG_TERM = (1, 2, 4)
"""The earlier frames the long-term form looks back to (Ruder et al.'s J = {1, 2, 4})."""


@dataclass(frozen=True)
class VideoSettings:
    """What the temporal method adds to a :class:`~painterly.config.Config`.

    ``temporal_weight``: weight of the temporal term (0: frames only started from the warped last one).
    ``frame_iterations``: iterations of every frame after the first (``None``: a fifth of ``iterations``,
    at least 1); the first frame runs the config's full ``iterations``.
    ``long_term``: compare with frames i−1, i−2 and i−4, not only i−1.
    """

    temporal_weight: float = TEMPORAL_WEIGHT
    frame_iterations: int | None = None
    long_term: bool = False

    def __post_init__(self) -> None:
        w = self.temporal_weight
        # inf is refused too: every later frame's loss would be nan (a clip of unchanged warped starts).
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w < math.inf:
            raise ConfigError(f"`temporal_weight` must be a finite number ≥ 0, got {shown(w)}")
        fi = self.frame_iterations
        if fi is not None and (isinstance(fi, bool) or not isinstance(fi, int) or fi < 1):
            raise ConfigError(f"`frame_iterations` must be a positive integer, got {shown(fi)}")

    def iterations_after_first(self, config: Config) -> int:
        return self.frame_iterations if self.frame_iterations is not None else max(1, config.iterations // 5)


class ClipStyler:
    """Stylises a clip frame by frame with the temporal method.

    Usage::

        styler = ClipStyler(transfer, styles, settings)
        for item in styler.frames(read_frames(path)):   # the flow computed ahead (or inline)
            run = styler.start(item.frame, item.flows)   # a Run: step it (or iterate) to its end
            for progress in run: ...
            styler.push(item.frame, run.result())

    ``styler.start(frame)`` without flows computes them in the frame's turn (the same result).

    Args:
        transfer: the engine of the first frame (its config, encoder and device); later frames reuse
            its encoder with ``init`` image, single scale, and ``frame_iterations``.
        styles: the style images, loaded once.
        settings: the temporal settings.
        init: the first frame's starting image, when the config's ``init`` is ``"image"``.
        warn: report the first frame's :attr:`notes` as :class:`~painterly.errors.PainterlyWarning`
            too (once: every frame would repeat them).
    """

    def __init__(
        self, transfer: StyleTransfer, styles: Sequence[ImageLike], settings: VideoSettings = VideoSettings(), *,
        init: ImageLike | None = None, warn: bool = True,
    ) -> None:  # fmt: skip
        config = transfer.config
        self.settings = settings
        self.warn = warn
        self.notes: tuple[str, ...] | None = None
        """What the first frame started found odd but usable (:attr:`~painterly.engine.Inputs.notes`:
        frames smaller than ``size``, an option without effect ...); ``None`` until a frame starts."""
        self.first = transfer
        self.init = to_tensor(init, name="init image", max_pixels=config.max_pixels, max_side=config.size) if init is not None else None
        later = config.replace(init="image", init_noise=0.0, multiscale=False, level_iterations=None, iterations=settings.iterations_after_first(config))
        self.later = StyleTransfer(later, encoder=transfer.encoder, device=transfer.device)
        side = max(1, round(config.size * config.style_scale))
        self.styles = [to_tensor(s, name=f"style image {i + 1}", max_pixels=config.max_pixels, max_side=side) for i, s in enumerate(styles)]
        # (input frame at the output size, stylised frame) of the last frames, newest last.
        self.history: deque[tuple[Tensor, Tensor]] = deque(maxlen=max(LONG_TERM) if settings.long_term else 1)
        self.index = 0

    def output_size(self, frame: Tensor) -> tuple[int, int]:
        h, w = frame.shape[-2:]
        return fit_size(h, w, self.first.config.size, MIN_SIDE)

    @property
    def steps(self) -> tuple[int, ...]:
        """How far back each frame looks: ``(1,)``, or ``(1, 2, 4)`` with long-term consistency."""
        return LONG_TERM if self.settings.long_term else (1,)

    def frames(self, frames: Iterable[Tensor], *, start: int = 0, flow_ahead: int | None = None) -> Iterator[FrameFlows]:
        """``frames`` with the flows of those from ``start`` on (:class:`~painterly.video.ahead.FrameFlows`),
        computed up to ``flow_ahead`` frames ahead in a background thread (``None``: the device's default,
        4 on CUDA, 0 on the CPU; 0: inline). Close the iterator (or exhaust it) to stop the thread.

        Raises:
            ConfigError: ``flow_ahead`` is not an integer ≥ 0.
        """
        n = default_flow_ahead(self.first.device) if flow_ahead is None else check_flow_ahead(flow_ahead)
        return ahead(with_flows(frames, self.output_size, self.steps, start), n)

    def start(self, frame: Tensor, flows: tuple[tuple[Tensor, Tensor], ...] | None = None) -> Run:
        """The run of the next frame ``(1, 3, H, W)`` in [0, 1] (the first frame: a plain run).

        ``flows``: this frame's flows from :meth:`frames` (``None``: computed here)."""
        if not self.history:
            return self.first.start(self._inputs(self.first.config, frame, self.init))
        current = resize(frame, self.output_size(frame))
        warped, weights = self.guides(current, flows)
        inputs = self._inputs(self.later.config, frame, warped[0])
        colors = self.first.config.original_colors
        if colors in ("luminance", "after"):
            # The run optimises the luminance alone (or paints in the style's colours, which the saved
            # frames no longer have): compare it with the luminance of the frames.
            warped = tuple(color.luminance(w) for w in warped)
        on_luminance = colors == "after"
        terms = [TemporalTerm(warped, weights, self.settings.temporal_weight, on_luminance=on_luminance)] if self.settings.temporal_weight > 0 else []
        return self.later.start(inputs, extra_terms=terms)

    def _inputs(self, config: Config, frame: Tensor, init: Tensor | None) -> Inputs:
        """The frame's inputs; the first frame's notes are kept (and warned of) once."""
        first = self.notes is None
        inputs = load_inputs(config, frame, self.styles, init, warn=self.warn and first, content_label="each frame")
        if first:
            self.notes = inputs.notes
        return inputs

    def guides(
        self, current: Tensor, flows: tuple[tuple[Tensor, Tensor], ...] | None = None
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """The earlier stylised frames warped onto ``current`` (at the output size) and their weights:
        one pair (i−1), or with ``long_term`` up to three (i−1, i−2, i−4), each weighted only where no
        nearer frame is already trusted (Ruder et al., eq. 8). ``flows``: the (backward flow, trust)
        of each of those steps, computed ahead (``None``: computed here)."""
        steps = [j for j in self.steps if j <= len(self.history)]
        if flows is not None and len(flows) != len(steps):
            raise ValueError(f"guides: {len(flows)} flows given for {len(steps)} earlier frames")
        warped, weights = [], []
        covered = torch.zeros((1, 1, *current.shape[-2:]))
        for k, j in enumerate(steps):
            before, stylised = self.history[-j]
            backward, trust = flow_pair(before, current) if flows is None else flows[k]
            warped.append(warp(stylised, backward))
            weights.append((trust - covered).clamp(min=0))
            covered = covered + trust
        return tuple(warped), tuple(weights)

    def push(self, frame: Tensor, stylised: Tensor) -> None:
        """Record a finished frame: its input and its result as saved (the next frame starts from it)."""
        current = resize(frame, self.output_size(frame))
        if tuple(stylised.shape[-2:]) != tuple(current.shape[-2:]):
            stylised = resize(stylised, tuple(current.shape[-2:]))
        self.history.append((current, stylised.detach().cpu()))
        self.index += 1
