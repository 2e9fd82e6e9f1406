"""One interface over the three optimisers of the image's pixels: L-BFGS, Adam and SGD.

An optimiser here owns nothing but its own memory (L-BFGS's curvature pairs, Adam's moments): the
image is passed to :meth:`Optimizer.step` and updated in place, and the loss comes from an
``evaluate(x) -> (LossTerms, grad)`` callable (the objective, or a wrapper of it).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..errors import PainterlyWarning
from ..graphs import Phase, PhaseGraphs, eager
from ..lbfgs import LBFGS
from ..precondition import pyramid_preconditioner
from .memory import GB, LBFGS_SHARE, available_bytes, lbfgs_history_for_memory
from .objective import LossTerms

Evaluate = Callable[[Tensor], "tuple[LossTerms, Tensor]"]

# L-BFGS remembers two images per step: a history of 100 at 2048×1536 px would be 7.5 GB, more than
# the network's own activations. It remembers fewer steps when the memory available asks for it
# (memory.LBFGS_SHARE of it), but not fewer than this.
MIN_LBFGS_HISTORY = 10


def lbfgs_history_for(requested: int, shape: Sequence[int], free: int | None = None) -> int:
    """The number of L-BFGS steps remembered for an image of ``shape``: ``requested``, capped so that
    the history (2 float32 images per step) stays within LBFGS_SHARE of ``free`` bytes (default: the
    memory available on the CPU now), but not below MIN_LBFGS_HISTORY."""
    free = available_bytes(torch.device("cpu")) if free is None else free
    return lbfgs_history_for_memory(requested, tuple(shape), free, MIN_LBFGS_HISTORY)


# What a step reports: the terms' values (:attr:`LossTerms.values`) followed by the image's sum (a
# checksum: NaN/Inf anywhere in the image makes it non-finite). Either still on the device (a 1-d
# tensor: the run reads it, one transfer) or already read by the optimiser with its own transfer (a
# tuple of floats), so that an iteration costs at most one device→host read.
Report = "Tensor | tuple[float, ...] | None"


def report(terms: LossTerms, image: Tensor) -> Tensor:
    """The step's report on the device: ``[*terms.values, image.sum()]``."""
    return torch.cat([terms.values.reshape(-1), image.detach().sum().reshape(1).to(terms.values.dtype)])


class Optimizer(Protocol):
    def step(self, x: Tensor, evaluate: Evaluate, iteration: int) -> Report:
        """One iteration: update ``x`` in place (kept in [0, 1]); return its :data:`Report`, or
        ``None`` when none is known (L-BFGS just reset)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimiser's memory (tensors may be shared with it, never modified later)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def objective_changed(self) -> None:
        """The objective changed before this iteration (the sliced loss's new directions)."""
        ...


def phase_runner(device: torch.device) -> Callable[[Phase], Phase]:
    """How L-BFGS's device work runs on ``device``: as CUDA graphs on CUDA (an iteration outside
    its evaluations is then a few graph launches instead of ~150 kernels; benchmarks/launches.py),
    as Python elsewhere."""
    return PhaseGraphs(device) if device.type == "cuda" else eager


class LBFGSOptimizer:
    """Projected L-BFGS in the box [0, 1] with the smoothing preconditioner (see :mod:`painterly.lbfgs`).

    Bounded to the displayable range: unconstrained, L-BFGS drives pixels far outside [0, 1] chasing
    the style, and the clamped image that is delivered then scores ~40 % worse than the optimiser
    believes (docs/benchmarks.md).
    """

    def __init__(self, config: Config, shape: Sequence[int], lr: float, device: torch.device = torch.device("cpu")) -> None:
        free = available_bytes(device)
        history = lbfgs_history_for(config.lbfgs_history, shape, free)
        if history < config.lbfgs_history:
            h, w = shape[-2:]
            warnings.warn(
                f"L-BFGS remembers {history} steps at {w}x{h} px, not `lbfgs_history` {config.lbfgs_history}: "
                f"{history * 8 * math.prod(shape) / GB:.1f} GB (at most {LBFGS_SHARE:.0%} of the {free / GB:.1f} GB available)",
                PainterlyWarning,
                stacklevel=3,
            )
        self.lbfgs = LBFGS(
            history=history,
            lr=lr,
            bounds=(0.0, 1.0),
            precondition=pyramid_preconditioner(tuple(shape), config.lbfgs_precondition),
            read_aux=True,
            phases=phase_runner(device) if config.cuda_graphs else eager,
        )

    def step(self, x: Tensor, evaluate: Evaluate, iteration: int) -> Report:
        def fn(point: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            terms, grad = evaluate(point)
            # The report rides along as L-BFGS's "aux", read in the same transfer as the line search's
            # numbers; the point accepted is the image after the step, so its sum is the image's.
            return terms.total, grad, report(terms, point)

        _, values = self.lbfgs.step(x, fn)
        return values

    def reset(self) -> None:
        """Forget the curvature history (after the run restored an earlier image)."""
        self.lbfgs.reset()

    def objective_changed(self) -> None:
        """Re-evaluate the loss at the current point before the next line search: measured on the
        sliced loss (docs/style-losses.md), a line search started from the old objective's value
        spends ~4 evaluations per iteration."""
        self.lbfgs.forget_value()

    def state_dict(self) -> dict[str, Any]:
        return self.lbfgs.state_dict()  # fresh tensors: the ring buffers change in place

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lbfgs.load_state_dict(state)


class FirstOrderOptimizer:
    """Adam, or SGD with the Keras example's exponential decay, as projected steps in [0, 1]."""

    def __init__(self, config: Config, x: Tensor, lr: float) -> None:
        self.config = config
        self.lr = lr
        x.requires_grad_(True)
        make = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
        self.torch_optimizer = make([x], lr=lr)

    def step(self, x: Tensor, evaluate: Evaluate, iteration: int) -> Report:
        cfg = self.config
        if cfg.optimizer == "sgd":
            # lr · decay^(step / decay_steps), continuous. Times the pixel count: every loss here is a
            # mean, so a pixel's gradient shrinks as the image grows, and a plain step size that suits
            # 128 px would crawl at 1024 px.
            step_lr = self.lr * cfg.lr_decay ** (iteration / cfg.lr_decay_steps)
            step_lr *= x.shape[-1] * x.shape[-2]
            for group in self.torch_optimizer.param_groups:
                group["lr"] = step_lr
        terms, grad = evaluate(x)
        x.grad = grad
        self.torch_optimizer.step()
        with torch.no_grad():
            # Projected step: first-order methods would otherwise push pixels far outside the
            # displayable range chasing the style (L-BFGS projects inside its own line search).
            x.clamp_(0, 1)
        return report(terms, x)

    def objective_changed(self) -> None:
        """Nothing to do: each step evaluates the loss afresh."""

    def state_dict(self) -> dict[str, Any]:
        # torch optimisers update their state (Adam's moments, its step count) in place: copy it, or a
        # snapshot kept in memory while the run goes on would drift with it.
        return copy.deepcopy(self.torch_optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.torch_optimizer.load_state_dict(state)


def make_optimizer(config: Config, x: Tensor, lr_scale: float = 1.0) -> Optimizer:
    """The optimiser ``config`` names, for the image ``x`` (``lr_scale`` shrinks the step after a
    divergence)."""
    lr = config.lr * lr_scale
    if config.optimizer == "lbfgs":
        return LBFGSOptimizer(config, x.shape, lr, x.device)
    return FirstOrderOptimizer(config, x, lr)
