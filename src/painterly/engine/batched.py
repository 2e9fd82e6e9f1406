"""Several runs evaluated together: one encoder pass over all their images (the GPU issue, item 5).

On a GPU one 512 px evaluation leaves the device mostly idle (the time goes to kernel launches;
docs/benchmarks.md, GPU), so evaluating several images in one batched forward and backward pass costs
little more than one. The runs stay independent: each keeps its own optimiser, line search, levels,
checkpoints and progress, and gets exactly its own gradient (the encoder treats the images of a batch
separately, and the total of a batch is the sum of each run's total).

How: :func:`run_together` drives each run in a thread of its own; a run's evaluation hands its image
to a :class:`SharedEvaluation` and waits; once every run still going has handed one in, the images of
equal size are stacked and evaluated in one pass, and each run gets its terms and gradient back. An
L-BFGS run whose line search needs more evaluations than another's simply takes part in more passes;
runs at different sizes (one already at the next level) are evaluated in separate passes.

On CUDA a group's pass is itself replayed as a CUDA graph once the same runs at the same size have met
``capture_after`` times (``Config.cuda_graphs``; :mod:`painterly.graphs`): a batch evaluated eagerly
pays a launch per kernel for the encoder and for every run's loss terms, which a single run's graph
does not pay. Groups that meet only a few times (while runs drift into the next level) stay eager.

On a CPU this is no faster (the cores are busy either way); it exists for GPUs and is tested on the CPU
for exactness (graphs under emulated CUDA-graph semantics: tests/library/graph_replay.py).
"""

from __future__ import annotations

import itertools
import queue
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .objective import Objective
from .run import Run
from .state import Progress

Evaluation = Callable[[Tensor], "tuple[Tensor, Tensor, Tensor]"]
Capture = Callable[[Callable[[Tensor], "tuple[Tensor, ...]"], Tensor], "tuple[Callable[[Tensor], tuple[Tensor, ...]], str | None]"]
"""How a batch's pass becomes a graph: ``capture(evaluate, example) -> (replay, None)`` or
``(evaluate, why not)``, as :func:`painterly.graphs.capture`."""

# A group (the same runs at the same size) is captured at its this-many-th pass: long-lived groups
# (every run at one level) amortise the capture; the short-lived ones of runs drifting into the next
# level, each a few passes long, are not worth one.
CAPTURE_AFTER = 8
# Graphs kept at once (least recently used dropped): a group at each of two levels, and some room.
MAX_GRAPHS = 4


class SharedEvaluation:
    """A rendezvous of ``parties`` runs sharing one encoder (slot ``i`` is run ``i``).

    :meth:`evaluator` gives each run its evaluation factory (``Run.evaluator``). A slot leaves with
    :meth:`leave` when its run ends, so that the others never wait for it.

    Args:
        capture: how a group's pass is captured as a graph (:data:`Capture`); ``None``: always eager.
            :func:`run_together` passes CUDA graphs for runs on CUDA (:func:`batch_capture`).
        capture_after: a group is captured at its this-many-th pass (:data:`CAPTURE_AFTER`).

    Attributes:
        captured: the groups captured so far; ``failed``: why capturing stopped (``None``: it did not).
    """

    def __init__(self, parties: int, capture: Capture | None = None, capture_after: int = CAPTURE_AFTER) -> None:
        self._cond = threading.Condition()
        self._live = set(range(parties))
        self._pending: dict[int, tuple[Objective, Tensor]] = {}
        self._results: dict[int, tuple[Tensor, Tensor, Tensor] | BaseException] = {}
        self._capture = capture
        self._capture_after = max(1, capture_after)
        self._graphs: OrderedDict[tuple, Callable[[Tensor], tuple[Tensor, ...]]] = OrderedDict()
        self._passes: dict[tuple, int] = {}
        self._serials: weakref.WeakKeyDictionary[Objective, int] = weakref.WeakKeyDictionary()
        self._counter = itertools.count()
        self.captured = 0
        self.failed: str | None = None

    def evaluator(self, slot: int) -> Callable[[Objective], Evaluation]:
        """``Run.evaluator`` for slot ``slot``: the objective of a level → its shared evaluation."""
        return lambda objective: (lambda x: self._evaluate(slot, objective, x))

    def leave(self, slot: int) -> None:
        with self._cond:
            self._live.discard(slot)
            self._maybe_evaluate()

    def _evaluate(self, slot: int, objective: Objective, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        with self._cond:
            self._pending[slot] = (objective, x.detach())
            self._maybe_evaluate()
            while slot not in self._results:
                self._cond.wait()
            result = self._results.pop(slot)
        if isinstance(result, BaseException):
            raise result
        return result

    def _maybe_evaluate(self) -> None:
        """With the lock held: evaluate once every live slot has handed in its image."""
        if not self._pending or not self._live <= self._pending.keys():
            return
        pending, self._pending = self._pending, {}
        groups: dict[tuple, list[int]] = {}
        for slot, (objective, x) in sorted(pending.items()):  # in slot order, whatever order the runs came in
            key = (tuple(x.shape), x.dtype, x.device, id(objective.encoder), objective.autocast)
            groups.setdefault(key, []).append(slot)
        for slots in groups.values():
            try:
                outputs = self._evaluate_group([pending[s] for s in slots])
            except BaseException as exc:  # every run of the group gets the error, as its own would
                outputs = [exc] * len(slots)
            self._results.update(zip(slots, outputs))
        self._cond.notify_all()

    def _evaluate_group(self, items: list[tuple[Objective, Tensor]]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """:func:`evaluate_batch`, replayed as this group's graph where it has one (or earns one now)."""
        if self._capture is None or self.failed is not None:
            return evaluate_batch(items)
        objectives = tuple(o for o, _ in items)
        xs = torch.cat([x for _, x in items])
        key = (tuple(self._serial(o) for o in objectives), tuple(xs.shape), xs.dtype, xs.device)
        replay = self._graphs.get(key)
        if replay is None:
            if len(self._passes) > 16 * MAX_GRAPHS:  # forget groups long gone
                self._passes.clear()
            passes = self._passes[key] = self._passes.get(key, 0) + 1
            evaluate = stacked_evaluation(objectives)
            if passes < self._capture_after:
                return _split(evaluate(xs))  # evaluate_batch, on the images already stacked
            replay, why = self._capture(evaluate, xs)
            if why is not None:
                self.failed = why
                return _split(evaluate(xs))
            self.captured += 1
            self._graphs[key] = replay
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
            # The capture (with its warm-up) ran the pass's arithmetic; the replay below gives its results.
        self._graphs.move_to_end(key)
        return _split(replay(xs))

    def _serial(self, objective: Objective) -> int:
        """A number for ``objective``, never reused (an ``id`` is, once its object is gone)."""
        serial = self._serials.get(objective)
        if serial is None:
            serial = self._serials[objective] = next(self._counter)
        return serial


def evaluate_batch(items: Sequence[tuple[Objective, Tensor]]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``objective.evaluation(x)`` for each ``(objective, x)``, with one encoder pass over all ``x``.

    The ``x`` are ``(1, 3, H, W)`` of one size and the objectives share an encoder and autocast; each
    result ``(total, grad, values)`` equals the objective's own evaluation up to floating-point
    summation order (tested).
    """
    objectives = tuple(o for o, _ in items)
    return _split(stacked_evaluation(objectives)(torch.cat([x for _, x in items])))


def stacked_evaluation(objectives: Sequence[Objective]) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """The pass of :func:`evaluate_batch` as one function of the stacked images ``xs`` ``(B, 3, H, W)``
    (image ``b`` for ``objectives[b]``) → ``(grad (B, 3, H, W), values_0, ..., values_{B-1})``, each
    ``values_b`` 1-d with the run's total first: tensors only and no device read, the shape a CUDA graph
    captures (:func:`painterly.graphs.capture`)."""
    objectives = tuple(objectives)

    def evaluate(xs: Tensor) -> tuple[Tensor, ...]:
        xs = xs.detach().requires_grad_(True)
        with torch.enable_grad():
            features = objectives[0].features(xs)
            values = []
            for b, objective in enumerate(objectives):
                x_b = xs[b : b + 1]
                f_b = {name: f[b : b + 1] for name, f in features.items()}
                values.append(objective.assemble({t.name: t(x_b, f_b) for t in objective.terms}, x_b).values)
            # Each run's total depends on its own image only, so the gradient of the sum is each one's own.
            (grad,) = torch.autograd.grad(torch.stack([v[0] for v in values]).sum(), xs)
        return (grad, *(v.detach() for v in values))

    return evaluate


def _split(outputs: Sequence[Tensor]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`stacked_evaluation`'s outputs as each run's ``(total, grad, values)``."""
    grad, values = outputs[0], outputs[1:]
    return [(v[0], grad[b : b + 1], v) for b, v in enumerate(values)]


def batch_capture(runs: Sequence[Run]) -> Capture | None:
    """CUDA graphs for the passes of ``runs`` when they are all on one CUDA device with
    ``cuda_graphs`` on (one :class:`painterly.graphs.Recorder`: one stream and one memory pool for
    all the groups' graphs); ``None`` otherwise."""
    devices = {run.device for run in runs}
    if len(devices) != 1 or next(iter(devices)).type != "cuda" or not all(run.config.cuda_graphs for run in runs):
        return None
    from ..graphs import Recorder, capture

    device = next(iter(devices))
    recorder: Recorder | None = None  # made at the first capture: none of CUDA's work before it is needed

    def capture_batch(evaluate: Callable[[Tensor], tuple[Tensor, ...]], example: Tensor):  # noqa: ANN202
        nonlocal recorder
        recorder = recorder or Recorder(device)
        # One warm-up call: the group's earlier eager passes picked cuDNN's algorithms for its shape.
        return capture(evaluate, example, recorder, warmup=1)

    return capture_batch


def run_together(runs: Sequence[Run], shared: SharedEvaluation | None = None) -> Iterator[tuple[int, Progress]]:
    """Advance ``runs`` (not yet started) together, yielding ``(index, progress)`` as each iterates.

    Raises :class:`~painterly.errors.ConfigError` for a run given twice or already stepped. Each run
    ends as it would alone (its own iterations, or :meth:`Run.stop`); its result is
    ``runs[index].result()``. If a run raises, the others are stopped and the error is raised here.
    Closing the iterator early (``break``) stops every run. ``shared``: the rendezvous to use, for
    a caller that wants its counts (``captured``, ``failed``); by default one with
    :func:`batch_capture`'s graphs.
    """
    runs = list(runs)
    # Either mistake would leave a slot that never hands in an image: every other run would wait forever.
    for index, run in enumerate(runs):
        if any(other is run for other in runs[:index]):
            raise ConfigError(f"run_together: run {index} is given twice")
        if run.evaluator is not None or (run.work is not None and not run.done):
            raise ConfigError(f"run_together: run {index} has already started; give runs not yet stepped")
    shared = shared if shared is not None else SharedEvaluation(len(runs), capture=batch_capture(runs))
    # Bounded: a slow consumer holds the runs back instead of piling up their progress images.
    events: queue.Queue = queue.Queue(maxsize=2 * len(runs))
    done = object()

    def drive(index: int, run: Run) -> None:
        try:
            for progress in run:
                events.put((index, progress))
        except BaseException as exc:
            events.put((index, exc))
        finally:
            shared.leave(index)
            events.put((index, done))

    for index, run in enumerate(runs):
        run.evaluator = shared.evaluator(index)
    threads = [threading.Thread(target=drive, args=(i, r), name=f"painterly-run-{i}", daemon=True) for i, r in enumerate(runs)]
    for thread in threads:
        thread.start()
    ended, error = 0, None
    try:
        while ended < len(runs):
            index, event = events.get()
            if event is done:
                ended += 1
            elif isinstance(event, BaseException):
                error = error or event
                for run in runs:
                    run.stop()
            elif error is None:
                yield index, event
        if error is not None:
            raise error
    finally:
        if ended < len(runs):
            for run in runs:
                run.stop()
        while any(t.is_alive() for t in threads):  # drain, so that no thread blocks on a full queue
            try:
                events.get(timeout=0.05)
            except queue.Empty:
                pass
        for run in runs:
            run.evaluator = None
