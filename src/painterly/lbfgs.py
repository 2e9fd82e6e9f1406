"""L-BFGS with a strong-Wolfe line search, one iteration per call.

Why not ``torch.optim.LBFGS``? Called with ``max_iter=1`` (which a step-by-step run with progress,
cancellation and checkpoints needs) it re-evaluates the loss at the current point at the start of
every call: one wasted forward+backward pass of VGG19 per iteration, doubling the cost. Here the loss
and gradient at the current point are kept between calls, the whole state is a plain dict for
checkpoints, and the history can be reset when the run recovers from a NaN.

Algorithms: the two-loop recursion and the line search (bracketing + zoom with safeguarded cubic
interpolation) of Nocedal & Wright, *Numerical Optimization*, algorithms 7.4, 3.5 and 3.6.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

# f_and_g(point) -> (loss, flat gradient, aux): loss a Python float, aux anything the caller wants
# back for the accepted point (painterly passes the per-term losses).
Objective = Callable[[Tensor], tuple[float, Tensor, Any]]


class LBFGS:
    """Minimise a function of one tensor, one iteration per :meth:`step`.

    Args:
        history: number of (s, y) pairs remembered.
        lr: the first trial step of each line search (1 is natural for a quasi-Newton direction).
        max_evals: the most function evaluations one line search may spend.
        c1, c2: the Wolfe constants (sufficient decrease, curvature).
        bounds: ``(low, high)`` to keep every element of ``x`` in a box (``None``: unconstrained).
            A projected variant: ``x`` is clamped into the box first; variables at a bound whose
            gradient points out of the box are held there for the iteration; the line search follows
            the projected path ``clamp(x + t·d)`` (with its directional derivative), and the stored
            pair is the step actually taken, so the curvature pairs stay true secant pairs.
        first_step: with ``bounds``, the first trial step along steepest descent (no curvature
            known yet) moves the fastest-moving element by this fraction of the box's width, times
            ``lr``. Without bounds there is no natural scale, and the step moves ``x`` by ``lr`` in
            L1 norm in total, as torch.optim.LBFGS does.
        precondition: a symmetric positive-definite operator ``P`` on flat vectors: the two-loop
            recursion starts from ``H₀ = γ·P`` instead of ``γ·I`` (painterly passes
            :func:`painterly.precondition.pyramid_preconditioner`). ``None``: plain L-BFGS.
    """

    def __init__(
        self,
        history: int = 100,
        lr: float = 1.0,
        max_evals: int = 25,
        c1: float = 1e-4,
        c2: float = 0.9,
        bounds: tuple[float, float] | None = None,
        first_step: float = 0.05,
        precondition: Callable[[Tensor], Tensor] | None = None,
    ):
        self.bounds = bounds
        self.precondition = precondition
        self.first_step = first_step
        self.history = history
        self.lr = lr
        self.max_evals = max_evals
        self.c1, self.c2 = c1, c2
        self.reset()

    # ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the curvature history and the cached loss (e.g. after restoring an earlier image)."""
        self.old_s: list[Tensor] = []
        self.old_y: list[Tensor] = []
        self.rho: list[float] = []
        self.h_diag = 1.0
        self.n_iter = 0
        self.f: float | None = None
        self.g: Tensor | None = None
        self.aux: Any = None
        self.evals = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "old_s": list(self.old_s),
            "old_y": list(self.old_y),
            "rho": list(self.rho),
            "h_diag": self.h_diag,
            "n_iter": self.n_iter,
            "f": self.f,
            "g": self.g,
            "aux": self.aux,
            "evals": self.evals,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.old_s = list(state["old_s"])
        self.old_y = list(state["old_y"])
        self.rho = list(state["rho"])
        self.h_diag = float(state["h_diag"])
        self.n_iter = int(state["n_iter"])
        self.f = state["f"]
        self.g = state["g"]
        self.aux = state["aux"]
        self.evals = int(state["evals"])

    # ----------------------------------------------------------------------------------------
    def _evaluate(self, fn: Objective, point: Tensor) -> tuple[float, Tensor, Any]:
        self.evals += 1
        f, g, aux = fn(point)
        return f, g.reshape(-1), aux

    def _direction(self, g: Tensor) -> Tensor:
        """The two-loop recursion: −H·g with H the L-BFGS inverse-Hessian estimate.

        The coefficients stay 0-d tensors on the vectors' device: on a GPU, converting each of the
        2 × history dot products to a Python float would wait for the device every time.
        """
        q = g.neg()
        alphas = []
        for s, y, rho in zip(reversed(self.old_s), reversed(self.old_y), reversed(self.rho)):
            a = s.dot(q) * rho
            alphas.append(a)
            q.addcmul_(y, a, value=-1.0)
        if self.precondition is not None:
            q = self.precondition(q)
        q.mul_(self.h_diag)
        for (s, y, rho), a in zip(zip(self.old_s, self.old_y, self.rho), reversed(alphas)):
            b = y.dot(q) * rho
            q.addcmul_(s, a - b)
        return q

    def step(self, x: Tensor, fn: Objective) -> tuple[float, Any]:
        """One iteration: updates ``x`` in place and returns (loss, aux) at the new point.

        If no step along the search direction decreases the loss (a flat or broken region), ``x`` is
        left as it was and the history is cleared, so the next call starts again from steepest descent.
        """
        flat = x.detach().view(-1)
        bounds = self.bounds
        if self.f is None or self.g is None:
            if bounds is not None:
                with torch.no_grad():
                    flat.clamp_(*bounds)
            self.f, self.g, self.aux = self._evaluate(fn, x.detach())
        f0, g0 = self.f, self.g
        # With bounds, the variables pinned at a bound by their gradient take no part this iteration.
        free = None if bounds is None else ~_leaving_box(flat, g0.neg(), bounds)
        gf = g0 if free is None else g0 * free
        if self.n_iter == 0 or not self.old_s:
            d = gf.neg()
            t = self._first_trial(gf)
        else:
            d = self._direction(gf)
            if free is not None:
                # Nothing moves out of the box from a bound: then g·d is the projected path's slope.
                d.mul_(free & ~_leaving_box(flat, d, bounds))
            t = self.lr
        gtd0 = float(g0.dot(d))
        if not gtd0 < 0:  # not a descent direction (numerical trouble): fall back to the gradient
            self.old_s, self.old_y, self.rho = [], [], []
            d = gf.neg()
            gtd0 = float(g0.dot(d))
            t = self._first_trial(gf)
            if not gtd0 < 0:  # zero gradient: a stationary point, nothing to do
                self.n_iter += 1
                return f0, self.aux

        def point_at(step: float) -> Tensor:
            point = flat + step * d
            return point if bounds is None else point.clamp_(*bounds)

        def phi(step: float) -> tuple[float, Tensor, float, Any]:
            point = point_at(step)
            f, g, aux = self._evaluate(fn, point.view_as(x))
            if bounds is None:
                return f, g, float(g.dot(d)), aux
            # The projected path moves only the variables strictly inside the box at this step.
            moving = (point > bounds[0]) & (point < bounds[1])
            return f, g, float(g.dot(d * moving)), aux

        t, f_new, g_new, aux = self._line_search(phi, t, f0, g0, gtd0)
        self.n_iter += 1
        if t == 0.0:
            self.old_s, self.old_y, self.rho = [], [], []
            return f0, self.aux
        s = d.mul(t) if bounds is None else point_at(t).sub_(flat)
        y = g_new - g0
        ys = float(y.dot(s))
        if ys > 1e-10:  # keep only pairs with positive curvature: H must stay positive definite
            if len(self.old_s) == self.history:
                self.old_s.pop(0)
                self.old_y.pop(0)
                self.rho.pop(0)
            self.old_s.append(s)
            self.old_y.append(y)
            self.rho.append(1.0 / ys)
            self.h_diag = ys / float(y.dot(y))
        with torch.no_grad():
            flat.add_(s)
        self.f, self.g, self.aux = f_new, g_new, aux
        return f_new, aux

    def _first_trial(self, gf: Tensor) -> float:
        """The first trial step along ``-gf`` when no curvature is known (see ``first_step``)."""
        if self.bounds is not None:
            # An image's pixel scale is known: moving the furthest pixel by a fixed fraction of the
            # box (first_step, 5 % by default) is a sensible first guess. The L1 rule below moves a
            # 512 px image by ~1e-6 per pixel, so its line search spends four or five evaluations (a
            # few seconds) just growing the step.
            width = self.bounds[1] - self.bounds[0]
            return self.first_step * width / max(float(gf.abs().max()), 1e-30) * self.lr
        return min(1.0, 1.0 / max(float(gf.abs().sum()), 1e-30)) * self.lr

    # ----------------------------------------------------------------------------------------
    def _line_search(self, phi, t: float, f0: float, g0: Tensor, gtd0: float):
        """Strong-Wolfe line search. Returns (t, f, g, aux) of the accepted point, or t = 0 if none."""
        c1, c2 = self.c1, self.c2
        t_prev, f_prev, g_prev, gtd_prev, aux_prev = 0.0, f0, g0, gtd0, self.aux
        evals = 0
        while evals < self.max_evals:
            f_t, g_t, gtd_t, aux_t = phi(t)
            evals += 1
            # `not (a <= b)` is true for NaN too: a step into NaN/Inf counts as too long.
            if not (f_t <= f0 + c1 * t * gtd0) or (evals > 1 and f_t >= f_prev):
                return self._zoom(phi, (t_prev, f_prev, g_prev, gtd_prev, aux_prev), (t, f_t, g_t, gtd_t, aux_t), f0, gtd0, evals)
            if abs(gtd_t) <= -c2 * gtd0:
                return t, f_t, g_t, aux_t
            if gtd_t >= 0:
                return self._zoom(phi, (t, f_t, g_t, gtd_t, aux_t), (t_prev, f_prev, g_prev, gtd_prev, aux_prev), f0, gtd0, evals)
            # Still descending steeply: extrapolate to a longer step.
            t_next = _cubic_min(t_prev, f_prev, gtd_prev, t, f_t, gtd_t, t + 0.01 * (t - t_prev), t * 10)
            t_prev, f_prev, g_prev, gtd_prev, aux_prev = t, f_t, g_t, gtd_t, aux_t
            t = t_next
        # Out of evaluations while still descending: take the best point found.
        return (t_prev, f_prev, g_prev, aux_prev) if t_prev > 0 else (0.0, f0, g0, self.aux)

    def _zoom(self, phi, lo, hi, f0: float, gtd0: float, evals: int):
        c1, c2 = self.c1, self.c2
        while evals < self.max_evals:
            t_lo, f_lo, _, gtd_lo, _ = lo
            t_hi, f_hi, _, gtd_hi, _ = hi
            a, b = min(t_lo, t_hi), max(t_lo, t_hi)
            if b - a < 1e-12 * max(1.0, b):
                break
            # Stay away from the ends of the bracket so that it keeps shrinking.
            margin = 0.1 * (b - a)
            # (_cubic_min falls back to the midpoint when f_hi is NaN/Inf.)
            t = _cubic_min(t_lo, f_lo, gtd_lo, t_hi, f_hi, gtd_hi, a + margin, b - margin)
            f_t, g_t, gtd_t, aux_t = phi(t)
            evals += 1
            point = (t, f_t, g_t, gtd_t, aux_t)
            if not (f_t <= f0 + c1 * t * gtd0) or f_t >= f_lo:
                hi = point
            else:
                if abs(gtd_t) <= -c2 * gtd0:
                    return t, f_t, g_t, aux_t
                if gtd_t * (t_hi - t_lo) >= 0:
                    hi = lo
                lo = point
        t_lo, f_lo, g_lo, _, aux_lo = lo
        if t_lo == 0.0:
            return 0.0, f0, g_lo, aux_lo
        return t_lo, f_lo, g_lo, aux_lo


def _leaving_box(flat: Tensor, direction: Tensor, bounds: tuple[float, float]) -> Tensor:
    """Mask of the elements at a bound that ``direction`` would move out of the box."""
    return ((flat <= bounds[0]) & (direction < 0)) | ((flat >= bounds[1]) & (direction > 0))


def _cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, lo: float, hi: float) -> float:
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to [lo, hi]
    (Nocedal & Wright eq. 3.59); the midpoint when the cubic has no minimum or the numbers misbehave."""
    if lo > hi:
        lo, hi = hi, lo
    try:
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_sq = d1 * d1 - g1 * g2
        if d2_sq >= 0:
            d2 = math.sqrt(d2_sq)
            if x1 <= x2:
                x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            if math.isfinite(x):
                return min(max(x, lo), hi)
    except (ZeroDivisionError, OverflowError, ValueError):
        pass
    return 0.5 * (lo + hi)
