"""CUDA-graph semantics on the CPU, for tests of code written to be captured (painterly.graphs).

A CUDA graph records the kernels a function launched and replays them on whatever the tensors hold
then: the function's Python never runs again, so a number it took from Python (a step size, a count
read from the device, a shape) is frozen at capture, and a read from the device cannot be captured at
all. :class:`ReplayedPhases` is a phase runner (``LBFGS(phases=...)``) with exactly those semantics,
on any device: it runs a phase as Python for its first ``warmup`` calls, records the ATen operations
of the next call (running them, as capture + the first replay do) and from then on replays the record
with the same tensors, never the phase's Python. Code that is right under it is right as a graph as
far as values go; what it cannot check is CUDA's own rules (allocations, streams).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_HOST_READS = {"aten._local_scalar_dense", "aten.item"}


class HostReadDuringCapture(RuntimeError):
    """A phase read a device value during capture (a CUDA graph cannot capture that)."""


@dataclass
class _Op:
    func: Any
    args: tuple
    kwargs: dict
    out: Any  # the tensors the op returned at capture: later ops of the record refer to these


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[_Op] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if str(func.overloadpacket) in _HOST_READS:
            raise HostReadDuringCapture(f"{func} during capture")
        out = func(*args, **kwargs)
        self.ops.append(_Op(func, args, kwargs, out))
        return out


def _replay(ops: list[_Op]) -> None:
    with torch.no_grad():  # the record already holds the backward's kernels; nothing to differentiate
        _replay_ops(ops)


def _replay_ops(ops: list[_Op]) -> None:
    for op in ops:
        fresh = op.func(*op.args, **op.kwargs)
        # Results land where the captured ones were, as a graph's kernels write to the addresses
        # they were captured with; in-place ops and views wrote there already.
        recorded, _ = tree_flatten(op.out)
        now, _ = tree_flatten(fresh)
        for old, new in zip(recorded, now):
            if isinstance(old, torch.Tensor) and old is not new and old.data_ptr() != new.data_ptr():
                old.copy_(new)


class ReplayedPhases:
    """A phase runner with CUDA-graph semantics (see the module's docstring). ``captured`` counts
    the phases recorded, ``replays`` the calls answered from a record."""

    def __init__(self, warmup: int = 1) -> None:
        self.warmup = warmup
        self.captured = 0
        self.replays = 0

    def __call__(self, phase: Callable[[], None]) -> Callable[[], None]:
        calls = 0
        record: list[_Op] | None = None

        def run() -> None:
            nonlocal calls, record
            if record is not None:
                self.replays += 1
                _replay(record)
                return
            if calls < self.warmup:
                calls += 1
                phase()
                return
            recorder = _Recorder()
            with recorder:
                phase()
            record = recorder.ops
            self.captured += 1

        return run




class _Allocations(TorchDispatchMode):
    """Weak references to the tensors the ops under it create (not an input, not sharing one's memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[str, weakref.ref]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        held = {t.untyped_storage().data_ptr() for t in inputs}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not any(t is i for i in inputs) and t.untyped_storage().data_ptr() not in held:
                self.made.append((str(func.overloadpacket), weakref.ref(t)))
        return out


class KeptAllocations(AssertionError):
    """A phase kept a tensor it allocated while it would be captured."""


class AllocationCheck:
    """A phase runner (``LBFGS(phases=...)``) that runs phases as Python and checks, at every call
    after a phase's first (its warm-up; the later ones are the capture and the replays on CUDA), that
    the phase keeps none of the tensors it allocates: everything it leaves must be written into
    buffers that existed before. Why: on CUDA the phases' graphs share one memory pool
    (graphs.Recorder) and replay in any order, so a tensor made during one capture and kept could sit
    where another graph's scratch tensors are, and be overwritten by its replays — corruption that
    the value-level emulation of :class:`ReplayedPhases` cannot see. ``checked`` counts the calls checked."""

    def __init__(self) -> None:
        self.checked = 0

    def __call__(self, phase: Callable[[], None]) -> Callable[[], None]:
        calls = 0

        def run() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                phase()
                return
            mode = _Allocations()
            with mode:
                phase()
            # No gc.collect(): scratch tensors die by reference counting when the phase returns (a
            # cycle holding one would be reported, and is worth a look too).
            kept = sorted({op for op, ref in mode.made if ref() is not None})
            if kept:
                name = getattr(phase, "__name__", None) or getattr(getattr(phase, "func", None), "__name__", repr(phase))
                raise KeptAllocations(f"{name} kept tensors it allocated (made by {', '.join(kept)})")
            self.checked += 1

        return run


def replayed_evaluation(evaluate: Callable, example: torch.Tensor, warmup: int = 3) -> Callable:
    """``evaluate(x) -> tensors`` as :func:`painterly.graphs.capture` makes it on CUDA, with the
    semantics of :class:`ReplayedPhases`: a static input (``example``'s shape), ``warmup`` calls and
    a capture, then each call copies its argument in, replays the record and returns clones of the
    outputs recorded at capture."""
    static_x = example.detach().clone()
    outputs: dict[str, Any] = {}

    def phase() -> None:
        outputs["now"] = evaluate(static_x)  # Python: runs at the warm-ups and the capture only

    run = ReplayedPhases(warmup)(phase)
    for _ in range(warmup + 1):
        run()
    recorded = tuple(outputs["now"])

    def replay(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        static_x.copy_(x)
        run()
        return tuple(t.clone() for t in recorded)

    return replay


__all__ = ["AllocationCheck", "HostReadDuringCapture", "KeptAllocations", "ReplayedPhases", "replayed_evaluation"]
