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

On a CPU this is no faster (the cores are busy either way); it exists for GPUs and is tested on the CPU
for exactness.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from .objective import Objective
from .run import Run
from .state import Progress

Evaluation = Callable[[Tensor], "tuple[Tensor, Tensor, Tensor]"]


class SharedEvaluation:
    """A rendezvous of ``parties`` runs sharing one encoder (slot ``i`` is run ``i``).

    :meth:`evaluator` gives each run its evaluation factory (``Run.evaluator``). A slot leaves with
    :meth:`leave` when its run ends, so that the others never wait for it.
    """

    def __init__(self, parties: int) -> None:
        self._cond = threading.Condition()
        self._live = set(range(parties))
        self._pending: dict[int, tuple[Objective, Tensor]] = {}
        self._results: dict[int, tuple[Tensor, Tensor, Tensor] | BaseException] = {}

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
        for slot, (objective, x) in pending.items():
            key = (tuple(x.shape), x.dtype, x.device, id(objective.encoder), objective.autocast)
            groups.setdefault(key, []).append(slot)
        for slots in groups.values():
            try:
                outputs = evaluate_batch([pending[s] for s in slots])
            except BaseException as exc:  # every run of the group gets the error, as its own would
                outputs = [exc] * len(slots)
            self._results.update(zip(slots, outputs))
        self._cond.notify_all()


def evaluate_batch(items: Sequence[tuple[Objective, Tensor]]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``objective.evaluation(x)`` for each ``(objective, x)``, with one encoder pass over all ``x``.

    The ``x`` are ``(1, 3, H, W)`` of one size and the objectives share an encoder and autocast; each
    result ``(total, grad, values)`` equals the objective's own evaluation up to floating-point
    summation order (tested).
    """
    objectives = [o for o, _ in items]
    xs = torch.cat([x for _, x in items]).detach().requires_grad_(True)
    with torch.enable_grad():
        features = objectives[0].features(xs)
        values = []
        for b, objective in enumerate(objectives):
            x_b = xs[b : b + 1]
            f_b = {name: f[b : b + 1] for name, f in features.items()}
            values.append(objective.assemble({t.name: t(x_b, f_b) for t in objective.terms}, x_b).values)
        # Each run's total depends on its own image only, so the gradient of the sum is each one's own.
        (grad,) = torch.autograd.grad(torch.stack([v[0] for v in values]).sum(), xs)
    return [(v[0].detach(), grad[b : b + 1], v.detach()) for b, v in enumerate(values)]


def run_together(runs: Sequence[Run]) -> Iterator[tuple[int, Progress]]:
    """Advance ``runs`` (not yet started) together, yielding ``(index, progress)`` as each iterates.

    Each run ends as it would alone (its own iterations, or :meth:`Run.stop`); its result is
    ``runs[index].result()``. If a run raises, the others are stopped and the error is raised here.
    Closing the iterator early (``break``) stops every run.
    """
    runs = list(runs)
    shared = SharedEvaluation(len(runs))
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
