"""One loss evaluation as one CUDA graph, and the CUDA settings of a run.

Why: at 512 px VGG19's forward and backward take well under a millisecond of GPU arithmetic, but
launching their few hundred kernels from Python takes several. Captured once per pyramid level (the
shapes are fixed within a level), an evaluation becomes one graph launch.

An *evaluation* is ``evaluate(x) -> (total, grad, terms)``: the loss as a 0-d tensor, its gradient
shaped like ``x`` and the stacked loss terms (1-d), all on ``x``'s device, with no host syncs inside
(a sync, e.g. ``float(loss)``, cannot be captured).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Evaluation = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]

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


def capture(evaluate: Evaluation, example: Tensor) -> tuple[Evaluation, str | None]:
    """:func:`graphed` with the reason as a value: ``(graph replay, None)`` or ``(evaluate, why)``,
    ``why`` one line such as ``not a CUDA tensor (device cpu)``."""
    if example.device.type != "cuda":
        return evaluate, f"not a CUDA tensor (device {example.device.type})"
    static_x = example.detach().clone()
    try:
        side = torch.cuda.Stream(device=example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                evaluate(static_x)
        torch.cuda.current_stream(example.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = tuple(evaluate(static_x))
    except Exception as exc:  # noqa: BLE001 — any failure to capture means: run without a graph
        try:
            torch.cuda.synchronize(example.device)
        except Exception:  # noqa: BLE001 — a broken context: the reason below says enough
            pass
        return evaluate, f"CUDA graph capture failed: {type(exc).__name__}: {_first_line(exc)}"

    def replay(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        static_x.copy_(x)
        graph.replay()
        return tuple(t.clone() for t in static_out)  # type: ignore[return-value]

    replay.graph = graph  # type: ignore[attr-defined]  # kept alive as long as the function
    return replay, None


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
    first ``warmup`` calls (on a side stream: cuBLAS/cuDNN set themselves up there, not during
    capture), captures it into a CUDA graph at the next call and replays that graph from then on.

    Why: an L-BFGS iteration outside the evaluation is ~150 small kernels (benchmarks/launches.py); on a
    GPU each costs a launch from Python, more than its arithmetic. A phase must not read the device
    (no ``float(t)``): a graph replays its kernels, never its Python, so every number it uses must live
    in a tensor. The graphs of one runner share a memory pool (their scratch tensors die within each
    replay, and replays never overlap), and capture on the runner's own stream in thread-local mode,
    so runs advanced together in threads (engine/batched.py) do not disturb each other.
    When a capture fails, that phase and every later one run eagerly; :attr:`failed` says why.
    """

    def __init__(self, device: torch.device, warmup: int = 1) -> None:
        self.device = device
        self.warmup = warmup
        self.failed: str | None = None
        self.captured = 0
        self._pool = torch.cuda.graph_pool_handle()
        self._stream = torch.cuda.Stream(device=device)

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
            current = torch.cuda.current_stream(self.device)
            self._stream.wait_stream(current)
            if calls < self.warmup:
                calls += 1
                with torch.cuda.stream(self._stream):
                    phase()
                current.wait_stream(self._stream)
                return
            new = torch.cuda.CUDAGraph()
            try:
                # capture_begin/end, not torch.cuda.graph(): that one also synchronises the device,
                # collects garbage and empties the cache at each capture, milliseconds that a level's
                # dozen phase graphs would pay each time.
                with torch.cuda.stream(self._stream):
                    new.capture_begin(pool=self._pool, capture_error_mode="thread_local")
                    try:
                        phase()
                    finally:
                        new.capture_end()
            except Exception as exc:  # noqa: BLE001 — a phase that cannot be captured runs as Python
                self.failed = f"CUDA graph capture failed: {type(exc).__name__}: {_first_line(exc)}"
                current.wait_stream(self._stream)
                phase()
                return
            current.wait_stream(self._stream)
            graph = new
            self.captured += 1
            graph.replay()  # capturing recorded the kernels without running them

        return run
