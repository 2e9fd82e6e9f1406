"""The strong-Wolfe line search of :class:`painterly.lbfgs.LBFGS`: bracketing and zoom with
safeguarded cubic interpolation (Nocedal & Wright, *Numerical Optimization*, algorithms 3.5 and 3.6).

Pure host-side logic over numbers the optimiser has already read from the device: ``phi(t)``
evaluates the objective at step ``t`` and returns ``(f, g, g·d, aux, extra)``, with ``f`` and ``g·d``
as Python floats (one device read per evaluation, in ``phi``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import Tensor

# (t, f, g, g·d, aux): a trial step, its loss, flat gradient, slope along the direction, and aux.
Trial = tuple[float, float, Tensor, float, Any]
Phi = Callable[[float], tuple[float, Tensor, float, Any, list]]


def strong_wolfe(
    phi: Phi, first: Trial, start: tuple[float, Tensor, float, Any], c1: float, c2: float, max_evals: int
) -> tuple[float, float, Tensor, Any]:
    """Strong-Wolfe line search from its first trial ``first``, already evaluated; ``start`` is
    ``(f, g, g·d, aux)`` at step 0. Returns ``(t, f, g, aux)`` of the accepted point, or ``t = 0``
    (and ``start``'s values) if no step decreased the loss within ``max_evals`` evaluations."""
    f0, g0, gtd0, aux0 = start
    prev: Trial = (0.0, f0, g0, gtd0, aux0)
    cur, evals = first, 1
    while True:
        t, f_t, g_t, gtd_t, aux_t = cur
        # `not (a <= b)` is true for NaN too: a step into NaN/Inf counts as too long.
        if not (f_t <= f0 + c1 * t * gtd0) or (evals > 1 and f_t >= prev[1]):
            return _zoom(phi, prev, cur, f0, gtd0, evals, c1, c2, max_evals)
        if abs(gtd_t) <= -c2 * gtd0:
            return t, f_t, g_t, aux_t
        if gtd_t >= 0:
            return _zoom(phi, cur, prev, f0, gtd0, evals, c1, c2, max_evals)
        # Still descending steeply: extrapolate to a longer step.
        t_next = cubic_min(prev[0], prev[1], prev[3], t, f_t, gtd_t, t + 0.01 * (t - prev[0]), t * 10)
        prev = cur
        if evals >= max_evals:
            break
        cur = (t_next, *phi(t_next)[:4])
        evals += 1
    # Out of evaluations while still descending: take the best point found.
    t_prev, f_prev, g_prev, _, aux_prev = prev
    return (t_prev, f_prev, g_prev, aux_prev) if t_prev > 0 else (0.0, f0, g0, aux0)


def _zoom(phi: Phi, lo: Trial, hi: Trial, f0: float, gtd0: float, evals: int, c1: float, c2: float, max_evals: int):
    while evals < max_evals:
        t_lo, f_lo, _, gtd_lo, _ = lo
        t_hi, f_hi, _, gtd_hi, _ = hi
        a, b = min(t_lo, t_hi), max(t_lo, t_hi)
        if b - a < 1e-12 * max(1.0, b):
            break
        # Stay away from the ends of the bracket so that it keeps shrinking.
        margin = 0.1 * (b - a)
        # (cubic_min falls back to the midpoint when f_hi is NaN/Inf.)
        t = cubic_min(t_lo, f_lo, gtd_lo, t_hi, f_hi, gtd_hi, a + margin, b - margin)
        f_t, g_t, gtd_t, aux_t, _ = phi(t)
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


def cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, lo: float, hi: float) -> float:
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
