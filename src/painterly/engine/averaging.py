"""Iterate averaging (``--average DECAY``): the image shown and saved is an exponential moving average
of the optimiser's iterates, which smooths the flicker of L-BFGS's last steps and of the sliced loss's
random directions. Restarted at each level (a level's iterates are at another size); bias-corrected
like Adam's moments, so the first average is the first iterate, not ``(1 − decay) ×`` it."""

from __future__ import annotations

from torch import Tensor


def update_average(average: Tensor | None, x: Tensor, decay: float) -> Tensor:
    """The raw (uncorrected) average after one more iterate ``x``: ``decay·a + (1 − decay)·x``, from
    ``a = 0`` when ``average`` is ``None``. A new tensor (snapshots of the old one stay valid)."""
    x = x.detach()
    return x * (1 - decay) if average is None else average.lerp(x, 1 - decay)


def corrected_average(average: Tensor, decay: float, steps: int) -> Tensor:
    """The bias-corrected average ``a / (1 − decay^steps)`` after ``steps`` ≥ 1 iterates: a weighted
    mean of them, weights ``∝ decay^age`` summing to 1."""
    return average / (1 - decay**steps)
