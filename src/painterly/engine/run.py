"""One optimisation: the level loop, progress, stopping and recovery from NaN/Inf.

A :class:`Run` walks the levels of its schedule. At each level's start it computes the
:class:`~painterly.engine.targets.Targets` once, builds the objective and the optimiser, and then
each :meth:`Run.step` is one optimiser iteration, reported as a :class:`Progress`. Everything it would
need to continue later is one :class:`RunState` (:attr:`Run.state`), which :meth:`Run.state_dict`
saves with the inputs and the config.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from .. import color
from ..errors import ConfigError, DivergenceError, ResourceError, shown
from ..schedule import Level, plan_levels
from .averaging import corrected_average, update_average
from .inputs import Inputs
from .objective import LossTerms, Objective, Term, build_objective, check_terms
from .targets import Targets, build_targets
from .optimizers import LBFGSOptimizer, Optimizer, make_optimizer
from .tiled import TiledEvaluation, level_tiles
from .pyramid import MIN_SIDE, first_level_image, level_size, next_level_image, starting_image
from .regions import keep_photo, keep_photo_evaluation
from .state import Progress, RunState

if TYPE_CHECKING:
    from .transfer import StyleTransfer

CHECKPOINT_VERSION = 1
MAX_RECOVERIES = 5


class _Cancelled(Exception):
    """Raised inside an evaluation to abandon the iteration when a stop was requested."""


@dataclass
class LevelWork:
    """The live objects of the level being optimised: its image (updated in place), targets, objective,
    the evaluation in use (the objective's, or its CUDA-graph replay) and the optimiser."""

    x: Tensor
    targets: Targets
    objective: Objective
    optimizer: Optimizer
    evaluation: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
    graph_note: str | None = None
    """Why this level's evaluation is not a CUDA graph (``None`` when it is, or off CUDA)."""
    tiles: tuple[tuple[int, int, int, int], ...] = ()
    """The level's tiles (:attr:`Progress.tiles`); empty when it is evaluated whole."""


class Run:
    """One optimisation, advanced by :meth:`step` (or by iterating over it).

    Thread-safety: :meth:`stop` may be called from another thread (the studio's Cancel) or a signal
    handler; the run then ends within one loss evaluation.
    """

    def __init__(self, transfer: "StyleTransfer", inputs: Inputs, state: RunState | None = None, extra_terms: Sequence[Term] = ()) -> None:
        self.transfer = transfer
        self.extra_terms = check_terms(extra_terms, transfer.encoder.layers)  # added to every level's objective (build_objective)
        self.config = transfer.config
        self.inputs = inputs
        self.device = transfer.device
        self.levels: tuple[Level, ...] = plan_levels(self.config)
        self.total_iterations = sum(level.iterations for level in self.levels)
        # Megapixels of each level: an iteration's cost grows with them (Progress.work_done).
        self.level_megapixels = tuple(h * w / 1e6 for h, w in (level_size(inputs, lv.size) for lv in self.levels))
        self._start = starting_image(self.config, inputs, level_size(inputs, self.levels[-1].size))
        if state is None:
            # Drawn without torch.seed(), which would reseed the caller's global generators (CUDA's too).
            seed = self.config.seed if self.config.seed is not None else secrets.randbelow(2**31)
            first = level_size(inputs, self.levels[0].size)
            image = first_level_image(self.config, self._start, first, torch.Generator().manual_seed(seed))
            state = RunState(seed=seed, image=image, level_ready=True)
        self._state = state
        self._evaluations = state.evaluations
        self.work: LevelWork | None = None
        self._stop = threading.Event()
        self.evaluator: Callable[[Objective], Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]] | None = None
        """How a level's objective is evaluated instead of by itself: set by :func:`.batched.run_together`
        (one encoder pass shared with other runs); ``None``: alone (a CUDA graph on CUDA)."""
        self._rate = 0.0
        self._t0 = time.perf_counter()

    # --- what the run is --------------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        """A snapshot of the whole state (tensors not shared with the live run)."""
        state = self._state.replace(evaluations=self._evaluations, elapsed=self.elapsed)
        if self.work is None or not state.level_ready:
            return state
        return state.replace(image=self.work.x.detach().clone(), optimizer=self.work.optimizer.state_dict())

    @property
    def seed(self) -> int:
        """The seed in effect (drawn when the config has none): log it to repeat a run."""
        return self._state.seed

    @property
    def iteration(self) -> int:
        """Iterations done, over all levels."""
        return self._state.iteration

    @property
    def recoveries(self) -> int:
        """How often NaN/Inf was recovered from."""
        return self._state.recoveries

    @property
    def evaluations(self) -> int:
        """Loss evaluations so far."""
        return self._evaluations

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        """Whether the run is over: every iteration done, or :meth:`stop` called."""
        return self._state.iteration >= self.total_iterations or self._stop.is_set()

    @property
    def level(self) -> Level:
        """The level being optimised (the last one once the run is over)."""
        return self.levels[min(self._state.level_index, len(self.levels) - 1)]

    @property
    def elapsed(self) -> float:
        """Seconds of optimisation, over all sessions of the run (a resumed run counts its past)."""
        return self._state.elapsed + (time.perf_counter() - self._t0)

    def stop(self) -> None:
        """Ask the run to end (safe from another thread or a signal handler)."""
        self._stop.set()

    def current(self) -> Tensor:
        """The image as it stands, ``(1, 3, H, W)`` float32 in [0, 1] on the CPU, colours applied."""
        s = self._state
        if not s.level_ready:
            image = next_level_image(self.config, s.image, self._start, level_size(self.inputs, self.level.size))
        elif s.average is not None:
            image = corrected_average(s.average, self.config.average, s.level_iteration)
        elif s.good is not None:
            image = s.good
        else:
            image = s.image if self.work is None else self.work.x.detach()
        return self._present(image).clamp(0, 1).cpu()

    def result(self) -> Tensor:
        """The final (or, if stopped early, the latest good) image; same format as :meth:`current`."""
        return self.current()

    # --- the loop -----------------------------------------------------------------------------------
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
            # Inside the try: a new level computes its targets at a larger size, and can be what runs
            # out of memory.
            if self.work is None or not self._state.level_ready:
                self.work = self._begin_level()
            if self.work.objective.begin_iteration(self._state.seed, self._state.iteration):
                self.work.optimizer.objective_changed()
            values = self.work.optimizer.step(self.work.x, self._evaluate, self._state.iteration)
        except _Cancelled:
            return None
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            raise self._oom() from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
                raise self._oom() from exc
            raise
        x = self.work.x
        losses, image_sum = self._read(values)
        recovered = self._recover_if_needed(losses, image_sum)
        s = self._state
        s = s.replace(iteration=s.iteration + 1, level_iteration=s.level_iteration + 1, losses=losses)
        elapsed = self.elapsed
        if s.level_iteration == 1:
            s = s.replace(level_started=elapsed)
        shown = x.detach()
        if self.config.average > 0:
            s = s.replace(average=update_average(s.average, x, self.config.average))
            shown = corrected_average(s.average, self.config.average, s.level_iteration)
        progress = Progress(
            iteration=s.iteration,
            total_iterations=self.total_iterations,
            level=s.level_index,
            levels=len(self.levels),
            level_iteration=s.level_iteration,
            level_iterations=self.level.iterations,
            size=tuple(x.shape[-2:]),
            losses=dict(losses),
            elapsed=elapsed,
            evaluations=self._evaluations,
            image=self._present(shown),
            recovered=recovered,
            work_done=self._work(s.level_index, s.level_iteration),
            work_total=self._work(len(self.levels), 0),
            work_rate=self._work_rate(s, elapsed),
            tiles=self.work.tiles,
        )
        if s.level_iteration >= self.level.iterations and s.level_index < len(self.levels) - 1:
            # The level's objects stay for inspection until the next step begins the next level.
            s = s.replace(level_index=s.level_index + 1, level_iteration=0, level_ready=False, image=shown.clone(), optimizer=None, average=None)
        self._state = s
        return progress

    # --- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run later, as one flat dict: the version, the config,
        the inputs (``content``, ``styles``, ``init``) and the fields of :attr:`state` (CPU tensors;
        ``torch.save``-able and loadable with ``weights_only=True``); with ``extra_terms``, their names."""
        data = {"version": CHECKPOINT_VERSION, "config": self.config.to_dict(), **self.inputs.to_dict(), **self.state.to_dict()}
        if self.extra_terms:  # their names only: the terms are code (from_state_dict asks for them again)
            data["extra_terms"] = [t.name for t in self.extra_terms]
        return data

    @classmethod
    def from_state_dict(cls, transfer: "StyleTransfer", data: Mapping[str, Any], *, extra_terms: Sequence[Term] = ()) -> "Run":
        """Rebuild a run saved by :meth:`state_dict`; ``transfer`` must have the saved config (one that
        sizes the levels or names the optimiser differently is a :class:`ConfigError`). A run's
        ``extra_terms`` are code, not saved: give the same ones again to continue it as it was."""
        if not isinstance(data, Mapping) or data.get("version") != CHECKPOINT_VERSION:
            version = data.get("version") if isinstance(data, Mapping) else None
            raise ConfigError(f"checkpoint version {shown(version)} is not supported (this painterly writes {CHECKPOINT_VERSION})")
        if not {"content", "styles", "init"} <= set(data) or not isinstance(data["styles"], (list, tuple)):
            raise ConfigError("the checkpoint's input images are missing or damaged")
        saved, now = data.get("config"), transfer.config.to_dict()
        # What sizes the levels and shapes the optimiser's memory: under other values the run fails deep in torch.
        for name in ("size", "min_size", "multiscale", "level_iterations", "optimizer"):
            if isinstance(saved, Mapping) and name in saved and saved[name] != now[name]:
                raise ConfigError(
                    f"the checkpoint was made with `{name}` {shown(saved[name])}, not {shown(now[name])}: resume it with its own "
                    "config (Config.from_mapping(checkpoint['config']))"
                )
        given = {getattr(t, "name", None) for t in extra_terms} if isinstance(extra_terms, (list, tuple)) else set()
        named = data.get("extra_terms")
        lost = [n for n in named if n not in given] if isinstance(named, (list, tuple)) else []
        if lost:
            raise ConfigError(f"the checkpoint's run had the extra term {shown(lost[0])}: give it again (extra_terms=[...]); terms are not saved")
        inputs = Inputs.from_dict(transfer.config, data)
        return cls(transfer, inputs, RunState.from_dict(data), extra_terms)

    # --- internals ----------------------------------------------------------------------------------
    def _work(self, level_index: int, level_iteration: int) -> float:
        """Megapixel-iterations of the levels before ``level_index`` plus ``level_iteration`` of it."""
        done = sum(lv.iterations * mp for lv, mp in zip(self.levels[:level_index], self.level_megapixels))
        return done + (level_iteration * self.level_megapixels[level_index] if level_index < len(self.levels) else 0.0)

    def _work_rate(self, s: RunState, elapsed: float) -> float:
        """Megapixel-iterations per second at this level since its first iteration ended (that one pays
        the level's set-up); until a level has two iterations, the previous level's (0: not known yet)."""
        if s.level_iteration >= 2 and elapsed > s.level_started:
            self._rate = (s.level_iteration - 1) * self.level_megapixels[s.level_index] / (elapsed - s.level_started)
        return self._rate

    def _begin_level(self) -> LevelWork:
        """Targets, objective and optimiser of the current level, from the state's image."""
        cfg, s = self.config, self._state
        hw = level_size(self.inputs, self.level.size)
        image = s.image if s.level_ready else next_level_image(cfg, s.image, self._start, hw)
        x = image.to(self.device, copy=True).contiguous()  # the state's image is never optimised in place
        encoder, autocast = self.transfer.encoder, self.transfer.autocast_dtype
        tiles = level_tiles(cfg.tile, encoder, self.device, autocast)
        targets = build_targets(encoder, cfg, self.inputs, self.level.size, hw, self.device, autocast, tiles.side)
        optimizer = make_optimizer(cfg, x, s.lr_scale)
        if s.level_ready and s.optimizer is not None:
            optimizer.load_state_dict(_to_device(dict(s.optimizer), self.device))
        good = s.good.to(self.device) if s.level_ready and s.good is not None else x.detach().clone()
        average = s.average.to(self.device) if s.level_ready and s.average is not None else None
        self._state = s.replace(level_ready=True, image=x, good=good, optimizer=None, average=average)
        objective = build_objective(encoder, cfg, targets, autocast, self.extra_terms, hw, self.device)
        evaluation, note = objective.evaluation, None
        tile = tiles.for_objective(objective, hw)
        if tile:
            # Exact, and the encoder's memory is one tile's (engine/tiled.py); not a CUDA graph.
            evaluation = TiledEvaluation(objective, tile)
            note = "evaluated by tiles" if self.device.type == "cuda" else None
        elif self.evaluator is not None:
            # One encoder pass with other runs' images (engine/batched.py): the batch's pass is the graph.
            evaluation = self.evaluator(objective)
            note = "evaluated in a batch with other runs" if self.device.type == "cuda" else None
        elif self.device.type == "cuda" and cfg.cuda_graphs:
            # One graph launch per evaluation instead of hundreds of kernel launches (docs/benchmarks.md, GPU).
            from ..graphs import capture

            evaluation, note = capture(objective.evaluation, x)
        grid = evaluation.grid(hw) if tile else ()
        evaluation = keep_photo_evaluation(evaluation, self.inputs, hw, self.device)  # photo regions are the photo (engine/regions.py)
        return LevelWork(x, targets, objective, optimizer, evaluation, note, grid)

    def _evaluate(self, x: Tensor) -> tuple[LossTerms, Tensor]:
        # Here, not inside the evaluation: a CUDA graph replays the arithmetic without its Python.
        if self._stop.is_set():
            raise _Cancelled
        self._evaluations += 1
        total, grad, values = self.work.evaluation(x)
        return LossTerms(self.work.objective.names, values), grad

    def _read(self, values: Tensor | tuple[float, ...] | None) -> tuple[dict[str, float], float]:
        """The loss terms and the image's sum from the optimiser's report (engine/optimizers.py):
        read here in one device→host transfer unless the optimiser has read it already."""
        names = self.work.objective.names
        if values is None:
            values = self.work.x.detach().sum().reshape(1).tolist()
            read = [math.nan] * len(names) + values
        elif isinstance(values, Tensor):
            read = values.double().tolist()
        else:
            read = list(values)
        if len(read) == len(names):  # a checkpoint of an older version: the values without the sum
            read += self.work.x.detach().sum().reshape(1).tolist()
        return dict(zip(names, read[:-1])), read[-1]

    def _recover_if_needed(self, losses: Mapping[str, float], image_sum: float) -> bool:
        """Catch NaN/Inf in the loss or the image: restore the last good image, make the optimiser more
        careful, and carry on; after MAX_RECOVERIES give up with a DivergenceError."""
        x, s = self.work.x, self._state
        if math.isfinite(losses["total"]) and math.isfinite(image_sum):
            self._state = s.replace(good=x.detach().clone())
            return False
        s = s.replace(recoveries=s.recoveries + 1)
        self._state = s
        if s.recoveries > MAX_RECOVERIES:
            hint = (
                "try a smaller `style_weight` or `content_weight`"
                if self.config.optimizer == "lbfgs"
                else "try a smaller `learning_rate` or `style_weight`, or `optimizer` lbfgs"
            )
            raise DivergenceError(f"the optimisation diverged (NaN/Inf) {s.recoveries} times; {hint}", image=self.current())
        with torch.no_grad():
            x.copy_(s.good)
        if isinstance(self.work.optimizer, LBFGSOptimizer):
            self.work.optimizer.reset()
        else:
            self._state = s.replace(lr_scale=s.lr_scale * 0.5)
            self.work.optimizer = make_optimizer(self.config, x, self._state.lr_scale)
        return True

    def _present(self, x: Tensor) -> Tensor:
        """The image as users see it: in [0, 1], colours applied."""
        x = keep_photo(self.inputs, x)
        if self.config.original_colors in ("luminance", "after") and self.inputs.content is not None:
            return color.join_luminance(x.clamp(0, 1), self.inputs.content.to(x.device))
        return x.clamp(0, 1)

    def _oom(self) -> ResourceError:
        h, w = self.work.x.shape[-2:] if self.work is not None else level_size(self.inputs, self.level.size)
        fit = max(MIN_SIDE, int(self.level.size / 1.5) // 16 * 16)
        bf16 = self.transfer.autocast_dtype is None and self.device.type != "mps"
        return ResourceError(
            f"out of memory at {w}x{h} px on {self.device.type}; try `size` {fit}" + (" or `precision` bf16" if bf16 else "")
        )


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj
