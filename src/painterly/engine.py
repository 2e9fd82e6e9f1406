"""The optimisation engine: pixels of an image optimised against content, style and smoothness losses.

:class:`StyleTransfer` holds what is shared between runs (the configuration and the frozen encoder);
:meth:`StyleTransfer.start` returns a :class:`Run`, which advances one optimiser iteration per
:meth:`Run.step` and reports a :class:`Progress` each time. The CLI, the web studio and
:func:`painterly.stylize` are all loops over a :class:`Run`.

The library never prints or writes files: what to show or save is the caller's business, and a run's
whole state (for checkpoints) is a plain dict from :meth:`Run.state_dict`.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import color
from .config import Config
from .devices import resolve_device, resolve_precision
from .encoder import VGG19Encoder
from .errors import ConfigError, DivergenceError, ResourceError
from .lbfgs import LBFGS
from .losses import content_loss, cosine_content_loss, gram_matrix, style_loss, total_variation
from .precondition import pyramid_preconditioner
from .schedule import Level, plan_levels

LOSS_TERMS = ("total", "content", "style", "tv")
CHECKPOINT_VERSION = 1
MAX_RECOVERIES = 5

# Smallest side the network can take: relu5_x sits behind four 2×2 pools.
MIN_SIDE = 16

# L-BFGS remembers two images per step: --lbfgs-history 100 at 2048×1536 px would be 7.5 GB, more than
# the network's own activations. Past this budget it remembers fewer steps (it matters above ~1400 px;
# the default multi-scale schedule gives a 2048 px level only ~16 iterations anyway).
LBFGS_HISTORY_BYTES = 1 << 30
MIN_LBFGS_HISTORY = 10


def lbfgs_history_for(requested: int, shape: Sequence[int]) -> int:
    """The number of L-BFGS steps remembered for an image of ``shape``: ``requested``, capped so that
    the history (2 float32 images per step) stays within LBFGS_HISTORY_BYTES, but not below
    MIN_LBFGS_HISTORY."""
    per_step = 2 * 4 * math.prod(shape)
    return min(requested, max(MIN_LBFGS_HISTORY, LBFGS_HISTORY_BYTES // per_step))


@dataclass(frozen=True)
class Progress:
    """What a run reports after each iteration.

    ``losses`` holds the *weighted* terms (``content``, ``style``, ``tv``) and their sum ``total``, at
    the current level's size. ``image`` is the current image, ``(1, 3, H, W)`` float32 in [0, 1] on the
    run's device; it is only valid during the callback (clone it to keep it).
    """

    iteration: int
    total_iterations: int
    level: int
    levels: int
    level_iteration: int
    level_iterations: int
    size: tuple[int, int]
    losses: Mapping[str, float]
    elapsed: float
    evaluations: int
    image: Tensor = field(repr=False, compare=False)
    recovered: bool = False

    @property
    def loss(self) -> float:
        return self.losses["total"]

    @property
    def fraction(self) -> float:
        return self.iteration / self.total_iterations


ProgressCallback = Callable[[Progress], None]


class _Cancelled(Exception):
    """Raised inside the objective to abandon an iteration when a stop was requested."""


def _check_image(name: str, image: Tensor) -> Tensor:
    if not isinstance(image, Tensor):
        raise ConfigError(f"{name} must be a tensor of shape (1, 3, H, W); got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ConfigError(f"{name} must have shape (1, 3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ConfigError(f"{name} must be a float tensor in [0, 1]; got {image.dtype}")
    return image.detach().float()


def _fit(image: Tensor, longest: int) -> tuple[int, int]:
    """(H, W) with the longest side ``longest`` and the aspect of ``image``; no side below MIN_SIDE."""
    h, w = image.shape[-2:]
    scale = longest / max(h, w)
    return max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale))


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == tuple(hw):
        return image
    down = hw[0] < image.shape[-2] or hw[1] < image.shape[-1]
    out = F.interpolate(image, size=hw, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1)


class StyleTransfer:
    """A configured style-transfer engine: the encoder is built once and reused by every run.

    Args:
        config: the run settings.
        encoder: an already-built encoder (tests pass a tiny random one); by default one is built from
            ``config.weights``, reading only as deep as the configured layers need.
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
        self.config = config or Config()
        self.device = resolve_device(device if device is not None else self.config.device)
        self.autocast_dtype = resolve_precision(self.config.precision, self.device)
        needed = self.config.layers_needed
        if encoder is None:
            from .weights import load_weights

            weights = load_weights(self.config.weights, progress=weights_progress)
            encoder = VGG19Encoder(weights.state, weights.preprocessing, needed, self.config.pooling)
        else:
            missing = [n for n in needed if n not in encoder.layers]
            if missing:
                raise ConfigError(f"the encoder does not output {', '.join(missing)}")
        # channels_last lets oneDNN/cuDNN pick their fastest convolutions (10–20 % on this CPU) and
        # makes the Gram matrices copy-free (see losses.gram_matrix).
        self.encoder = encoder.to(self.device).to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------
    def start(
        self,
        content: Tensor | None,
        styles: Sequence[Tensor] = (),
        *,
        init: Tensor | None = None,
    ) -> "Run":
        """Prepare a run (targets are computed lazily, per level).

        Args:
            content: ``(1, 3, H, W)`` in [0, 1], any size (it is resized per level from this original);
                ``None`` for texture synthesis (style loss only).
            styles: one or more ``(1, 3, H, W)`` images in [0, 1]; blended by ``config.style_blend``.
            init: a starting image when ``config.init`` is a path (the caller loads it).
        """
        return Run(self, content, list(styles), init=init)

    def run(
        self,
        content: Tensor | None,
        styles: Sequence[Tensor] = (),
        *,
        init: Tensor | None = None,
        callback: ProgressCallback | None = None,
    ) -> Tensor:
        """Run to the end and return the result, ``(1, 3, H, W)`` float32 in [0, 1] on the CPU."""
        run = self.start(content, styles, init=init)
        for progress in run:
            if callback is not None:
                callback(progress)
        return run.result()


class Run:
    """One optimisation, advanced by :meth:`step` (or by iterating over it).

    Thread-safety: :meth:`stop` may be called from another thread (the web studio's Cancel); the run
    then ends within one loss evaluation.
    """

    def __init__(self, transfer: StyleTransfer, content: Tensor | None, styles: list[Tensor], *, init: Tensor | None = None):
        cfg = transfer.config
        self.transfer = transfer
        self.config = cfg
        self.device = transfer.device
        if content is not None:
            content = _check_image("content image", content)
        if cfg.uses_content and content is None:
            raise ConfigError("a content image is needed when --content-weight is positive")
        styles = [_check_image(f"style image {i + 1}", s) for i, s in enumerate(styles)]
        if cfg.uses_style and not styles:
            raise ConfigError("at least one style image is needed when --style-weight is positive")
        blend = cfg.style_blend
        if blend is not None and len(blend) != len(styles):
            raise ConfigError(f"--style-blend has {len(blend)} values for {len(styles)} style images")
        if content is None and cfg.init == "content":
            raise ConfigError("--init content needs a content image")
        if cfg.original_colors != "off" and content is None:
            raise ConfigError("--original-colors needs a content image")
        if init is not None:
            init = _check_image("init image", init)
        elif cfg.init not in ("noise", "content", "style"):
            raise ConfigError(f"--init {cfg.init}: load that image and pass it as init=")
        if cfg.init == "style" and not styles:
            raise ConfigError("--init style needs a style image")

        self._weights = [w / sum(blend) for w in blend] if blend is not None else [1.0 / max(1, len(styles))] * len(styles)
        self._content_full = content
        self._styles_full = styles
        # --original-colors: the colour handling happens on the inputs, once, at full resolution.
        if cfg.original_colors == "histogram" and content is not None:
            styles = [color.match_color(s, content) for s in styles]
        elif cfg.original_colors == "luminance" and content is not None:
            styles = [color.match_luminance(s, content) for s in styles]
            content = color.luminance(content)
        self._content = content
        self._styles = styles
        self._init_full = init

        reference = content if content is not None else styles[0] if styles else None
        if reference is None:
            raise ConfigError("nothing to work from: give a content or a style image")
        self._reference = reference
        self.levels: tuple[Level, ...] = plan_levels(cfg)
        self.total_iterations = sum(level.iterations for level in self.levels)
        self._start = self._starting_image(_fit(reference, self.levels[-1].size))
        layer_w = cfg.style_layer_weights or (1.0,) * len(cfg.style_layers)
        # Summed over layers with weight 1 each by default, as jcjohnson/neural-style does, so that
        # --style-weight means what it means there (the paper's w_l = 1/5 is a factor of 5 in beta).
        self._style_layer_weights = dict(zip(cfg.style_layers, layer_w))

        self.iteration = 0
        self.level_index = 0
        self.level_iteration = 0
        self.evaluations = 0
        self.recoveries = 0
        self._elapsed_before = 0.0
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._lr_scale = 1.0
        self._x: Tensor | None = None
        self._good: Tensor | None = None
        self._losses: dict[str, float] = {k: math.nan for k in LOSS_TERMS}
        self._seed = cfg.seed if cfg.seed is not None else int(torch.seed() % (2**31))
        self._generator = torch.Generator().manual_seed(self._seed)
        self._level_ready = False

    # --- public ----------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The seed in effect (drawn at random when the config has none) — log it to repeat a run."""
        return self._seed

    @property
    def done(self) -> bool:
        return self.iteration >= self.total_iterations or self._stop.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def level(self) -> Level:
        return self.levels[min(self.level_index, len(self.levels) - 1)]

    @property
    def elapsed(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._t0)

    def stop(self) -> None:
        """Ask the run to end (safe from another thread or a signal handler)."""
        self._stop.set()

    def __iter__(self) -> Iterator[Progress]:
        while not self.done:
            progress = self.step()
            if progress is None:
                return
            yield progress

    def step(self) -> Progress | None:
        """One iteration of the optimiser; ``None`` if the run is over or was stopped."""
        if self.done:
            return None
        try:
            # Inside the try: a new level computes its targets at a larger size, and can be what
            # runs out of memory.
            if not self._level_ready:
                self._start_level()
            self._step_once()
        except _Cancelled:
            return None
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            raise self._oom(exc) from None
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
                raise self._oom(exc) from None
            raise
        recovered = self._check_finite()
        self.iteration += 1
        self.level_iteration += 1
        progress = Progress(
            iteration=self.iteration,
            total_iterations=self.total_iterations,
            level=self.level_index,
            levels=len(self.levels),
            level_iteration=self.level_iteration,
            level_iterations=self.level.iterations,
            size=tuple(self._x.shape[-2:]),
            losses=dict(self._losses),
            elapsed=self.elapsed,
            evaluations=self.evaluations,
            image=self._present(self._x.detach()),
            recovered=recovered,
        )
        if self.level_iteration >= self.level.iterations and self.level_index < len(self.levels) - 1:
            self.level_index += 1
            self.level_iteration = 0
            self._level_ready = False
        return progress

    def current(self) -> Tensor:
        """The image as it stands, ``(1, 3, H, W)`` float32 in [0, 1] on the CPU, colours applied."""
        if self._x is None:
            self._start_level()
        return self._present(self._good if self._good is not None else self._x.detach()).clamp(0, 1).cpu()

    def result(self) -> Tensor:
        """The final (or, if stopped early, the latest good) image; same format as :meth:`current`."""
        return self.current()

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run later (tensors on the CPU; torch.save-able and
        loadable with ``weights_only=True``)."""
        if self._x is None:
            self._start_level()
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "content": self._content_full,
            "styles": list(self._styles_full),
            "init": self._init_full,
            "seed": self._seed,
            "iteration": self.iteration,
            "level_index": self.level_index,
            "level_iteration": self.level_iteration,
            "level_ready": self._level_ready,
            "image": self._x.detach().cpu().clone(),
            "good": None if self._good is None else self._good.cpu().clone(),
            "optimizer": _to_cpu(self._opt_state()),
            "lr_scale": self._lr_scale,
            "evaluations": self.evaluations,
            "recoveries": self.recoveries,
            "elapsed": self.elapsed,
            "losses": dict(self._losses),
        }

    @classmethod
    def from_state_dict(cls, transfer: StyleTransfer, state: Mapping[str, Any]) -> "Run":
        """Rebuild a run saved by :meth:`state_dict`; ``transfer`` must have the same config."""
        if state.get("version") != CHECKPOINT_VERSION:
            raise ConfigError(f"checkpoint version {state.get('version')!r} is not supported")
        run = cls(transfer, state["content"], list(state["styles"]), init=state["init"])
        run._seed = int(state["seed"])
        run._generator = torch.Generator().manual_seed(run._seed)
        run.iteration = int(state["iteration"])
        run.level_index = int(state["level_index"])
        run.level_iteration = int(state["level_iteration"])
        run.evaluations = int(state["evaluations"])
        run.recoveries = int(state["recoveries"])
        run._lr_scale = float(state["lr_scale"])
        run._elapsed_before = float(state["elapsed"])
        run._t0 = time.perf_counter()
        run._losses = dict(state["losses"])
        if state["level_ready"]:
            run._start_level(image=state["image"].to(run.device))
            run._load_opt_state(state["optimizer"])
        else:
            # Between levels: the next level starts from the saved image, as it would have.
            run._x = state["image"].to(run.device)
        good = state.get("good")
        run._good = None if good is None else good.to(run.device)
        return run

    # --- internals ------------------------------------------------------------------------------
    def _start_level(self, image: Tensor | None = None) -> None:
        cfg = self.config
        level = self.level
        hw = _fit(self._reference, level.size)
        dev = self.device
        if image is None:
            if self._x is not None:
                image = self._upsample(self._x.detach(), hw)
            else:
                image = self._initial_image(hw)
        self._x = image.to(dev).contiguous()
        self._good = self._x.detach().clone()
        with torch.no_grad(), self._autocast():
            self._content_targets: dict[str, Tensor] = {}
            if cfg.uses_content:
                content = _resize(self._content, hw).to(dev)
                feats = self.transfer.encoder(content.contiguous(memory_format=torch.channels_last))
                self._content_targets = {n: feats[n].float().detach() for n in cfg.content_layers}
            self._gram_targets: dict[str, Tensor] = {}
            if cfg.uses_style:
                style_size = max(MIN_SIDE, round(level.size * cfg.style_scale))
                for weight, style in zip(self._weights, self._styles):
                    s = _resize(style, _fit(style, style_size)).to(dev)
                    feats = self.transfer.encoder(s.contiguous(memory_format=torch.channels_last))
                    for n in cfg.style_layers:
                        g = gram_matrix(feats[n]).detach() * weight
                        self._gram_targets[n] = self._gram_targets[n] + g if n in self._gram_targets else g
        self._make_optimizer()
        self._level_ready = True

    def _starting_image(self, hw: tuple[int, int]) -> Tensor | None:
        """The image a run starts from, at the final size ``hw`` and before any noise; ``None`` for
        noise. (Coarser levels resize it down, from an image no larger than the result.)"""
        cfg = self.config
        if cfg.init == "noise":
            return None
        if cfg.init == "content":
            base = self._content
        elif cfg.init == "style":
            base = self._styles[0]
        else:
            base = self._init_full
        base = _resize(base, hw)
        styles = self._styles
        if cfg.original_colors == "luminance" and cfg.init != "content":
            base = color.luminance(base)
        if cfg.init_colors == "style" and cfg.original_colors == "off" and cfg.init == "content" and styles:
            # The style loss's shallow layers (relu1_1 is nearly linear in colour) move the image to
            # the style's palette within the first iterations anyway; starting there saves them
            # (single scale at 512 px: the naive loop's 500-iteration loss in ~26 iterations, not ~30;
            # docs/benchmarks.md). With several styles, the palette of the most weighted one. An image
            # given as the start (a previous result, say) is the user's choice and stays as it is.
            main = styles[max(range(len(styles)), key=lambda i: self._weights[i])]
            base = color.match_color(base, _resize(main, _fit(main, max(hw))))
        return base

    def _initial_image(self, hw: tuple[int, int]) -> Tensor:
        cfg = self.config
        noise = torch.rand((1, 3, *hw), generator=self._generator)
        if self._start is None:
            return noise
        base = _resize(self._start, hw)
        if cfg.init_noise > 0:
            base = (1 - cfg.init_noise) * base + cfg.init_noise * noise
        return base.clone()

    def _upsample(self, coarse: Tensor, hw: tuple[int, int]) -> Tensor:
        """The start of a finer level: the coarser level's result resized to ``hw`` and, with
        ``keep_detail``, the starting image's detail band that the coarser size could not hold.

        Plain upsampling hands the next level a blurred image, and the finer level spent about as
        many iterations recovering as a single-scale run from the content image (tubingen at 256 →
        512 px: loss 7.3e7, mostly relu4_1's Gram term, ×75 from the end of the 256 px level; the
        content image scores 9.8e7). Adding ``start − up(down(start))`` — equivalently, the full-size
        start plus the *change* the coarse level made, upsampled — keeps the coarse level's large
        strokes and the start's sharp edges: the same hand-off (with the recoloured start as well)
        scores 3.6e7 (relu4_1 ×0.6, relu2_1 ×0.3, content ×0.7), and the run ends with a visibly sharper picture and a lower loss
        (docs/benchmarks.md).
        """
        image = _resize(coarse, hw)
        if not self.config.keep_detail or self._start is None:
            return image
        fine = _resize(self._start, hw)
        blurred = _resize(_resize(self._start, tuple(coarse.shape[-2:])), hw)
        return (image + fine.to(image) - blurred.to(image)).clamp(0, 1)

    def _make_optimizer(self) -> None:
        cfg = self.config
        lr = cfg.lr * self._lr_scale
        if cfg.optimizer == "lbfgs":
            # Bounded to the displayable range: unconstrained, L-BFGS drives pixels far outside
            # [0, 1] chasing the style, and the clamped image that is delivered then scores ~40 %
            # worse than the optimiser believes, worse the longer it runs (docs/benchmarks.md).
            self._opt: Any = LBFGS(
                history=lbfgs_history_for(cfg.lbfgs_history, self._x.shape),
                lr=lr,
                bounds=(0.0, 1.0),
                precondition=pyramid_preconditioner(self._x.shape, cfg.lbfgs_precondition),
            )
        elif cfg.optimizer == "adam":
            self._x.requires_grad_(True)
            self._opt = torch.optim.Adam([self._x], lr=lr)
        else:
            self._x.requires_grad_(True)
            self._opt = torch.optim.SGD([self._x], lr=lr)

    def _opt_state(self) -> dict[str, Any]:
        if isinstance(self._opt, LBFGS):
            # Its history tensors are replaced, never modified in place: sharing them is safe and
            # spares copying up to 2 × lbfgs_history images.
            return self._opt.state_dict()
        # torch optimisers update their state (Adam's moments, its step count) in place: copy it, or a
        # state dict kept in memory while the run goes on would drift with it.
        return copy.deepcopy(self._opt.state_dict())

    def _load_opt_state(self, state: dict[str, Any]) -> None:
        state = _to_device(state, self.device)
        self._opt.load_state_dict(state)

    def _autocast(self):
        dtype = self.transfer.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _objective(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, its gradient with respect to ``x``, and the stacked weighted terms (no host syncs)."""
        if self._stop.is_set():
            raise _Cancelled
        cfg = self.config
        self.evaluations += 1
        x = x.detach().requires_grad_(True)
        zero = x.new_zeros(())
        with torch.enable_grad():
            with self._autocast():
                feats = self.transfer.encoder(x.contiguous(memory_format=torch.channels_last))
            c_loss = zero
            if self._content_targets:
                fn = cosine_content_loss if cfg.content_loss == "cosine" else content_loss
                c_loss = sum(fn(feats[n], t) for n, t in self._content_targets.items()) / len(self._content_targets)
                c_loss = c_loss * cfg.content_weight
            s_loss = zero
            if self._gram_targets:
                s_loss = sum(
                    self._style_layer_weights[n] * style_loss(gram_matrix(feats[n]), t)
                    for n, t in self._gram_targets.items()
                )
                s_loss = s_loss * cfg.style_weight
            tv = total_variation(x) * cfg.tv_weight if cfg.tv_weight > 0 else zero
            total = c_loss + s_loss + tv
            (grad,) = torch.autograd.grad(total, x)
        terms = torch.stack([total.detach(), c_loss.detach(), s_loss.detach(), tv.detach()])
        return total.detach(), grad, terms

    def _step_once(self) -> None:
        cfg = self.config
        if cfg.optimizer == "lbfgs":

            def fn(point: Tensor):
                total, grad, terms = self._objective(point)
                return float(total), grad, terms

            _, terms = self._opt.step(self._x, fn)
        else:
            if cfg.optimizer == "sgd":
                # The Keras example's ExponentialDecay: lr · decay^(step / decay_steps), continuous.
                # Times the pixel count: every loss here is a mean, so a pixel's gradient shrinks as
                # the image grows, and a plain step size that suits 128 px would crawl at 1024 px.
                step_lr = cfg.lr * self._lr_scale * cfg.lr_decay ** (self.iteration / cfg.lr_decay_steps)
                step_lr *= self._x.shape[-1] * self._x.shape[-2]
                for group in self._opt.param_groups:
                    group["lr"] = step_lr
            total, grad, terms = self._objective(self._x)
            self._x.grad = grad
            self._opt.step()
            with torch.no_grad():
                # Projected step: first-order methods would otherwise push pixels far outside the
                # displayable range chasing the style (L-BFGS projects inside its own line search,
                # keeping its curvature pairs true to the steps taken).
                self._x.clamp_(0, 1)
        # One transfer from the device per iteration (progress reporting): the loss terms, plus the
        # image's sum that _check_finite reads (NaN/Inf anywhere makes the sum non-finite).
        x_sum = self._x.detach().sum().reshape(1)
        if terms is not None:
            values = torch.cat([terms.reshape(-1).to(x_sum.dtype), x_sum]).tolist()
        else:
            values = [math.nan] * 4 + x_sum.tolist()
        self._x_sum = values.pop()
        self._losses = dict(zip(LOSS_TERMS, values))

    def _check_finite(self) -> bool:
        """Catch NaN/Inf in the loss or the image: restore the last good image, make the optimiser more
        careful, and carry on; after MAX_RECOVERIES give up with a DivergenceError."""
        x_sum = self._x_sum  # read with the losses in _step_once
        if math.isfinite(self._losses["total"]) and math.isfinite(x_sum):
            self._good = self._x.detach().clone()
            return False
        self.recoveries += 1
        if self.recoveries > MAX_RECOVERIES:
            hint = (
                "try a smaller --style-weight or --content-weight"
                if self.config.optimizer == "lbfgs"
                else "try a smaller --learning-rate or --style-weight, or --optimizer lbfgs"
            )
            err = DivergenceError(f"the optimisation diverged (NaN/Inf) {self.recoveries} times; {hint}")
            err.image = self.current()  # type: ignore[attr-defined]
            raise err
        with torch.no_grad():
            self._x.copy_(self._good)
        if self.config.optimizer == "lbfgs":
            self._opt.reset()
        else:
            self._lr_scale *= 0.5
            self._make_optimizer()
        return True

    def _present(self, x: Tensor) -> Tensor:
        """The image as users see it: in [0, 1] (L-BFGS itself is unconstrained), colours applied."""
        if self.config.original_colors == "luminance" and self._content_full is not None:
            return color.join_luminance(x.clamp(0, 1), self._content_full.to(x.device))
        return x.clamp(0, 1)

    def _oom(self, exc: BaseException) -> ResourceError:
        h, w = self._x.shape[-2:] if self._x is not None else (self.level.size, self.level.size)
        fit = max(MIN_SIDE, int(self.level.size / 1.5) // 16 * 16)
        return ResourceError(
            f"out of memory at {w}x{h} px on {self.device.type}; try --size {fit}"
            + (" or --precision bf16" if self.transfer.autocast_dtype is None and self.device.type != "mps" else "")
        )


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj
