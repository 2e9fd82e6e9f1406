"""Coarse-to-fine schedules: which sizes a run visits and how many iterations each gets.

Why coarse to fine: an iteration at 128 px costs 1/16 of one at 512 px, and at low resolution the
optimiser settles the large-scale arrangement of the style (the long strokes, the big colour fields)
that it struggles to move at full size, where each step is local. Each level's result, upsampled,
starts the next, whose job is then only to add detail.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config


@dataclass(frozen=True)
class Level:
    """One stage of a run: optimise at ``size`` (longest side, px) for ``iterations`` steps."""

    size: int
    iterations: int


def plan_levels(config: Config) -> tuple[Level, ...]:
    """The levels of a run, coarse to fine; the last one is always at ``config.size``.

    * ``--no-multiscale``: one level.
    * ``--level-iterations a,b,c``: that many levels, sizes spaced geometrically from ``--min-size``
      to ``--size``.
    * otherwise: sizes halve from ``--size`` down to no less than ``--min-size``; the iterations are
      shared out 2 : 1 : … : 1 : 2 — two shares each for the coarsest and the final level, one for
      each level between (two levels: equal) — with the rounding remainder on the final level.

    Why this split (measured at 512 px, tubingen × starry_night, docs/benchmarks.md):

    * The coarsest level draws the large-scale arrangement, the big swirls of the sky, and it is
      cheap (1/16 of a final-size iteration at 128 px). Runs with 18 or more iterations there have
      the large swirls whatever the 256 px level got; with 10 they are visibly smaller.
    * The final level decides the loss. The upsampled coarse result lacks the style's finest octave
      (relu4_1's Gram term jumps at every level change), and the final level needs ~20 iterations to
      rebuild it, however many the coarse levels had: iterations at the coarse levels beyond what
      the look needs change the final loss by a few per cent.
    * The levels between carry the hand-off; their iterations cost 1/4 of a final one at 256 px and
      bought neither look nor loss beyond the first few.

    Against the former equal split this reaches a given loss ~13 % sooner with the same large strokes
    (47 iterations, 18/9/20, vs 60, 20/20/20). 4:2:1 (coarse-heavy) starved the final level; 1:2:4
    would make large sizes slow (half of all iterations at 2048 px).
    """
    size, total = config.size, config.iterations
    if config.level_iterations is not None:
        counts = config.level_iterations
        n = len(counts)
        if not config.multiscale or n == 1:
            return (Level(size, sum(counts)),)
        low = min(config.min_size, size)
        sizes = [round(low * (size / low) ** (i / (n - 1))) for i in range(n)]
        sizes[-1] = size
        return tuple(Level(s, it) for s, it in zip(sizes, counts) if it > 0) or (Level(size, sum(counts)),)
    if not config.multiscale:
        return (Level(size, total),)
    sizes = [size]
    while sizes[-1] // 2 >= config.min_size:
        sizes.append(sizes[-1] // 2)
    sizes.reverse()
    if len(sizes) == 1:
        return (Level(size, total),)
    shares = [2] + [1] * (len(sizes) - 2) + [2] if len(sizes) > 2 else [1] * len(sizes)
    counts = [total * share // sum(shares) for share in shares]
    counts[-1] += total - sum(counts)  # rounding remainder to the final level
    # Every level gets at least one step when there are enough iterations to go round.
    levels = [Level(s, c) for s, c in zip(sizes, counts) if c > 0]
    return tuple(levels) if levels else (Level(size, total),)
