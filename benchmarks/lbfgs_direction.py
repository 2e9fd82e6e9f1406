"""L-BFGS's per-iteration linear algebra: the list-based two-loop recursion (painterly before the ring
buffers) against the matrix form of :mod:`painterly.curvature`, on this machine's CPU (or --device).

    python benchmarks/lbfgs_direction.py [--history 100] [--repeats 5] [--sizes 512x384,1024x768]

For each image size (n = 3·W·H float32 values) it fills a full history with the same random pairs
(positive curvature) for both, then times, interleaved (old, new, old, new, …), the search direction
−H·g and the direction plus remembering one new pair (what an iteration adds besides evaluations:
the old code took two dot products, the new one two matrix-vector products for sᵢ·yⱼ). Printed:
a markdown table with the median ms of each and new/old, and the command that made it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from painterly.lbfgs import LBFGS
from painterly.precondition import pyramid_preconditioner


def two_loop(old_s, old_y, rho, h_diag, precondition, g):
    """painterly's `LBFGS._direction` before the ring buffers (commit 07eb820), as a function."""
    q = g.neg()
    alphas = []
    for s, y, r in zip(reversed(old_s), reversed(old_y), reversed(rho)):
        a = s.dot(q) * r
        alphas.append(a)
        q.addcmul_(y, a, value=-1.0)
    if precondition is not None:
        q = precondition(q)
    q.mul_(h_diag)
    for (s, y, r), a in zip(zip(old_s, old_y, rho), reversed(alphas)):
        b = y.dot(q) * r
        q.addcmul_(s, a - b)
    return q


def old_push(old_s, old_y, rho, s, y, history):
    """The old bookkeeping of one new pair: two dot products read to the host, list updates."""
    ys = float(y.dot(s))
    if ys > 1e-10:
        if len(old_s) == history:
            old_s.pop(0), old_y.pop(0), rho.pop(0)
        old_s.append(s), old_y.append(y), rho.append(1.0 / ys)
        return ys / float(y.dot(y))
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(w: int, h: int, history: int, repeats: int, preconditioned: bool, device: torch.device) -> dict:
    shape = (1, 3, h, w)
    n = 3 * w * h
    gen = torch.Generator().manual_seed(0)
    scale = torch.rand(n, generator=gen) + 0.5
    old_s = [torch.randn(n, generator=gen).to(device) for _ in range(history)]
    old_y = [s * scale.to(device) for s in old_s]
    rho = [1.0 / float(y.dot(s)) for s, y in zip(old_s, old_y)]
    h_diag = float(old_y[-1].dot(old_s[-1])) / float(old_y[-1].dot(old_y[-1]))
    pre = pyramid_preconditioner(shape, 1.4) if preconditioned else None
    opt = LBFGS(history=history, precondition=pre)
    opt.load_state_dict(
        dict(old_s=old_s, old_y=old_y, rho=rho, h_diag=h_diag, n_iter=1, f=None, g=None, aux=None, evals=0)
    )
    assert opt.pairs == history
    ring = opt._ring
    g = torch.randn(n, generator=gen).to(device)
    new_s = torch.randn(n, generator=gen).to(device)
    new_y = new_s * scale.to(device)
    times: dict[str, list[float]] = {"old": [], "new": [], "old+push": [], "new+push": []}

    def run(name: str) -> None:
        sync(device)
        t0 = time.perf_counter()
        if name.startswith("old"):
            two_loop(old_s, old_y, rho, h_diag, pre, g)
            if name.endswith("push"):
                # Push and pop the same pair back off, so every repeat sees the same history.
                lists = (list(old_s), list(old_y), list(rho))
                old_push(*lists, new_s, new_y, history)
        else:
            ring.direction(g, None, pre)
            if name.endswith("push"):
                ring.push(new_s, new_y, ring.slots_after_push())
        sync(device)
        times[name].append((time.perf_counter() - t0) * 1000)

    for name in times:  # warm-up (allocator, BLAS threads)
        run(name)
        times[name].clear()
    for _ in range(repeats):
        for name in times:
            run(name)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"size": f"{w}×{h}", "n": n, **med}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", default="512x384,1024x768", help="W×H list, e.g. 512x384,1024x768")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precondition", action="store_true", help="with the pyramid preconditioner (s = 1.4)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    print(f"Command: `python benchmarks/{' '.join(['lbfgs_direction.py', *sys.argv[1:]])}`  ")
    print(f"Device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; history {args.history}, "
          f"median of {args.repeats} interleaved runs{', preconditioned' if args.precondition else ''}\n")
    print("| image | n | two-loop (ms) | matrix form (ms) | new/old | two-loop + pair (ms) | matrix + pair (ms) | new/old |")
    print("|---|---|---|---|---|---|---|---|")
    for w, h in sizes:
        r = measure(w, h, args.history, args.repeats, args.precondition, device)
        print(
            f"| {r['size']} | {r['n']:,} | {r['old']:.0f} | {r['new']:.0f} | {r['new'] / r['old']:.2f} "
            f"| {r['old+push']:.0f} | {r['new+push']:.0f} | {r['new+push'] / r['old+push']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
