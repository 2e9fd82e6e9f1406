"""L-BFGS's memory in matrix form: the newest (s, y) pairs in ring buffers, and the search direction.

On a GPU the cost of an iteration is kernel launches, not arithmetic, so the history lives in two
preallocated ``[capacity, n]`` ring buffers (S, Y), ``sᵢ·yⱼ`` in a small matrix, and each loop of the
two-loop recursion is solved as the triangular system it is: four matrix-vector products instead of
4 × history vector kernels (the same directions; tests/library/test_lbfgs.py). Keeping a pair
(positive curvature) and γ are decided on the device (``torch.where``): :meth:`Curvature.push` and
:meth:`Curvature.direction` never read the device, so they can be captured in a CUDA graph.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class Curvature:
    """The newest ``capacity`` curvature pairs of L-BFGS over vectors shaped like ``like`` (flat).

    Device state: ``S``, ``Y`` ``[capacity, n]`` (``like``'s dtype); ``ys`` ``[capacity]`` (sᵢ·yᵢ) and
    ``SY`` ``[capacity, capacity]`` (sᵢ·yⱼ by ring slot), wide (float64; float32 on MPS); ``gamma``
    (γ = s·y / y·y of the newest kept pair), ``head`` (the slot the next pair goes to) and ``count``
    (pairs held, the newest, ending before ``head``), 0-d. Host state: ``used``, the slots written
    since :meth:`clear` (every held pair lies in ``[0, used)``).
    """

    def __init__(self, capacity: int, like: Tensor) -> None:
        m, n, dev = capacity, like.numel(), like.device
        self.capacity = capacity
        self.wide = torch.float32 if dev.type == "mps" else torch.float64
        self.S = torch.zeros(m, n, dtype=like.dtype, device=dev)
        self.Y = torch.zeros(m, n, dtype=like.dtype, device=dev)
        self.ys = torch.ones(m, dtype=self.wide, device=dev)
        self.SY = torch.zeros(m, m, dtype=self.wide, device=dev)
        self.gamma = torch.ones((), dtype=self.wide, device=dev)
        self.head = torch.zeros((), dtype=torch.long, device=dev)
        self.count = torch.zeros((), dtype=torch.long, device=dev)
        self.used = 0

    def clear(self) -> None:
        """Hold no pairs (the buffers keep their memory; slots not held never count)."""
        self.head.zero_()
        self.count.zero_()
        self.gamma.fill_(1.0)
        self.used = 0

    def slots_after_push(self) -> int:
        """``used`` after one more :meth:`push` (the caller sets it: a push is device work only)."""
        return min(self.used + 1, self.capacity)

    def chronological(self, k: int, head: int) -> Tensor:
        """Ring slots of the ``k`` pairs ending before ``head``, oldest first."""
        return (head - k + torch.arange(k, device=self.S.device)) % self.capacity

    def push(self, s: Tensor, y: Tensor, slots: int) -> None:
        """Remember (s, y) if its curvature is positive, on the device only (no reads). ``slots``:
        the ring slots to keep ``sᵢ·yⱼ`` for, at least :meth:`slots_after_push`."""
        m, h, u = self.capacity, self.head.view(1), slots
        ys, yy = y.dot(s), y.dot(y)
        # Keep only pairs with positive curvature: H must stay positive definite (and finite).
        ok = (ys > 1e-10) & torch.isfinite(ys) & torch.isfinite(yy)
        for buf, v in ((self.S, s), (self.Y, y)):
            buf.index_copy_(0, h, torch.where(ok, v.view(1, -1), buf.index_select(0, h)))
        wide = self.wide
        self.ys.index_copy_(0, h, torch.where(ok, ys.to(wide).view(1), self.ys.index_select(0, h)))
        gram = self.SY[:u, :u]
        row = (self.Y[:u] @ s).to(wide).view(1, u)  # s_new·yⱼ
        col = (self.S[:u] @ y).to(wide).view(u, 1)  # sᵢ·y_new
        gram.index_copy_(0, h, torch.where(ok, row, gram.index_select(0, h)))
        gram.index_copy_(1, h, torch.where(ok, col, gram.index_select(1, h)))
        self.gamma.copy_(torch.where(ok, ys.to(wide) / yy.to(wide), self.gamma))
        self.count.copy_(torch.where(ok, (self.count + 1).clamp_max(m), self.count))
        self.head.copy_(torch.where(ok, (self.head + 1) % m, self.head))

    def direction(self, g: Tensor, slots: int | None = None, precondition: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """−H·g with H the L-BFGS inverse-Hessian estimate (``H₀ = γ·P``, ``P`` = ``precondition``
        or I), no reads; ``slots`` ring slots are used (default ``used``; more give the same
        direction: a slot not held weighs nothing).

        The two-loop recursion's first loop computes αᵢ = ρᵢ sᵢ·(−g − Σ_{j>i} αⱼ yⱼ), newest first:
        the upper triangular system (I + ρ∘triu(SYᵀ, 1)) α = −ρ∘(S g). The second computes
        βᵢ = ρᵢ yᵢ·(r + Σ_{j<i} (αⱼ − βⱼ) sⱼ) with r = γP(−g − Yᵀα), oldest first: the lower system
        (I + ρ∘L) β = ρ∘(Y r + L α), L = tril(YSᵀ, −1). The result is r + Sᵀ(α − β). Slots beyond the
        held pairs get ρ = 0 (so α = β = 0: as if absent).
        """
        u, dev, wide = self.used if slots is None else slots, g.device, self.wide
        S, Y = self.S[:u], self.Y[:u]
        pos = torch.arange(u, device=dev)
        # Chronological position p -> ring slot; the held pairs are at p < count (all in [0, used)).
        perm = (self.head - self.count + pos) % u
        held = pos < self.count
        rho = torch.where(held, 1.0 / self.ys[:u][perm], 0.0)
        gram = self.SY[:u, :u][perm][:, perm]
        gram = torch.where(held[:, None] & held[None, :], gram, 0.0)
        sg = (S @ g).to(wide)[perm]
        alpha = torch.linalg.solve_triangular(
            rho[:, None] * gram.triu(1), (-rho * sg)[:, None], upper=True, unitriangular=True
        )[:, 0]
        ring = torch.empty_like(alpha)
        q = torch.addmv(g, Y.T, ring.index_copy_(0, perm, alpha).to(g.dtype)).neg_()
        if precondition is not None:
            q = precondition(q)
        q.mul_(self.gamma.to(q.dtype))
        low = gram.T.tril(-1)
        yr = (Y @ q).to(wide)[perm]
        beta = torch.linalg.solve_triangular(
            rho[:, None] * low, (rho * (yr + low @ alpha))[:, None], upper=False, unitriangular=True
        )[:, 0]
        return torch.addmv(q, S.T, ring.index_copy_(0, perm, alpha - beta).to(g.dtype))

    def pairs(self, k: int, head: int) -> dict[str, Tensor]:
        """The ``k`` pairs ending before ``head`` as new tensors, oldest first: ``s``, ``y``
        ``[k, n]``, ``ys`` ``[k]``, ``sy`` ``[k, k]`` (sᵢ·yⱼ), and ``h_diag`` (γ)."""
        slots = self.chronological(k, head)
        s, y, ys = (buf.index_select(0, slots) for buf in (self.S, self.Y, self.ys))
        sy = self.SY.index_select(0, slots).index_select(1, slots)
        return dict(s=s, y=y, ys=ys, sy=sy, h_diag=self.gamma.clone())

    def load_pairs(self, s: Tensor, y: Tensor, ys: Tensor, sy: Tensor, head: int, used: int) -> None:
        """Hold the pairs ``s``, ``y`` (oldest first; the newest ``capacity`` of them), their ``ys``
        and ``sy``, the newest ending before ``head``; ``used`` slots written."""
        dev, wide = self.S.device, self.wide
        k = min(len(s), self.capacity)
        s, y, ys, sy = s[-k:], y[-k:], ys[-k:], sy[-k:, -k:]
        slots = self.chronological(k, head)
        self.S.index_copy_(0, slots, s.to(self.S))
        self.Y.index_copy_(0, slots, y.to(self.Y))
        self.ys.index_copy_(0, slots, ys.to(dev, wide))
        self.SY[slots[:, None], slots[None, :]] = sy.to(dev, wide)
        self.head.fill_(head)
        self.count.fill_(k)
        self.used = used
