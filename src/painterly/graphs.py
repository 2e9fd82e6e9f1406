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
