"""What a run is at one moment, as one frozen value: :class:`RunState` (checkpoints save it whole),
and what a run reports after each iteration: :class:`Progress`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import ConfigError


@dataclass(frozen=True)
class RunState:
    """The whole state of a run (with its :class:`~painterly.engine.inputs.Inputs` and config).

    ``image`` is at the current level's size when ``level_ready`` (the first level's starting image, or
    the image being optimised); otherwise it is the previous level's result, which the current level
    upsamples when it starts. ``good`` is the last image without NaN/Inf (what a stopped or failed run
    delivers); ``optimizer`` the optimiser's memory once the level has taken a step. Tensors are
    ``(1, 3, H, W)`` float32.
    """

    seed: int
    image: Tensor
    iteration: int = 0
    level_index: int = 0
    level_iteration: int = 0
    level_ready: bool = False
    good: Tensor | None = None
    optimizer: Mapping[str, Any] | None = None
    lr_scale: float = 1.0
    evaluations: int = 0
    recoveries: int = 0
    elapsed: float = 0.0
    losses: Mapping[str, float] = field(default_factory=dict)
    level_started: float = 0.0
    """``elapsed`` when the current level's first iteration ended: its rate is measured from there
    (that iteration pays the level's set-up: targets, warm-up)."""
    average: Tensor | None = None
    """``--average``: the raw moving average of this level's iterates (engine/averaging.py)."""

    def replace(self, **changes: Any) -> "RunState":
        """A copy with ``changes`` (field names) applied: the state itself never changes."""
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> "RunState":
        """The same state with every tensor on ``device``."""
        return self.replace(
            image=self.image.to(device),
            good=None if self.good is None else self.good.to(device),
            average=None if self.average is None else self.average.to(device),
            optimizer=None if self.optimizer is None else _move(self.optimizer, device),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values and CPU tensors: ``torch.save``-able, loadable with ``weights_only=True``."""
        moved = self.to("cpu")
        data = {f.name: getattr(moved, f.name) for f in dataclasses.fields(moved)}
        data["losses"] = dict(self.losses)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        """The inverse of :meth:`to_dict`; a field of the wrong type is a :class:`ConfigError` naming it."""
        if not isinstance(data, Mapping):
            raise ConfigError("the checkpoint's run state is not a mapping")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                    raise ConfigError(f"the checkpoint has no {f.name}")
                continue
            values[f.name] = _checked(f.name, data[f.name])
        return cls(**values)


def _checked(name: str, value: Any) -> Any:
    kinds: dict[str, Any] = {
        "seed": int, "iteration": int, "level_index": int, "level_iteration": int, "evaluations": int,
        "recoveries": int, "level_ready": bool, "lr_scale": float, "elapsed": float, "level_started": float,
    }
    if name in kinds:
        kind = kinds[name]
        ok = isinstance(value, bool) if kind is bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
        )
        if not ok or (kind is not bool and not math.isfinite(value)) or (kind is int and value < 0):
            raise ConfigError(f"the checkpoint's {name} is not a valid {kind.__name__}: {value!r:.60}")
        return kind(value)
    if name in ("image", "good", "average"):
        if value is None and name != "image":
            return None
        if not isinstance(value, Tensor) or value.ndim != 4 or value.shape[:2] != (1, 3) or not value.is_floating_point():
            raise ConfigError(f"the checkpoint's {name} is not a (1, 3, H, W) float image")
        return value.float()
    if name == "optimizer":
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError("the checkpoint's optimizer state is not a mapping")
        return value
    if name == "losses":
        if not isinstance(value, Mapping) or not all(isinstance(v, (int, float)) for v in value.values()):
            raise ConfigError("the checkpoint's losses are not a mapping of numbers")
        return {str(k): float(v) for k, v in value.items()}
    return value


def _move(obj: Any, device: torch.device | str) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().to(device)
    if isinstance(obj, Mapping):
        return {k: _move(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device) for v in obj)
    return obj


@dataclass(frozen=True)
class Progress:
    """What a run reports after each iteration.

    ``losses`` holds the *weighted* terms (``content``, ``style``, ``tv``, ...) and their sum ``total``,
    at the current level's size. ``image`` is the current image, ``(1, 3, H, W)`` float32 in [0, 1] on
    the run's device; it is only valid during the loop's body (clone it to keep it). ``size`` is
    ``(height, width)``.

    Work: an iteration at 512 px costs ~16× one at 128 px, so the share of iterations done says little
    about the time left in a multi-scale run. ``work_done`` / ``work_total`` count megapixel-iterations
    (each level's iterations times its pixels, known before the run starts); ``work_rate`` is the
    megapixel-iterations per second measured at the current level (after its first iteration, which
    pays the level's set-up; until then, the previous level's). :attr:`work_fraction`, :attr:`eta`
    and :attr:`level_rate` are what a progress display shows.
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
    work_done: float = 0.0
    work_total: float = 0.0
    work_rate: float = 0.0
    tiles: tuple[tuple[int, int, int, int], ...] = ()
    """The current level's tiles when it is evaluated by tiles (engine/tiled.py): ``(top, left,
    height, width)`` of each tile's own pixels in the image of ``size``; empty when it is evaluated whole."""

    @property
    def loss(self) -> float:
        """The weighted total, ``losses["total"]``."""
        return self.losses["total"]

    @property
    def fraction(self) -> float:
        """Share of the iterations done (see :attr:`work_fraction` for the share of the work)."""
        return self.iteration / self.total_iterations

    @property
    def work_fraction(self) -> float:
        """Share of the run's work done, in [0, 1]: what a progress bar should fill."""
        return self.work_done / self.work_total if self.work_total > 0 else self.fraction

    @property
    def eta(self) -> float | None:
        """Seconds left: the work left at the current level's pace (pixel-weighted, so it holds
        across levels); ``None`` before any pace was measured."""
        if self.work_rate <= 0:
            return None
        return max(0.0, self.work_total - self.work_done) / self.work_rate

    @property
    def level_rate(self) -> float:
        """Iterations per second at the current level (not an average over the levels so far)."""
        return self.work_rate / (self.size[0] * self.size[1] / 1e6)
