"""Device operations per L-BFGS iteration: what a GPU would launch, counted on the CPU.

On a GPU a 512 px iteration is launch-bound (docs/benchmarks.md, GPU): each operation costs a
kernel launch from Python, more than its arithmetic. The number of operations does not depend on
the device, so it can be counted here: every ATen operation that reaches a kernel (views, which
launch nothing, are left out), through a ``TorchDispatchMode``.

Rows (the same objective: real VGG19 weights, the default losses, single scale, fp32):

* ``torch.optim.LBFGS`` (history 100, strong Wolfe; the naive loop's optimiser), over painterly's
  objective (×1e6) as its closure, counted after 102 iterations (the pairs it then holds are shown);
* painterly's L-BFGS with its phases as Python (the CPU path);
* painterly's L-BFGS with its phases as CUDA graphs (the CUDA path): a phase's replay counted as one
  launch, what runs between phases as itself.

Per iteration: operations outside the evaluations, evaluations, and operations of one evaluation
(eager; on CUDA the evaluation is one graph replay plus a copy in and three copies out).

    python benchmarks/launches.py [--size 128] [--iterations 8] [--naive-size 64]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from painterly import Config
from painterly.engine import StyleTransfer, evaluate_batch, load_inputs
from painterly.engine import optimizers as optimizers_module
from painterly.graphs import eager

# Operations that only describe memory (a view): no kernel on a GPU.
VIEWS = {
    "aten.view", "aten._unsafe_view", "aten.detach", "aten.alias", "aten.unsqueeze", "aten.squeeze",
    "aten.slice", "aten.select", "aten.reshape", "aten._reshape_alias", "aten.expand", "aten.t",
    "aten.transpose", "aten.permute", "aten.as_strided", "aten.unbind", "aten.split", "aten.chunk",
    "aten.lift_fresh", "aten.resolve_conj", "aten.resolve_neg", "aten.view_as_real", "aten.diagonal",
}


class Counting(TorchDispatchMode):
    """Counts the kernel-launching ATen operations while ``on``."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False  # inside `with` and not paused
        self.ops: Counter[str] = Counter()

    def __enter__(self):
        self.on = True
        return super().__enter__()

    def __exit__(self, *exc):
        self.on = False
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if self.on and name not in VIEWS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    def paused(self, fn: Callable) -> Callable:
        def call(*args, **kwargs):
            was, self.on = self.on, False
            try:
                return fn(*args, **kwargs)
            finally:
                self.on = was

        return call


class GraphLaunches:
    """A phase runner that counts a phase's call as one launch (a graph replay) and runs it uncounted."""

    def __init__(self, counter: Counting) -> None:
        self.counter = counter

    def __call__(self, phase: Callable[[], None]) -> Callable[[], None]:
        quiet = self.counter.paused(phase)

        def run() -> None:
            if self.counter.on:
                self.counter.ops["cudaGraphLaunch"] += 1
            quiet()

        return run


def config(size: int, iterations: int) -> Config:
    return Config(size=size, iterations=iterations, multiscale=False, seed=0, precision="fp32", device="cpu")


def painterly_row(content: str, style: str, size: int, iterations: int, graphs: bool) -> dict:
    counter = Counting()
    optimizers_module.phase_runner = lambda device: GraphLaunches(counter) if graphs else eager  # noqa: E731
    cfg = config(size, iterations + 4)
    run = StyleTransfer(cfg).start(load_inputs(cfg, content, [style]))
    steps = iter(run)
    for _ in range(4):  # past the first iterations (steepest descent, allocation)
        next(steps)
    per_evaluation = Counting()
    inner = run.work.evaluation

    def evaluation(x):
        with per_evaluation:
            return inner(x)

    run.work.evaluation = counter.paused(evaluation)
    before = run.evaluations
    with counter:
        for _ in range(iterations):
            next(steps)
    evaluations = run.evaluations - before
    return dict(
        outside=sum(counter.ops.values()) / iterations,
        evaluations=evaluations / iterations,
        per_evaluation=sum(per_evaluation.ops.values()) / evaluations,
        top=counter.ops.most_common(6),
    )


def naive_row(content: str, style: str, size: int, iterations: int, history: int = 100) -> dict:
    cfg = config(size, 1)
    transfer = StyleTransfer(cfg)
    run = transfer.start(load_inputs(cfg, content, [style]))
    next(iter(run))  # builds the level's objective
    objective, x = run.work.objective, run.work.x.detach().clone().requires_grad_(True)
    # As benchmarks/naive.py drives it: 20 iterations per call (a call starts with one evaluation).
    per_call = 20
    optimizer = torch.optim.LBFGS(
        [x], lr=1, max_iter=per_call, history_size=history, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe"
    )
    counter, evaluations = Counting(), [0]
    # painterly's losses are means: unscaled, most pairs fall under torch's fixed curvature threshold
    # (s·y > 1e-10) and its history stays short. L-BFGS is otherwise invariant to the scale.
    scale = 1e6

    @counter.paused
    def closure():
        evaluations[0] += 1
        total, grad, _ = objective.evaluation(x)
        x.grad = grad * scale
        return total * scale

    def pairs() -> int:
        return len(optimizer.state[x].get("old_dirs", []))

    for _ in range(15):  # until the history is full (or 300 iterations): each iteration then walks all of it
        if pairs() >= history:
            break
        optimizer.step(closure)
    calls = max(1, iterations // per_call)
    before = evaluations[0]
    with counter:
        for _ in range(calls):
            optimizer.step(closure)
    done = calls * per_call
    return dict(
        outside=sum(counter.ops.values()) / done,
        evaluations=(evaluations[0] - before) / done,
        per_evaluation=None,
        top=[(k, v * iterations / done) for k, v in counter.ops.most_common(6)],
        pairs=pairs(),
    )


def batch_row(content: str, style: str, size: int, batch: int) -> dict:
    """Operations of one eager pass of ``batch`` runs evaluated together (``engine.evaluate_batch``):
    the encoder once, every run's loss terms each. Replayed as a CUDA graph (engine/batched.py) the
    pass is one launch, plus the images stacked and copied in and the outputs copied out."""
    cfg = config(size, 1)
    first = StyleTransfer(cfg)
    inputs = load_inputs(cfg, content, [style])
    items = []
    for k in range(batch):
        run = StyleTransfer(cfg.replace(seed=k), encoder=first.encoder).start(inputs)
        next(iter(run))  # builds the level's objective
        items.append((run.work.objective, run.work.x.detach().clone()))
    evaluate_batch(items)  # allocation and first-call work left out
    counter = Counting()
    with counter:
        evaluate_batch(items)
    return dict(total=sum(counter.ops.values()), top=counter.ops.most_common(4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--size", type=int, default=128, help="painterly's rows (the preconditioner's depth grows with it)")
    parser.add_argument("--iterations", type=int, default=8, help="iterations counted per row")
    parser.add_argument("--naive-size", type=int, default=64, help="torch.optim.LBFGS's row and the batch table (counts that do not depend on the size)")
    parser.add_argument("--batches", default="1,4,16", help="runs per pass of the batch table (engine.evaluate_batch)")
    args = parser.parse_args(argv)
    naive = naive_row(args.content, args.style, args.naive_size, args.iterations)
    rows = [
        (f"torch.optim.LBFGS, {naive['pairs']} of 100 pairs held (objective ×1e6), {args.naive_size} px", naive),
        (f"painterly, phases as Python (CPU path), {args.size} px", painterly_row(args.content, args.style, args.size, args.iterations, graphs=False)),
        (f"painterly, phases as CUDA graphs (CUDA path), {args.size} px", painterly_row(args.content, args.style, args.size, args.iterations, graphs=True)),
    ]
    print("| optimiser loop | launches per iteration outside evaluations | evaluations per iteration | launches per evaluation (eager) | most frequent |")
    print("|---|---|---|---|---|")
    for name, row in rows:
        per_eval = "–" if row["per_evaluation"] is None else f"{row['per_evaluation']:.0f}"
        top = ", ".join(f"{k.removeprefix('aten.')} {v / args.iterations:.0f}" for k, v in row["top"])
        print(f"| {name} | {row['outside']:.0f} | {row['evaluations']:.2f} | {per_eval} | {top} |")
    print("\n| runs evaluated together | launches per eager pass | per run | most frequent |")
    print("|---|---|---|---|")
    for batch in [int(b) for b in args.batches.split(",") if b]:
        row = batch_row(args.content, args.style, args.naive_size, batch)
        top = ", ".join(f"{k.removeprefix('aten.')} {v}" for k, v in row["top"])
        print(f"| {batch} | {row['total']} | {row['total'] / batch:.0f} | {top} |")
    print(f"\nCommand: python benchmarks/launches.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
