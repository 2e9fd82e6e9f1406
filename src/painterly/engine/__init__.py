"""The optimisation engine: an image's pixels optimised against content, style and smoothness losses.

How a run flows (docs/architecture.md has the picture)::

    Config ──► load_inputs() ──► Inputs                      inputs.py
                                   │
    StyleTransfer(config)          ▼                         transfer.py
      └─ encoder ──────────► Run(transfer, inputs)           run.py
                               │  for each level (schedule.plan_levels):
                               │    level_size / next_level_image          pyramid.py
                               │    build_targets ─► Targets               targets.py
                               │    build_objective ─► Objective(terms)    objective.py
                               │    make_optimizer ─► L-BFGS | Adam | SGD  optimizers.py
                               │    too large for memory? TiledEvaluation       tiled.py, memory.py
                               │  each step(): optimizer.step(x, objective.value_and_grad)
                               ▼
                             Progress (frozen), RunState (frozen)          state.py
                               │
                 the faces: api.stylize, the CLI's runner, the studio's worker

A loss of your own is a :class:`Term` given to one run, ``StyleTransfer.start(inputs,
extra_terms=[term])``: added to every level's objective (docs/architecture.md has a worked example).

The library never prints or writes files: what to show or save is the caller's business.
"""

from __future__ import annotations

from .inputs import ImageLike, Inputs, load_inputs, to_tensor
from .objective import (
    BUILTIN_TERMS,
    STANDARD_TERMS,
    ContentTerm,
    GramStyleTerm,
    LossTerms,
    Objective,
    Term,
    TemporalTerm,
    TVTerm,
    build_objective,
)
from .targets import Targets, build_targets
from .guided import GuidedStyleTerm, RegionTarget
from .batched import SharedEvaluation, evaluate_batch, run_together
from .optimizers import lbfgs_history_for, make_optimizer
from .pyramid import HW, MIN_SIDE
from .run import CHECKPOINT_VERSION, MAX_RECOVERIES, LevelWork, Run
from .state import Progress, RunState
from .tiled import TiledEvaluation, encode_by_tiles
from .transfer import ProgressCallback, StyleTransfer, build_encoder

LOSS_TERMS = ("total",) + STANDARD_TERMS
"""What every run reports in ``Progress.losses``; a built-in term that is on (:data:`BUILTIN_TERMS`) or an extra term adds its own."""

__all__ = [
    "BUILTIN_TERMS", "CHECKPOINT_VERSION", "HW", "LOSS_TERMS", "MAX_RECOVERIES", "MIN_SIDE", "STANDARD_TERMS",
    "ContentTerm", "GramStyleTerm", "GuidedStyleTerm", "ImageLike", "Inputs", "LevelWork", "LossTerms", "Objective", "Progress",
    "ProgressCallback", "RegionTarget", "Run", "RunState", "StyleTransfer", "TVTerm", "TemporalTerm", "Targets", "Term",
    "TiledEvaluation", "build_encoder", "build_objective", "build_targets", "encode_by_tiles", "lbfgs_history_for",
    "load_inputs", "make_optimizer", "SharedEvaluation", "evaluate_batch", "run_together",
    "to_tensor",
]
