"""L-BFGS with a strong-Wolfe line search, one iteration per call.

Why not ``torch.optim.LBFGS``? Called with ``max_iter=1`` (which a step-by-step run with progress,
cancellation and checkpoints needs) it re-evaluates the loss at the current point at the start of
every call: one wasted forward+backward pass of VGG19 per iteration, doubling the cost. Here the loss
and gradient at the current point are kept between calls, the whole state is a plain dict for
checkpoints, and the history can be reset when the run recovers from a NaN.

Algorithms: the two-loop recursion and the line search (bracketing + zoom with safeguarded cubic
interpolation) of Nocedal & Wright, *Numerical Optimization*, algorithms 7.4 (here) and 3.5, 3.6 (:mod:`painterly.linesearch`).

On a GPU the cost of an iteration is kernel launches and waits for the device, not arithmetic, so:

* The history is :class:`painterly.curvature.Curvature`: ring buffers and the two-loop recursion
  as two triangular systems (a handful of matrix products, no reads).
* The fallback to steepest descent is decided on the device (``torch.where``); the line search's
  numbers are read once per evaluation, in :func:`_read`.
* The device work of an iteration is four *phases* (plan the direction, place a trial point, its
  slope, accept the step), each working in place on buffers allocated once, with every number it
  needs in a tensor: a phase runner (``phases``; :class:`painterly.graphs.PhaseGraphs` on CUDA)
  replays each as one CUDA graph instead of ~150 kernel launches (benchmarks/launches.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import Tensor

from .curvature import Curvature
from .graphs import Phase, eager
from .linesearch import strong_wolfe

# f_and_g(point) -> (loss, flat gradient, aux): loss a 0-d tensor (or a Python float), aux anything
# the caller wants back for the accepted point (painterly passes the per-term losses).
Objective = Callable[[Tensor], tuple["Tensor | float", Tensor, Any]]


def _read(*values: Tensor | float) -> list[Any]:
    """Python numbers of ``values`` with ONE device→host transfer: the only place where the optimiser
    waits for the device (tests count the calls). A 0-d tensor becomes a float, a 1-d tensor a tuple
    of floats, a number stays itself."""
    tensors = [v.detach().reshape(-1) for v in values if isinstance(v, Tensor)]
    got: list[float] = []
    if tensors:
        wide = torch.float32 if tensors[0].device.type == "mps" else torch.float64
        # One cat (it promotes mixed dtypes), one conversion, one transfer: three launches in all.
        got = torch.cat(tensors).to(wide).tolist()
    out, at = [], 0
    for v in values:
        if not isinstance(v, Tensor):
            out.append(float(v))
        elif v.dim() == 0:
            out.append(got[at])
            at += 1
        else:
            out.append(tuple(got[at : at + v.numel()]))
            at += v.numel()
    return out


class LBFGS:
    """Minimise a function of one tensor, one iteration per :meth:`step`.

    Args:
        history: number of (s, y) pairs remembered (two ``[history, x.numel()]`` buffers, allocated
            at the first step and kept until the optimiser is dropped).
        lr: the first trial step of each line search (1 is natural for a quasi-Newton direction).
        max_evals: the most function evaluations one line search may spend (at least 1).
        c1, c2: the Wolfe constants (sufficient decrease, curvature).
        bounds: ``(low, high)`` to keep every element of ``x`` in a box (``None``: unconstrained).
            A projected variant: ``x`` is clamped into the box first; variables at a bound whose
            gradient points out of the box are held there for the iteration; the line search follows
            the projected path ``clamp(x + t·d)`` (with its directional derivative), and the stored
            pair is the step actually taken, so the curvature pairs stay true secant pairs.
        first_step: with ``bounds``, the first trial step along steepest descent (no curvature
            known yet) moves the fastest-moving element by this fraction of the box's width, times
            ``lr``. Without bounds there is no natural scale, and the step moves ``x`` by ``lr`` in
            L1 norm in total, as torch.optim.LBFGS does.
        precondition: a symmetric positive-definite operator ``P`` on flat vectors: the recursion
            starts from ``H₀ = γ·P`` instead of ``γ·I`` (painterly passes
            :func:`painterly.precondition.pyramid_preconditioner`). ``None``: plain L-BFGS.
        read_aux: the objective's aux is a 1-d tensor (painterly's: the loss terms and the point's
            checksum), read to the host in the same transfer as the line search's numbers and handed
            back as a tuple of floats, so that the caller needs no read of its own.
        phases: how the iteration's device work runs: :func:`painterly.graphs.eager` (default: as
            Python) or a :class:`painterly.graphs.PhaseGraphs` (replayed as CUDA graphs). With a runner
            other than ``eager`` the history's matrices are used in sizes rounded up to powers of
            two (a graph per size, not per pair count).
    """

    def __init__(
        self,
        history: int = 100,
        lr: float = 1.0,
        max_evals: int = 25,
        c1: float = 1e-4,
        c2: float = 0.9,
        bounds: tuple[float, float] | None = None,
        first_step: float = 0.05,
        precondition: Callable[[Tensor], Tensor] | None = None,
        read_aux: bool = False,
        phases: Callable[[Phase], Phase] = eager,
    ):
        self.read_aux = read_aux
        self._runner = phases
        self._phases: dict[tuple[str, int | None], Phase] = {}
        self._flat: Tensor | None = None  # the image being optimised, flat (the phases work on it)
        self.bounds = bounds
        self.precondition = precondition
        self.first_step = first_step
        self.history = history
        self.lr = lr
        self.max_evals = max_evals
        self.c1, self.c2 = c1, c2
        self._ring: Curvature | None = None  # allocated at the first step, for x's size
        # The phases' buffers: the gradient at the current point, the direction, the trial point and
        # the gradient there ([n] each); the first trial step, the step to place, g·d and the slope
        # at the trial (0-d, wide), and whether the quasi-Newton direction was chosen (0-d bool).
        self._g: Tensor | None = None
        self._d: Tensor | None = None
        self._point: Tensor | None = None
        self._gtrial: Tensor | None = None
        self._t: Tensor | None = None
        self._step: Tensor | None = None
        self._gtd0: Tensor | None = None
        self._slope: Tensor | None = None
        self._chose: Tensor | None = None
        self.reset()

    # ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the curvature history and the cached loss (e.g. after restoring an earlier image)."""
        self.n_iter = 0
        self.f: float | None = None  # the loss at the current point (None: to be evaluated)
        self.aux: Any = None
        self.evals = 0
        self._maybe = False  # whether the history may hold pairs (host-side: False means surely empty)
        if self._ring is not None:
            self._ring.clear()

    def forget_value(self) -> None:
        """Forget the loss and gradient kept at the current point (the function changed): the next
        :meth:`step` evaluates them afresh. The curvature history is kept."""
        self.f, self.aux = None, None

    @property
    def g(self) -> Tensor | None:
        """The gradient at the current point, flat (a buffer that the next step overwrites), or
        ``None`` when it is not known."""
        return None if self.f is None else self._g

    @property
    def pairs(self) -> int:
        """The number of (s, y) pairs held (reads the device)."""
        return 0 if self._ring is None else int(self._ring.count)

    def _allocate(self, like: Tensor) -> None:
        n, dev = like.numel(), like.device
        self._ring = ring = Curvature(self.history, like)
        wide = ring.wide
        self._g, self._d, self._point, self._gtrial = (torch.zeros(n, dtype=like.dtype, device=dev) for _ in range(4))
        self._t, self._step, self._gtd0, self._slope = (torch.zeros((), dtype=wide, device=dev) for _ in range(4))
        self._chose = torch.zeros((), dtype=torch.bool, device=dev)
        self._phases.clear()

    def state_dict(self) -> dict[str, Any]:
        """The state as new tensors (a snapshot: the ring buffers change in place as the run goes on).
        Pairs oldest first: ``s``, ``y`` ``[k, n]``, ``ys`` ``[k]``, ``sy`` ``[k, k]`` (sᵢ·yⱼ)."""
        state: dict[str, Any] = dict(layout="ring", s=None, y=None, ys=None, sy=None, head=0, h_diag=None)
        used = 0
        if self._ring is not None:
            k, head = (int(v) for v in _read(self._ring.count, self._ring.head))
            state.update(self._ring.pairs(k, head), head=head)
            used = self._ring.used
        state.update(capacity=self.history, used=used, maybe=self._maybe, n_iter=self.n_iter)
        g = None if self.g is None else self.g.clone()
        state.update(f=self.f, g=g, aux=self.aux, evals=self.evals)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s dict, or the layout of painterly ≤ 0.x's list-based L-BFGS
        (``old_s``/``old_y`` lists, ``rho`` and ``h_diag`` floats), whose pairs are converted."""
        if "old_s" in state:
            s = torch.stack(list(state["old_s"])) if state["old_s"] else None
            y = torch.stack(list(state["old_y"])) if state["old_y"] else None
            ys = None if s is None else 1.0 / torch.tensor([float(r) for r in state["rho"]], dtype=torch.float64)
            sy = None if s is None else (s @ y.T).double()
            head, capacity, used, maybe = 0, None, 0, s is not None
            gamma: Any = float(state["h_diag"])
        elif state.get("layout") == "ring":
            s, y, ys, sy, head = state["s"], state["y"], state["ys"], state["sy"], int(state["head"])
            capacity, used, maybe = state["capacity"], int(state["used"]), bool(state["maybe"])
            gamma = state["h_diag"]
        else:
            raise ValueError("not an L-BFGS state dict: expected the keys of LBFGS.state_dict()")
        self.reset()
        self.n_iter = int(state["n_iter"])
        g = state["g"]
        self.f = None if state["f"] is None or g is None else float(state["f"])
        self.aux = state["aux"]
        self.evals = int(state["evals"])
        self._maybe = maybe
        # A history cleared by a failed line search is saved as [0, n] tensors: shape from the gradient.
        like = s[0] if s is not None and len(s) else g
        if like is None:
            return
        if self._ring is None or self._ring.S.shape[1] != like.numel():
            self._allocate(like.reshape(-1))
        if g is not None:
            self._g.copy_(g.reshape(-1))
        if isinstance(gamma, float):
            self._ring.gamma.fill_(gamma)
        elif gamma is not None:
            self._ring.gamma.copy_(gamma)
        if s is None:
            return
        if capacity != self.history:  # another ring size (or the list layout): oldest slot first
            k = min(len(s), self.history)
            head, used = k % self.history, k
        self._ring.load_pairs(s, y, ys, sy, head, used)

    # ----------------------------------------------------------------------------------------
    def _evaluate(self, fn: Objective, point: Tensor) -> tuple[Tensor | float, Tensor, Any]:
        self.evals += 1
        f, g, aux = fn(point)
        return f, g.reshape(-1), aux

    def _read_with_aux(self, aux: Any, *values: Tensor | float) -> tuple[Any, Any]:
        """``_read(*values)``, and with ``read_aux`` the aux in the same transfer: (numbers, aux)."""
        got = _read(*values, *((aux.reshape(-1),) if self.read_aux else ()))
        if self.read_aux:
            aux = got.pop()
        return (got[0] if len(values) == 1 else got), aux

    # -- the phases: device work only, in place on the buffers (see graphs.PhaseGraphs) --------------
    def _plan(self, u: int) -> None:
        """From the current point and its gradient ``_g``: the direction ``_d``, the first trial step
        ``_t`` (also placed in ``_step``) and the slope ``_gtd0`` = g·d. ``u`` > 0: the quasi-Newton
        direction over ``u`` ring slots where it descends (``_chose``), else steepest descent."""
        flat, g0, bounds = self._flat, self._g, self.bounds
        # With bounds, the variables pinned at a bound by their gradient take no part this iteration.
        free = None if bounds is None else ~_leaving_box(flat, g0.neg(), bounds)
        gf = g0 if free is None else g0 * free
        d, t = gf.neg(), self._first_trial(gf)
        if u:
            qn = self._ring.direction(gf, u, self.precondition)
            if free is not None:
                # Nothing moves out of the box from a bound: then g·d is the projected path's slope.
                qn.mul_(free & ~_leaving_box(flat, qn, bounds))
            # Not a descent direction (numerical trouble) or no pairs: steepest descent, history cleared.
            count = self._ring.count
            chose = (count > 0) & (g0.dot(qn) < 0)
            d = torch.where(chose, qn, d)
            t = torch.where(chose, torch.full_like(t, self.lr), t)
            count.copy_(torch.where(chose, count, 0))
            self._chose.copy_(chose)
        self._d.copy_(d)
        self._t.copy_(t)
        self._step.copy_(t)
        self._gtd0.copy_(g0.dot(d))

    def _place(self) -> None:
        """The trial point ``_point`` = x + step·d (projected into the box) for the step in ``_step``."""
        torch.mul(self._d, self._step, out=self._point)
        self._point.add_(self._flat)
        if self.bounds is not None:
            self._point.clamp_(*self.bounds)

    def _slope_at_trial(self) -> None:
        """``_slope``: the derivative along the path at the trial point, from its gradient ``_gtrial``."""
        g, d, bounds = self._gtrial, self._d, self.bounds
        # With bounds the projected path moves only the variables strictly inside the box.
        self._slope.copy_(g.dot(d) if bounds is None else g.dot(d * ((self._point > bounds[0]) & (self._point < bounds[1]))))

    def _accept(self, u: int) -> None:
        """Take the step in ``_step`` (whose point's gradient is in ``_gtrial``): remember the pair
        (``u`` slots in use after it), move x, and make ``_gtrial`` the current gradient."""
        if self.bounds is None:
            s = self._d * self._step
        else:
            self._place()
            s = self._point.sub_(self._flat)  # the step actually taken (clamped): a true secant pair
        self._ring.push(s, self._gtrial - self._g, u)
        with torch.no_grad():
            self._flat.add_(s)
        self._g.copy_(self._gtrial)

    def _run(self, phase: Callable[..., None], slots: int | None = None) -> None:
        """Run ``phase`` (a phase method; ``slots``: its argument, if it takes one) through the phase
        runner, which sees one phase per method and argument: on CUDA a graph each."""
        key = (phase.__name__, slots)
        run = self._phases.get(key)
        if run is None:
            run = self._phases[key] = self._runner(phase if slots is None else partial(phase, slots))
        run()

    def _slots(self, u: int) -> int:
        """The ring slots a phase uses for ``u`` in use: ``u`` itself as Python; as graphs, rounded up
        to a power of two (at most ``history``), so a level captures a few graphs, not one per pair."""
        return u if self._runner is eager or u == 0 else min(self.history, 1 << (u - 1).bit_length())

    def _bind(self, x: Tensor) -> Tensor:
        """``x`` flat, with the buffers allocated for it and the phases working on it."""
        flat = x.detach().view(-1)
        ring = self._ring
        if ring is None or ring.S.shape[1] != flat.numel() or ring.S.dtype != flat.dtype or ring.S.device != flat.device:
            self._allocate(flat)
        if self._flat is None or self._flat.data_ptr() != flat.data_ptr():
            self._phases.clear()  # a graph works on the memory it was captured with
        self._flat = flat
        return flat

    def step(self, x: Tensor, fn: Objective) -> tuple[float, Any]:
        """One iteration: updates ``x`` in place and returns (loss, aux) at the new point.

        If no step along the search direction decreases the loss (a flat or broken region), ``x`` is
        left as it was and the history is cleared, so the next call starts again from steepest descent.
        Reads from the device: one per evaluation of ``fn``, nothing else.
        """
        flat = self._bind(x)
        if self.f is None:
            if self.bounds is not None:
                with torch.no_grad():
                    flat.clamp_(*self.bounds)
            f, g, aux = self._evaluate(fn, x.detach())
            self._g.copy_(g)
            self.f, self.aux = self._read_with_aux(aux, f)
        f0, g0 = self.f, self._g
        used = self._ring.used
        quasi_newton = self.n_iter > 0 and self._maybe and used > 0
        self._run(self._plan, self._slots(used) if quasi_newton else 0)

        in_gtrial: Tensor | None = None  # the gradient last copied into _gtrial

        def phi(step: float | None, *extra: Tensor) -> tuple[float, Tensor, float, Any, list[float]]:
            nonlocal in_gtrial
            if step is not None:  # None: the step the plan placed in _step
                self._step.fill_(step)
            self._run(self._place)
            f, g, aux = self._evaluate(fn, self._point.view_as(x))
            self._gtrial.copy_(g)
            in_gtrial = g
            self._run(self._slope_at_trial)
            (f, slope, *rest), aux = self._read_with_aux(aux, f, self._slope, *extra)
            return f, g, slope, aux, rest

        # The first trial is evaluated before the host knows t or g·d: both come with its one read.
        f1, g1, slope1, aux1, (gtd0, t, *chosen) = phi(None, self._gtd0, self._t, *([self._chose] if quasi_newton else []))
        if chosen and not chosen[0]:
            self._maybe = False
        if not gtd0 < 0:  # zero (projected) gradient: a stationary point, nothing to do
            self._maybe = False
            self.n_iter += 1
            return f0, self.aux

        t, f_new, g_new, aux = strong_wolfe(phi, (t, f1, g1, slope1, aux1), (f0, g0, gtd0, self.aux), self.c1, self.c2, self.max_evals)
        self.n_iter += 1
        if t == 0.0:
            self._ring.count.zero_()
            self._maybe = False
            return f0, self.aux
        used = self._ring.slots_after_push()
        self._step.fill_(t)
        if g_new is not in_gtrial:  # usually the last trial is the one accepted: its gradient is there
            self._gtrial.copy_(g_new)
        self._run(self._accept, self._slots(used))
        self._ring.used, self._maybe = used, True
        self.f, self.aux = f_new, aux
        return f_new, aux

    def _first_trial(self, gf: Tensor) -> Tensor:
        """The first trial step along ``-gf`` when no curvature is known (see ``first_step``), as a
        0-d wide tensor on the device (the host learns it with the first evaluation's read)."""
        wide = self._ring.wide
        if self.bounds is not None:
            # An image's pixel scale is known: moving the furthest pixel by a fixed fraction of the
            # box (first_step, 5 % by default) is a sensible first guess. The L1 rule below moves a
            # 512 px image by ~1e-6 per pixel, so its line search spends four or five evaluations (a
            # few seconds) just growing the step.
            width = self.bounds[1] - self.bounds[0]
            return self.first_step * width / gf.abs().max().to(wide).clamp_min(1e-30) * self.lr
        return (1.0 / gf.abs().sum().to(wide).clamp_min(1e-30)).clamp_max(1.0) * self.lr


def _leaving_box(flat: Tensor, direction: Tensor, bounds: tuple[float, float]) -> Tensor:
    """Mask of the elements at a bound that ``direction`` would move out of the box."""
    return ((flat <= bounds[0]) & (direction < 0)) | ((flat >= bounds[1]) & (direction > 0))
