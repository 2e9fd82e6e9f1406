"""CUDA graphs: one loss evaluation (or a batch's pass) as one graph, L-BFGS's phases as graphs, and
the CUDA settings of a run.

Why: at 512 px VGG19's forward and backward take well under a millisecond of GPU arithmetic, but
launching their few hundred kernels from Python takes several. Captured once per pyramid level (the
shapes are fixed within a level), an evaluation becomes one graph launch. Every capture goes through
a :class:`Recorder` (warm-up and capture on a side stream, into a memory pool): :func:`capture` for
functions of one tensor (a run's evaluation, engine/batched.py's pass), :class:`PhaseGraphs` for an
optimiser's phases.

An *evaluation* is ``evaluate(x) -> (total, grad, terms)``: the loss as a 0-d tensor, its gradient
shaped like ``x`` and the stacked loss terms (1-d), all on ``x``'s device, with no host syncs inside
(a sync, e.g. ``float(loss)``, cannot be captured).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence, TypeVar

import torch
from torch import Tensor

Evaluation = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
T = TypeVar("T")

# Calls on a side stream before capture: the first ones pick cuDNN algorithms (cudnn.benchmark) and
# fill the caching allocator; none of that may happen during capture.
WARMUP_CALLS = 3


def prepare_cuda() -> None:
    """Settings for a CUDA run (call when one starts, never at import): cuDNN times its algorithms
    once per input shape and keeps the fastest (the shapes are fixed within a pyramid level)."""
    torch.backends.cudnn.benchmark = True


def graphed(evaluate: Evaluation, example: Tensor) -> Evaluation:
    """``evaluate`` replayed as one CUDA graph for inputs shaped and typed like ``example``.

    The returned function copies its argument into a static input, replays the graph and returns
    clones of the static outputs (a caller such as L-BFGS keeps one evaluation's gradient while it
    asks for the next). Off CUDA, or when capture fails, ``evaluate`` itself is returned, with the
    reason in its ``graph_fallback`` attribute where it takes one (a bound method does not: use
    :func:`capture` to get the reason as a value). ``evaluate`` runs ``WARMUP_CALLS`` + 1 times here
    (warm-up and capture) on ``example``'s values; replays do not run its Python code, so anything
    it counts must be counted outside it.
    """
    result, reason = capture(evaluate, example)
    if reason is not None:
        try:
            evaluate.graph_fallback = reason  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # bound methods and builtins take no attributes
            pass
    return result


def capture(
    evaluate: Callable[[Tensor], Sequence[Tensor]],
    example: Tensor,
    recorder: "Recorder | None" = None,
    warmup: int = WARMUP_CALLS,
) -> tuple[Callable[[Tensor], tuple[Tensor, ...]], str | None]:
    """:func:`graphed` with the reason as a value: ``(graph replay, None)`` or ``(evaluate, why)``,
    ``why`` one line such as ``not a CUDA tensor (device cpu)``.

    ``evaluate`` maps one tensor to a tuple of tensors (an evaluation's ``(total, grad, values)``, or
    a batch's outputs); ``recorder``: where to capture (a new one if ``None``); ``warmup``: its eager
    calls first (cuDNN picks its algorithms at the first call of a shape).
    """
    if example.device.type != "cuda":
        return evaluate, f"not a CUDA tensor (device {example.device.type})"
    static_x = example.detach().clone()
    try:
        recorder = recorder or Recorder(example.device)
        for _ in range(warmup):
            recorder.warm_up(lambda: evaluate(static_x))
        graph, static_out = recorder.record(lambda: tuple(evaluate(static_x)))
    except Exception as exc:  # noqa: BLE001 — any failure to capture means: run without a graph
        return evaluate, recorder_failure(example.device, exc)

    def replay(x: Tensor) -> tuple[Tensor, ...]:
        static_x.copy_(x)
        graph.replay()
        return tuple(t.clone() for t in static_out)

    replay.graph = graph  # type: ignore[attr-defined]  # kept alive as long as the function
    return replay, None


class Recorder:
    """Where CUDA graphs are captured: one side stream and one memory pool on ``device``.

    Work before a capture (warm-up: cuBLAS and cuDNN set themselves up on the stream they first run
    on, which must not happen during capture) and the capture itself run on the side stream. Graphs
    of one recorder share its pool: their scratch tensors die within each replay and replays never
    overlap, so each caller must copy out (clone) a graph's outputs before the next replay of another
    graph of the same recorder, and work captured must keep no tensor it allocates (results go into
    buffers made before: tests/library/graph_replay.AllocationCheck checks L-BFGS's phases).
    Capture is thread-local (``capture_begin``/``capture_end``, not ``torch.cuda.graph``, which also
    synchronises the device, collects garbage and empties the cache at each capture: milliseconds
    that a level's dozen phase graphs would pay each time), so runs advanced together in threads
    (engine/batched.py) do not disturb each other.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device)
        self.pool = torch.cuda.graph_pool_handle()

    def warm_up(self, work: Callable[[], object]) -> None:
        """Run ``work`` once, eagerly, on the side stream, ordered with the current stream."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            work()
        current.wait_stream(self.stream)

    def record(self, work: Callable[[], T]) -> "tuple[torch.cuda.CUDAGraph, T]":
        """Capture ``work`` into a new graph (its kernels are recorded, not run: replay the graph to
        run them); returns the graph and what ``work`` returned. Raises what capture raised."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(self.stream):
            graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
            try:
                out = work()
            except BaseException:
                # End the broken capture, but report what broke it, not the ending's own complaint.
                with contextlib.suppress(Exception):
                    graph.capture_end()
                raise
            graph.capture_end()
        current.wait_stream(self.stream)
        return graph, out


def recorder_failure(device: torch.device, exc: BaseException) -> str:
    """The one-line reason for a failed capture, after waiting for the device (a failed capture can
    leave work queued)."""
    try:
        torch.cuda.synchronize(device)
    except Exception:  # noqa: BLE001 — a broken context: the reason below says enough
        pass
    return f"CUDA graph capture failed: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


Phase = Callable[[], None]
"""A step of work with no arguments and no result: it reads and writes, in place, tensors that outlive
it (an optimiser's buffers), so that replaying its CUDA graph does the same work on the new values."""


def eager(phase: Phase) -> Phase:
    """The phase runner off CUDA: each phase runs as Python, every time."""
    return phase


class PhaseGraphs:
    """A phase runner on CUDA: ``graphs(phase)`` returns a function that runs ``phase`` eagerly for its
    first ``warmup`` calls (on the recorder's side stream), captures it into a CUDA graph at the next
    call and replays that graph from then on.

    Why: an L-BFGS iteration outside the evaluation is ~150 small kernels (benchmarks/launches.py); on a
    GPU each costs a launch from Python, more than its arithmetic. A phase must not read the device
    (no ``float(t)``): a graph replays its kernels, never its Python, so every number it uses must live
    in a tensor. A phase writes its results into buffers that outlive it, so the graphs of one runner
    share one :class:`Recorder` (stream and pool). When a capture fails, that phase and every later
    one run eagerly; :attr:`failed` says why.
    """

    def __init__(self, device: torch.device, warmup: int = 1) -> None:
        self.device = device
        self.warmup = warmup
        self.failed: str | None = None
        self.captured = 0
        self._recorder = Recorder(device)

    def __call__(self, phase: Phase) -> Phase:
        calls = 0
        graph: torch.cuda.CUDAGraph | None = None

        def run() -> None:
            nonlocal calls, graph
            if graph is not None:
                graph.replay()
                return
            if self.failed is not None:
                phase()
                return
            if calls < self.warmup:
                calls += 1
                self._recorder.warm_up(phase)
                return
            try:
                graph, _ = self._recorder.record(phase)
            except Exception as exc:  # noqa: BLE001 — a phase that cannot be captured runs as Python
                self.failed = recorder_failure(self.device, exc)
                phase()
                return
            self.captured += 1
            graph.replay()  # capturing recorded the kernels without running them

        return run
