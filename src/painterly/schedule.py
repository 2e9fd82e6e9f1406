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
      split equally between the levels (the rounding remainder goes to the final one).

    Why equal, not coarse-heavy (measured at 512 px, docs/benchmarks.md): iterations at the coarse
    levels buy the large-scale arrangement (the big swirls), but little of the final loss. Even with
    the start's detail kept at each level change (``keep_detail``), the upsampled coarse result is
    far from the finer level's style statistics again (mostly relu4_1's), and the final level needs
    ~21 iterations to reach what a single-scale run reaches in ~26; coarse iterations past the first
    ten or so change the final loss by a few per cent. The former 4:2:1 split spent most of the
    budget where it was cheap but of little use; an equal split keeps the coarse-to-fine look and
    reaches a given loss in about half the time (as does 1:2:4, which would make large sizes far
    slower: 2048 px would spend half of all iterations at 2048 px).
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
    counts = [total // len(sizes)] * len(sizes)
    counts[-1] += total - sum(counts)  # rounding remainder to the final level
    # Every level gets at least one step when there are enough iterations to go round.
    levels = [Level(s, c) for s, c in zip(sizes, counts) if c > 0]
    return tuple(levels) if levels else (Level(size, total),)
