"""A configured engine: the settings and the frozen encoder, shared by every run started from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..devices import resolve_device, resolve_precision
from ..encoder import VGG19Encoder
from ..errors import ConfigError
from .inputs import ImageLike, Inputs, load_inputs
from .objective import Term
from .run import Run
from .state import Progress

if TYPE_CHECKING:
    from ..weights import Weights

ProgressCallback = Callable[[Progress], None]


def build_encoder(
    config: Config,
    *,
    weights: Weights | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    extra_layers: Sequence[str] = (),
) -> VGG19Encoder:
    """The encoder ``config`` asks for, reading only as deep as its layers need.

    Args:
        weights: already-loaded :class:`~painterly.weights.Weights` (the studio keeps them in memory);
            by default they are loaded from ``config.weights``.
        progress: called as ``(bytes_done, bytes_total)`` while weights download.
        extra_layers: layers it outputs besides ``config.layers_needed`` (what a run's own
            ``extra_terms`` read; see docs/architecture.md).
    """
    layers = tuple(dict.fromkeys((*config.layers_needed, *extra_layers)))
    if not layers:
        # The TV and Laplacian terms work on pixels: with no content or style term nothing reads the network.
        raise ConfigError("`content_weight` and `style_weight` are both zero: no term reads the network; give one of them a weight")
    if weights is None:
        from ..weights import load_weights

        weights = load_weights(config.weights, progress=progress)
    return VGG19Encoder(weights.state, weights.preprocessing, layers, config.pooling)


class StyleTransfer:
    """A configured style-transfer engine: the encoder is built once and reused by every run.

    Args:
        config: the run settings.
        encoder: an already-built encoder (tests pass a tiny random one); by default one is built with
            :func:`build_encoder`.
        device: overrides ``config.device``.
        weights_progress: called as ``(bytes_done, bytes_total)`` while weights download.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        encoder: VGG19Encoder | None = None,
        device: str | torch.device | None = None,
        weights_progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        if config is not None and not isinstance(config, Config):
            raise ConfigError(f"config must be a painterly.Config, got {type(config).__name__} (Config(**options) makes one)")
        self.config = config or Config()
        self.device = resolve_device(device if device is not None else self.config.device)
        self.autocast_dtype = resolve_precision(self.config.precision, self.device)
        if encoder is None:
            encoder = build_encoder(self.config, progress=weights_progress)
        else:
            missing = [n for n in self.config.layers_needed if n not in encoder.layers]
            if missing:
                raise ConfigError(f"the encoder does not output {', '.join(missing)}")
        # channels_last lets oneDNN/cuDNN pick their fastest convolutions (10–20 % on this CPU) and
        # makes the Gram matrices copy-free (see losses.gram.gram_matrix).
        self.encoder = encoder.to(self.device).to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            from ..devices import fastest_precision
            from ..graphs import prepare_cuda

            prepare_cuda()
            if self.config.precision == "auto":
                # On a GPU bf16 is not always the faster (launch-bound sizes): measure, at the run's size.
                side = min(self.config.size, 1024)
                self.autocast_dtype = fastest_precision(self.encoder, (1, 3, side, side), self.device)

    def start(
        self,
        inputs: Inputs | ImageLike | None,
        styles: Sequence[ImageLike] | ImageLike = (),
        *,
        init: ImageLike | None = None,
        extra_terms: Sequence[Term] = (),
    ) -> Run:
        """A run over ``inputs`` (from :func:`~painterly.engine.inputs.load_inputs`). For convenience the
        images may be given instead, ``start(content, styles, init=...)``: they are loaded by the same
        :func:`load_inputs`. ``extra_terms`` are added to every level's objective (see
        :func:`~painterly.engine.objective.build_objective`). Nothing is computed until the first step."""
        if not isinstance(inputs, Inputs):
            inputs = load_inputs(self.config, inputs, styles, init, warn=False)
        elif styles or init is not None:
            raise ConfigError("give either Inputs or the images, not both")
        return Run(self, inputs, extra_terms=extra_terms)

    def run(
        self,
        inputs: Inputs | ImageLike | None,
        styles: Sequence[ImageLike] | ImageLike = (),
        *,
        init: ImageLike | None = None,
        callback: ProgressCallback | None = None,
        extra_terms: Sequence[Term] = (),
    ) -> Tensor:
        """Run to the end (``callback`` gets each :class:`Progress`) and return the result,
        ``(1, 3, H, W)`` float32 in [0, 1] on the CPU. The inputs and ``extra_terms`` as for :meth:`start`."""
        run = self.start(inputs, styles, init=init, extra_terms=extra_terms)
        for progress in run:
            if callback is not None:
                callback(progress)
        return run.result()
