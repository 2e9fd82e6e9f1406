"""The largest ``size`` this server offers: what fits its memory, with the tiled evaluation.

With tiles (engine/tiled.py) the network's activations no longer grow with the image: the engine
keeps them within ``memory.ACTIVATION_SHARE`` of the memory available by choosing the tile. What still
grows with the pixels is the rest of a level: L-BFGS's history (the engine remembers as many steps as
fit in ``memory.LBFGS_SHARE``, but never fewer than ``MIN_LBFGS_HISTORY``,
:func:`~painterly.engine.memory.lbfgs_history_for_memory`) and the image-sized buffers (the image and
its copies, the gradient, the content targets, the optimiser's own vectors). The largest size is the
largest square side whose history, as the engine would choose it, plus those buffers fit in the memory
the activations leave. A square is the worst case for a longest side; other aspects fit with room.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import MAX_SIZE, Config
from ..engine.memory import ACTIVATION_SHARE, GB, available_bytes, lbfgs_history_for_memory
from ..engine.optimizers import MIN_LBFGS_HISTORY
from .options import Limits

BUFFER_BYTES_PER_PIXEL = 256
"""Bytes per output pixel besides the history and the activations. Calibrated on the 4096×3072 run of
docs/benchmarks.md ("Huge images"): 7.6 GB peak − 3.0 GB history − ~1.7 GB of tile activations
(a 1184² px crop in bf16) ≈ 2.9 GB over 12.6 megapixels ≈ 230 bytes a pixel."""

STYLE_BYTES_PER_PIXEL = 12
"""A style image is held as a float32 tensor and encoded by tiles without gradients: its own 12 bytes a pixel."""

FLOOR = 256
"""The smallest limit offered, whatever the estimate (a machine short of that much memory has other troubles)."""
STEP = 16


@dataclass(frozen=True)
class Capacity:
    """The largest side that fits ``free`` bytes (per worker) and why: what a page shows."""

    max_size: int
    free: int
    history: int
    """L-BFGS steps the engine would remember at ``max_size`` (0 for Adam and SGD)."""

    def note(self) -> str:
        steps = f", L-BFGS remembering {self.history} steps" if self.history else ""
        return f"up to {self.max_size} px: what fits {self.free / GB:.1f} GB with tiles{steps}"


def level_bytes(side: int, free: int, config: Config, styles: int = 1) -> int:
    """Estimated bytes of a ``side`` × ``side`` level besides the activations: the history the engine
    would choose from ``free``, the image-sized buffers and the styles (``side × style_scale``)."""
    pixels = side * side
    history = 0
    if config.optimizer == "lbfgs":
        steps = lbfgs_history_for_memory(config.lbfgs_history, (1, 3, side, side), free, MIN_LBFGS_HISTORY)
        history = steps * 2 * 4 * 3 * pixels
    style_pixels = styles * int(side * config.style_scale) ** 2
    return history + BUFFER_BYTES_PER_PIXEL * pixels + STYLE_BYTES_PER_PIXEL * style_pixels


def fits(side: int, free: int, config: Config, styles: int = 1) -> bool:
    """Whether a level of ``side`` px fits in what the activations (ACTIVATION_SHARE) leave of ``free``."""
    return level_bytes(side, free, config, styles) <= (1 - ACTIVATION_SHARE) * free


def largest_size(config: Config, free: int, ceiling: int = MAX_SIZE) -> Capacity:
    """The largest multiple of STEP (FLOOR ≤ it ≤ ``ceiling``) that :func:`fits` ``free`` bytes."""
    lo, hi = FLOOR // STEP, max(FLOOR, ceiling) // STEP
    if fits(hi * STEP, free, config):
        lo = hi
    while lo < hi:  # level_bytes grows with the side: the largest that fits, by bisection
        mid = (lo + hi + 1) // 2
        if fits(mid * STEP, free, config):
            lo = mid
        else:
            hi = mid - 1
    side = lo * STEP
    steps = lbfgs_history_for_memory(config.lbfgs_history, (1, 3, side, side), free, MIN_LBFGS_HISTORY)
    return Capacity(side, free, steps if config.optimizer == "lbfgs" else 0)


def server_capacity(config: Config, workers: int = 1, free: int | None = None) -> Capacity:
    """:func:`largest_size` for this machine now: the memory available on ``config``'s device (see
    :func:`~painterly.engine.memory.available_bytes`), shared by ``workers`` jobs running at once."""
    from ..devices import resolve_device

    if free is None:
        free = available_bytes(resolve_device(config.device))
    return largest_size(config, max(1, free // max(1, workers)))


def memory_limits(config: Config, workers: int = 1, free: int | None = None) -> tuple[Limits, Capacity]:
    """The server's :class:`~painterly.web.options.Limits` with ``max_size`` from
    :func:`server_capacity` (and the whole-job pixel budget scaled with it, four outputs' worth)."""
    capacity = server_capacity(config, workers, free)
    return Limits(max_size=capacity.max_size, max_total_pixels=4 * capacity.max_size**2), capacity
