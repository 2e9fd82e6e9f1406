"""painterly's own L-BFGS (one iteration per step, strong-Wolfe line search), in float64."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from painterly import lbfgs as lbfgs_module
from conftest import load_benchmark, smooth_pull
from graph_replay import AllocationCheck, HostReadDuringCapture, KeptAllocations, ReplayedPhases
from painterly.curvature import Curvature
from painterly.lbfgs import LBFGS, _leaving_box
from painterly.linesearch import cubic_min as _cubic_min
from painterly.precondition import pyramid_preconditioner


def _objective(fn):
    """Wrap a differentiable f(x) -> 0-d tensor as LBFGS's (loss, flat grad, aux) objective."""

    calls = {"n": 0}

    def objective(point):
        calls["n"] += 1
        x = point.detach().clone().requires_grad_(True)
        f = fn(x)
        (g,) = torch.autograd.grad(f, x)
        value = float(f.detach())
        return value, g, {"f": value}

    objective.calls = calls
    return objective


def _quadratic(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = m @ m.T + n * torch.eye(n, dtype=torch.float64)  # SPD, moderately conditioned
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    return a, b, (lambda x: 0.5 * x @ a @ x - b @ x)


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def test_converges_on_a_quadratic():
    a, b, f = _quadratic()
    x = torch.zeros(6, dtype=torch.float64)
    opt = LBFGS(history=10)
    fn = _objective(f)
    losses = [opt.step(x, fn)[0] for _ in range(30)]
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-8)
    # Each accepted step decreases the loss (sufficient decrease).
    assert all(l2 <= l1 + 1e-15 for l1, l2 in zip(losses, losses[1:]))


def test_step_returns_the_loss_and_aux_at_the_new_point():
    _, _, f = _quadratic()
    x = torch.ones(6, dtype=torch.float64)
    opt = LBFGS()
    loss, aux = opt.step(x, _objective(f))
    assert loss == pytest.approx(float(f(x)))
    assert aux["f"] == loss
    assert opt.n_iter == 1


def test_converges_on_rosenbrock():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    opt = LBFGS(history=10)
    fn = _objective(_rosenbrock)
    for _ in range(100):
        loss, _ = opt.step(x, fn)
        if loss < 1e-18:
            break
    assert torch.allclose(x, torch.ones(2, dtype=torch.float64), atol=1e-6)
    # The line search is economical: about one or two evaluations per iteration on average.
    assert fn.calls["n"] < 3 * opt.n_iter


def test_loss_and_gradient_are_cached_between_steps():
    _, _, f = _quadratic()
    x = torch.ones(6, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(f)
    opt.step(x, fn)
    n = fn.calls["n"]
    opt.step(x, fn)
    # No re-evaluation at the current point (unlike torch.optim.LBFGS with max_iter=1): the second
    # iteration costs only its line search, whose first trial is usually accepted.
    assert fn.calls["n"] - n <= 2
    assert opt.evals == fn.calls["n"]


def test_state_dict_round_trip_continues_identically():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    opt = LBFGS(history=5)
    fn = _objective(_rosenbrock)
    for _ in range(6):
        opt.step(x, fn)
    saved_state = copy.deepcopy(opt.state_dict())
    saved_x = x.clone()

    path_a = [opt.step(x, fn)[0] for _ in range(10)]

    other = LBFGS(history=5)
    other.load_state_dict(saved_state)
    y = saved_x.clone()
    path_b = [other.step(y, fn)[0] for _ in range(10)]
    assert path_a == path_b
    assert torch.equal(x, y)


def test_state_dict_round_trip_after_a_failed_line_search_cleared_the_history():
    """The state saved right after the history was forgotten (``s``/``y`` of shape [0, n], ``used``
    > 0) loads, and the run continues identically (a batch stopped there resumed with an IndexError)."""
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    opt = LBFGS(history=5)
    fn = _objective(_rosenbrock)
    for _ in range(6):
        opt.step(x, fn)
    here = x.clone()

    def nowhere_better(point):
        if torch.equal(point, here):
            return fn(point)
        return float("nan"), torch.full((2,), float("nan"), dtype=torch.float64), "bad"

    opt.step(x, nowhere_better)
    assert opt.pairs == 0 and torch.equal(x, here)
    saved_state = copy.deepcopy(opt.state_dict())
    assert saved_state["s"].shape == (0, 2) and saved_state["used"] > 0
    path_a = [opt.step(x, fn)[0] for _ in range(10)]

    other = LBFGS(history=5)
    other.load_state_dict(saved_state)
    y = here.clone()
    path_b = [other.step(y, fn)[0] for _ in range(10)]
    assert path_a == path_b and torch.equal(x, y)


def test_state_dict_survives_torch_save(tmp_path):
    _, _, f = _quadratic()
    x = torch.ones(6, dtype=torch.float64)
    opt = LBFGS(history=3)
    fn = _objective(f)
    for _ in range(4):
        opt.step(x, fn)
    path = tmp_path / "opt.pt"
    state = opt.state_dict()
    state["aux"] = torch.tensor(state["aux"]["f"])  # the engine's aux is a tensor
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    assert len(loaded["s"]) == len(loaded["y"]) == opt.pairs <= 3
    assert loaded["n_iter"] == 4 and loaded["f"] == opt.f
    other = LBFGS(history=3)
    other.load_state_dict(loaded)
    y = x.clone()
    assert [opt.step(x, fn)[0] for _ in range(3)] == [other.step(y, fn)[0] for _ in range(3)]


def test_history_is_bounded():
    _, _, f = _quadratic(n=12)
    x = torch.zeros(12, dtype=torch.float64)
    opt = LBFGS(history=3)
    fn = _objective(f)
    for _ in range(8):
        opt.step(x, fn)
    assert opt.pairs == 3
    assert opt._ring.S.shape == opt._ring.Y.shape == (3, 12)  # allocated once: history × n


def test_reset_forgets_history_and_cached_loss():
    _, _, f = _quadratic()
    x = torch.ones(6, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(f)
    for _ in range(3):
        opt.step(x, fn)
    assert opt.pairs and opt.f is not None
    opt.reset()
    assert opt.pairs == 0
    assert opt.f is None and opt.g is None and opt.n_iter == 0 and float(opt._ring.gamma) == 1.0
    n = fn.calls["n"]
    before = float(f(x))
    loss, _ = opt.step(x, fn)
    assert fn.calls["n"] > n + 1  # re-evaluated the current point, then searched
    assert loss < before


def test_first_step_is_scaled_steepest_descent():
    # f = |x|^2 / 2 from x0: the gradient is x0; the first trial step moves by lr in l1 norm in total.
    x = torch.tensor([3.0, -4.0], dtype=torch.float64)
    seen = []

    def fn(point):
        seen.append(point.clone())
        return float(0.5 * point @ point), point.clone(), None

    LBFGS(lr=1.0).step(x, fn)
    first_trial = seen[1]
    step = first_trial - torch.tensor([3.0, -4.0], dtype=torch.float64)
    assert step.abs().sum().item() == pytest.approx(1.0)
    assert torch.allclose(step / step.norm(), -torch.tensor([3.0, -4.0], dtype=torch.float64) / 5)


def test_first_step_with_bounds_moves_the_furthest_element_by_a_fraction_of_the_box():
    x = torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64)
    target = torch.tensor([0.1, 0.2, 0.9], dtype=torch.float64)
    seen = []

    def fn(point):
        seen.append(point.clone())
        return float(0.5 * ((point - target) ** 2).sum()), point - target, None

    LBFGS(bounds=(0.0, 2.0), first_step=0.05).step(x.clone(), fn)
    step = seen[1] - x
    assert step.abs().max().item() == pytest.approx(0.05 * 2.0)
    assert torch.allclose(step / step.norm(), -(x - target) / (x - target).norm())


def test_nan_region_line_search_backs_off():
    # A quadratic with its minimum at 10, undefined (NaN) beyond 1.5: quasi-Newton steps aim into the
    # NaN region and the line search has to shorten them.
    nan_trials = []

    def f(x):
        value = ((x - 10.0) ** 2).sum()
        if float(x.detach().max()) <= 1.5:
            return value
        nan_trials.append(float(x.detach().max()))
        return value * float("nan")

    x = torch.zeros(3, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(f)
    losses = []
    for _ in range(15):
        loss, _ = opt.step(x, fn)
        losses.append(loss)
        assert math.isfinite(loss)
        assert torch.isfinite(x).all() and float(x.max()) <= 1.5
    assert all(l2 <= l1 for l1, l2 in zip(losses, losses[1:]))
    assert nan_trials, "the test should make the line search meet the NaN region"
    assert losses[-1] < losses[0]
    assert float(x.min()) > 1.0  # it got close to the edge of the defined region


def test_nowhere_better_leaves_x_unchanged_and_clears_history():
    # Defined only at the starting point: every trial step gives NaN.
    start = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def fn(point):
        if torch.equal(point, start):
            return 5.0, torch.tensor([1.0, 1.0], dtype=torch.float64), "aux0"
        return float("nan"), torch.full((2,), float("nan"), dtype=torch.float64), "bad"

    x = start.clone()
    opt = LBFGS(max_evals=10)
    loss, aux = opt.step(x, fn)
    assert torch.equal(x, start)
    assert loss == 5.0 and aux == "aux0"
    assert opt.pairs == 0
    assert opt.evals <= 11


def test_stationary_point_is_left_alone():
    x = torch.zeros(3, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(lambda v: (v**2).sum())
    loss, _ = opt.step(x, fn)
    assert loss == 0.0 and torch.equal(x, torch.zeros(3, dtype=torch.float64))
    # The point, then the first trial (the host learns that g·d = 0 with that evaluation's one read).
    assert fn.calls["n"] == 2


def test_works_on_image_shaped_float32_tensors():
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(1, 3, 8, 8)
    opt = LBFGS()
    fn = _objective(lambda v: ((v - target) ** 2).mean())
    for _ in range(10):
        opt.step(x, fn)
    assert x.shape == (1, 3, 8, 8)
    assert torch.allclose(x, target, atol=1e-4)


def test_cubic_min():
    # The cubic through f(0)=0, f'(0)=-1 and f(1)=0, f'(1)=1 is symmetric: minimum at 0.5.
    assert _cubic_min(0.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.0, 1.0) == pytest.approx(0.5)
    # Clamped to the interval.
    assert _cubic_min(0.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.7, 0.9) == pytest.approx(0.7)
    # NaN in the data: the midpoint.
    assert _cubic_min(0.0, 0.0, -1.0, 1.0, float("nan"), float("nan"), 0.2, 0.4) == pytest.approx(0.3)
    # Equal abscissae (division by zero): the midpoint.
    assert _cubic_min(1.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.0, 2.0) == pytest.approx(1.0)


def _smooth_field_problem(side=32, pull=0.01):
    """A quadratic over a (1, 3, side, side) image with slow smooth components: a weak pull towards
    a target plus a strong penalty on neighbour differences, so the error decays fast in fine detail
    and slowly in broad shape, the situation the pyramid preconditioner is for. Returns f and its
    minimum value (solved exactly: (pull·I + L) x* = pull·t per channel, L the grid Laplacian)."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, side, side, generator=gen, dtype=torch.float64)

    def f(x):
        dx, dy = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
        return pull * ((x - target) ** 2).sum() + (dx**2).sum() + (dy**2).sum()

    path = torch.diag(torch.cat([torch.ones(1), 2 * torch.ones(side - 2), torch.ones(1)])).double()
    path -= torch.diag(torch.ones(side - 1, dtype=torch.float64), 1) + torch.diag(torch.ones(side - 1, dtype=torch.float64), -1)
    eye = torch.eye(side, dtype=torch.float64)
    system = pull * torch.eye(side * side, dtype=torch.float64) + torch.kron(eye, path) + torch.kron(path, eye)
    best = torch.linalg.solve(system, pull * target.reshape(3, -1).T).T.reshape(target.shape)
    return f, float(f(best))


def test_a_smoothing_preconditioner_converges_sooner_on_a_smooth_problem():
    from painterly.precondition import pyramid_preconditioner

    f, f_min = _smooth_field_problem()
    excess = {}
    for name, pre in (("plain", None), ("pyramid", pyramid_preconditioner((1, 3, 32, 32), 1.4))):
        x = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
        opt = LBFGS(precondition=pre)
        fn = _objective(f)
        losses = [opt.step(x, fn)[0] for _ in range(15)]
        # Still a descent method: every accepted step lowers the loss.
        assert all(b <= a for a, b in zip(losses, losses[1:]))
        excess[name] = losses[-1] - f_min
    # Measured: 0.084 plain, 0.013 preconditioned.
    assert 0 <= excess["pyramid"] < 0.3 * excess["plain"], excess


def test_preconditioner_equal_to_the_inverse_hessian_solves_a_diagonal_quadratic_at_once():
    # f = ½ Σ a_i x_i² − b·x with a spread over four decades: with P = A⁻¹ the first quasi-Newton
    # step after the steepest-descent one lands on the solution.
    a = torch.logspace(0, 4, 20, dtype=torch.float64)
    b = torch.ones(20, dtype=torch.float64)
    x = torch.zeros(20, dtype=torch.float64)
    opt = LBFGS(precondition=lambda q: q / a)
    fn = _objective(lambda v: 0.5 * (a * v * v).sum() - b @ v)
    for _ in range(3):
        opt.step(x, fn)
    assert torch.allclose(x, b / a, rtol=1e-6)


# --- the matrix form against the two-loop recursion ----------------------------------------------


class _ListLBFGS:
    """painterly's L-BFGS before the ring buffers (commit 07eb820), verbatim but for this
    docstring: lists of (s, y) pairs and the two-loop recursion. The reference the new one is
    checked against."""

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
    ):
        self.bounds = bounds
        self.precondition = precondition
        self.first_step = first_step
        self.history = history
        self.lr = lr
        self.max_evals = max_evals
        self.c1, self.c2 = c1, c2
        self.reset()

    # ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the curvature history and the cached loss (e.g. after restoring an earlier image)."""
        self.old_s: list[Tensor] = []
        self.old_y: list[Tensor] = []
        self.rho: list[float] = []
        self.h_diag = 1.0
        self.n_iter = 0
        self.f: float | None = None
        self.g: Tensor | None = None
        self.aux: Any = None
        self.evals = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "old_s": list(self.old_s),
            "old_y": list(self.old_y),
            "rho": list(self.rho),
            "h_diag": self.h_diag,
            "n_iter": self.n_iter,
            "f": self.f,
            "g": self.g,
            "aux": self.aux,
            "evals": self.evals,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.old_s = list(state["old_s"])
        self.old_y = list(state["old_y"])
        self.rho = list(state["rho"])
        self.h_diag = float(state["h_diag"])
        self.n_iter = int(state["n_iter"])
        self.f = state["f"]
        self.g = state["g"]
        self.aux = state["aux"]
        self.evals = int(state["evals"])

    # ----------------------------------------------------------------------------------------
    def _evaluate(self, fn: Objective, point: Tensor) -> tuple[float, Tensor, Any]:
        self.evals += 1
        f, g, aux = fn(point)
        return f, g.reshape(-1), aux

    def _direction(self, g: Tensor) -> Tensor:
        """The two-loop recursion: −H·g with H the L-BFGS inverse-Hessian estimate.

        The coefficients stay 0-d tensors on the vectors' device: on a GPU, converting each of the
        2 × history dot products to a Python float would wait for the device every time.
        """
        q = g.neg()
        alphas = []
        for s, y, rho in zip(reversed(self.old_s), reversed(self.old_y), reversed(self.rho)):
            a = s.dot(q) * rho
            alphas.append(a)
            q.addcmul_(y, a, value=-1.0)
        if self.precondition is not None:
            q = self.precondition(q)
        q.mul_(self.h_diag)
        for (s, y, rho), a in zip(zip(self.old_s, self.old_y, self.rho), reversed(alphas)):
            b = y.dot(q) * rho
            q.addcmul_(s, a - b)
        return q

    def step(self, x: Tensor, fn: Objective) -> tuple[float, Any]:
        """One iteration: updates ``x`` in place and returns (loss, aux) at the new point.

        If no step along the search direction decreases the loss (a flat or broken region), ``x`` is
        left as it was and the history is cleared, so the next call starts again from steepest descent.
        """
        flat = x.detach().view(-1)
        bounds = self.bounds
        if self.f is None or self.g is None:
            if bounds is not None:
                with torch.no_grad():
                    flat.clamp_(*bounds)
            self.f, self.g, self.aux = self._evaluate(fn, x.detach())
        f0, g0 = self.f, self.g
        # With bounds, the variables pinned at a bound by their gradient take no part this iteration.
        free = None if bounds is None else ~_leaving_box(flat, g0.neg(), bounds)
        gf = g0 if free is None else g0 * free
        if self.n_iter == 0 or not self.old_s:
            d = gf.neg()
            t = self._first_trial(gf)
        else:
            d = self._direction(gf)
            if free is not None:
                # Nothing moves out of the box from a bound: then g·d is the projected path's slope.
                d.mul_(free & ~_leaving_box(flat, d, bounds))
            t = self.lr
        gtd0 = float(g0.dot(d))
        if not gtd0 < 0:  # not a descent direction (numerical trouble): fall back to the gradient
            self.old_s, self.old_y, self.rho = [], [], []
            d = gf.neg()
            gtd0 = float(g0.dot(d))
            t = self._first_trial(gf)
            if not gtd0 < 0:  # zero gradient: a stationary point, nothing to do
                self.n_iter += 1
                return f0, self.aux

        def point_at(step: float) -> Tensor:
            point = flat + step * d
            return point if bounds is None else point.clamp_(*bounds)

        def phi(step: float) -> tuple[float, Tensor, float, Any]:
            point = point_at(step)
            f, g, aux = self._evaluate(fn, point.view_as(x))
            if bounds is None:
                return f, g, float(g.dot(d)), aux
            # The projected path moves only the variables strictly inside the box at this step.
            moving = (point > bounds[0]) & (point < bounds[1])
            return f, g, float(g.dot(d * moving)), aux

        t, f_new, g_new, aux = self._line_search(phi, t, f0, g0, gtd0)
        self.n_iter += 1
        if t == 0.0:
            self.old_s, self.old_y, self.rho = [], [], []
            return f0, self.aux
        s = d.mul(t) if bounds is None else point_at(t).sub_(flat)
        y = g_new - g0
        ys = float(y.dot(s))
        if ys > 1e-10:  # keep only pairs with positive curvature: H must stay positive definite
            if len(self.old_s) == self.history:
                self.old_s.pop(0)
                self.old_y.pop(0)
                self.rho.pop(0)
            self.old_s.append(s)
            self.old_y.append(y)
            self.rho.append(1.0 / ys)
            self.h_diag = ys / float(y.dot(y))
        with torch.no_grad():
            flat.add_(s)
        self.f, self.g, self.aux = f_new, g_new, aux
        return f_new, aux

    def _first_trial(self, gf: Tensor) -> float:
        """The first trial step along ``-gf`` when no curvature is known (see ``first_step``)."""
        if self.bounds is not None:
            # An image's pixel scale is known: moving the furthest pixel by a fixed fraction of the
            # box (first_step, 5 % by default) is a sensible first guess. The L1 rule below moves a
            # 512 px image by ~1e-6 per pixel, so its line search spends four or five evaluations (a
            # few seconds) just growing the step.
            width = self.bounds[1] - self.bounds[0]
            return self.first_step * width / max(float(gf.abs().max()), 1e-30) * self.lr
        return min(1.0, 1.0 / max(float(gf.abs().sum()), 1e-30)) * self.lr

    # ----------------------------------------------------------------------------------------
    def _line_search(self, phi, t: float, f0: float, g0: Tensor, gtd0: float):
        """Strong-Wolfe line search. Returns (t, f, g, aux) of the accepted point, or t = 0 if none."""
        c1, c2 = self.c1, self.c2
        t_prev, f_prev, g_prev, gtd_prev, aux_prev = 0.0, f0, g0, gtd0, self.aux
        evals = 0
        while evals < self.max_evals:
            f_t, g_t, gtd_t, aux_t = phi(t)
            evals += 1
            # `not (a <= b)` is true for NaN too: a step into NaN/Inf counts as too long.
            if not (f_t <= f0 + c1 * t * gtd0) or (evals > 1 and f_t >= f_prev):
                return self._zoom(phi, (t_prev, f_prev, g_prev, gtd_prev, aux_prev), (t, f_t, g_t, gtd_t, aux_t), f0, gtd0, evals)
            if abs(gtd_t) <= -c2 * gtd0:
                return t, f_t, g_t, aux_t
            if gtd_t >= 0:
                return self._zoom(phi, (t, f_t, g_t, gtd_t, aux_t), (t_prev, f_prev, g_prev, gtd_prev, aux_prev), f0, gtd0, evals)
            # Still descending steeply: extrapolate to a longer step.
            t_next = _cubic_min(t_prev, f_prev, gtd_prev, t, f_t, gtd_t, t + 0.01 * (t - t_prev), t * 10)
            t_prev, f_prev, g_prev, gtd_prev, aux_prev = t, f_t, g_t, gtd_t, aux_t
            t = t_next
        # Out of evaluations while still descending: take the best point found.
        return (t_prev, f_prev, g_prev, aux_prev) if t_prev > 0 else (0.0, f0, g0, self.aux)

    def _zoom(self, phi, lo, hi, f0: float, gtd0: float, evals: int):
        c1, c2 = self.c1, self.c2
        while evals < self.max_evals:
            t_lo, f_lo, _, gtd_lo, _ = lo
            t_hi, f_hi, _, gtd_hi, _ = hi
            a, b = min(t_lo, t_hi), max(t_lo, t_hi)
            if b - a < 1e-12 * max(1.0, b):
                break
            # Stay away from the ends of the bracket so that it keeps shrinking.
            margin = 0.1 * (b - a)
            # (_cubic_min falls back to the midpoint when f_hi is NaN/Inf.)
            t = _cubic_min(t_lo, f_lo, gtd_lo, t_hi, f_hi, gtd_hi, a + margin, b - margin)
            f_t, g_t, gtd_t, aux_t = phi(t)
            evals += 1
            point = (t, f_t, g_t, gtd_t, aux_t)
            if not (f_t <= f0 + c1 * t * gtd0) or f_t >= f_lo:
                hi = point
            else:
                if abs(gtd_t) <= -c2 * gtd0:
                    return t, f_t, g_t, aux_t
                if gtd_t * (t_hi - t_lo) >= 0:
                    hi = lo
                lo = point
        t_lo, f_lo, g_lo, _, aux_lo = lo
        if t_lo == 0.0:
            return 0.0, f0, g_lo, aux_lo
        return t_lo, f_lo, g_lo, aux_lo




def _two_loop(old_s, old_y, rho, h_diag, precondition, g):
    """The reference's direction as a function of its lists (``_ListLBFGS._direction``)."""
    ref = _ListLBFGS(precondition=precondition)
    ref.old_s, ref.old_y, ref.rho, ref.h_diag = old_s, old_y, rho, h_diag
    return ref._direction(g)


def _pairs(n, count, dtype, seed=0):
    """(s, y) pairs from a diagonal SPD curvature with noise; every fourth one with negative
    curvature (rejected by both implementations)."""
    gen = torch.Generator().manual_seed(seed)
    curvature = torch.logspace(-1, 1, n, dtype=torch.float64)
    pairs = []
    for i in range(count):
        s = torch.randn(n, generator=gen, dtype=torch.float64)
        y = curvature * s + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
        if i % 4 == 3:
            y = -y
        pairs.append((s.to(dtype), y.to(dtype)))
    return pairs


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("pushes", [3, 6, 23], ids=["partial", "full", "wrapped"])
def test_direction_matches_the_two_loop_recursion(pushes, preconditioned, dtype, rtol):
    shape, history = (1, 3, 16, 16), 5
    n = math.prod(shape)
    pre = pyramid_preconditioner(shape, 1.4) if preconditioned else None
    ring = Curvature(history, torch.zeros(n, dtype=dtype))
    old_s, old_y, rho, h_diag = [], [], [], 1.0
    for s, y in _pairs(n, pushes, dtype):
        used = ring.slots_after_push()
        ring.push(s, y, used)
        ring.used = used  # what LBFGS.step does after the push (a push is device work only)
        ys = float(y.dot(s))  # the reference's rule, verbatim
        if ys > 1e-10:
            if len(old_s) == history:
                old_s.pop(0), old_y.pop(0), rho.pop(0)
            old_s.append(s), old_y.append(y), rho.append(1.0 / ys)
            h_diag = ys / float(y.dot(y))
    assert int(ring.count) == len(old_s) == min(history, pushes - pushes // 4)
    g = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    expected = _two_loop(old_s, old_y, rho, h_diag, pre, g.neg().neg())
    got = ring.direction(g, None, pre)
    assert got.dtype == dtype
    assert (got - expected).norm() <= rtol * expected.norm()
    # As CUDA graphs, the phases use all `history` slots (rounded up): the slots not held weigh nothing.
    wider = ring.direction(g, history, pre)
    assert (wider - expected).norm() <= rtol * expected.norm()


def _field_leaving_the_box(side=16):
    """``(shape, f)``: a smooth-field quadratic whose target leaves [0, 1] in places (so that bounds bind)."""
    shape = (1, 3, side, side)
    f, _ = _smooth_field_problem(side=side)
    target = torch.rand(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4 - 1.5
    return shape, lambda x: f(x) + 5 * ((x - target) ** 2).sum()


@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_runs_match_the_list_based_implementation(bounds, preconditioned):
    # Run long enough for the ring (history 4) to wrap twice.
    shape, g = _field_leaving_the_box()
    pre = pyramid_preconditioner(shape, 1.4) if preconditioned else None
    new = LBFGS(history=4, bounds=bounds, precondition=pre)
    ref = _ListLBFGS(history=4, bounds=bounds, precondition=pre)
    x_new, x_ref = torch.full(shape, 0.5, dtype=torch.float64), torch.full(shape, 0.5, dtype=torch.float64)
    fn_new, fn_ref = _objective(g), _objective(g)
    for _ in range(12):  # (near convergence, round-off steers the line searches apart)
        loss_new, _ = new.step(x_new, fn_new)
        loss_ref, _ = ref.step(x_ref, fn_ref)
        assert loss_new == pytest.approx(loss_ref, rel=1e-9)
        assert torch.allclose(x_new, x_ref, rtol=1e-8, atol=1e-10)
    assert fn_new.calls["n"] == fn_ref.calls["n"]  # the same line-search decisions
    if bounds is not None:
        assert bool((x_new == 0).any()) and bool((x_new == 1).any())  # the bounds did bind


def test_loads_the_list_layout_and_continues_like_it():
    x_new = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    ref = _ListLBFGS(history=3)
    fn = _objective(_rosenbrock)
    for _ in range(6):
        ref.step(x_new, fn)
    assert len(ref.old_s) == 3
    new = LBFGS(history=3)
    new.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert new.pairs == 3 and new.n_iter == 6
    x_ref = x_new.clone()
    for _ in range(5):
        assert new.step(x_new, fn)[0] == pytest.approx(ref.step(x_ref, fn)[0], rel=1e-9)
    assert torch.allclose(x_new, x_ref, rtol=1e-9)


def test_refuses_a_foreign_state_dict_with_one_clear_error():
    with pytest.raises(ValueError, match="not an L-BFGS state dict"):
        LBFGS().load_state_dict({"step": 3})


def test_state_dict_is_a_snapshot_of_the_ring():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    opt = LBFGS(history=2)
    fn = _objective(_rosenbrock)
    for _ in range(3):
        opt.step(x, fn)
    state = opt.state_dict()
    kept = copy.deepcopy(state)
    for _ in range(3):  # the ring buffers are overwritten in place...
        opt.step(x, fn)
    for key in ("s", "y", "ys", "sy"):  # ...but the state dict taken before does not change
        assert torch.equal(state[key], kept[key])


def _count_reads(monkeypatch) -> dict[str, int]:
    """Count the calls of lbfgs._read (the optimiser's one place that reads the device)."""
    reads = {"n": 0}
    real_read = lbfgs_module._read

    def read(*values):
        reads["n"] += 1
        return real_read(*values)

    monkeypatch.setattr(lbfgs_module, "_read", read)
    return reads


def test_one_read_from_the_device_per_evaluation(monkeypatch):
    """Every device→host transfer in a step goes through _read, once per evaluation of fn: the
    tensor→Python conversions are counted by wrapping them on torch.Tensor."""
    shape = (1, 3, 16, 16)
    f, _ = _smooth_field_problem(side=16)
    conversions = {"tolist": 0, "other": 0}
    for name in ("tolist", "item", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            conversions["tolist" if _name == "tolist" else "other"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    reads = _count_reads(monkeypatch)
    calls = {"n": 0}

    def fn(point):  # the loss stays a 0-d tensor, as painterly's engine returns it
        calls["n"] += 1
        x = point.detach().clone().requires_grad_(True)
        loss = f(x)
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad, None

    x = torch.full(shape, 0.5, dtype=torch.float64)
    opt = LBFGS(history=4, bounds=(0.0, 1.0), precondition=pyramid_preconditioner(shape, 1.4))
    for _ in range(12):
        opt.step(x, fn)
    assert calls["n"] > 12  # some line searches took more than one evaluation
    assert reads["n"] == calls["n"] == conversions["tolist"]
    assert conversions["other"] == 0


def test_a_float_and_a_tensor_loss_give_the_same_run():
    def run(as_tensor):
        x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
        opt = LBFGS(history=5)

        def fn(point):
            p = point.detach().clone().requires_grad_(True)
            loss = _rosenbrock(p)
            (grad,) = torch.autograd.grad(loss, p)
            return (loss.detach() if as_tensor else float(loss.detach())), grad, None

        return [opt.step(x, fn)[0] for _ in range(15)], x

    (a, xa), (b, xb) = run(True), run(False)
    assert a == b and torch.equal(xa, xb)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_run_matches_the_cpu_run():
    shape = (1, 3, 16, 16)
    f, _ = _smooth_field_problem(side=16)
    paths = {}
    for device in ("cpu", "cuda"):
        x = torch.full(shape, 0.5, dtype=torch.float64, device=device)
        opt = LBFGS(history=4, bounds=(0.0, 1.0), precondition=pyramid_preconditioner(shape, 1.4))
        fn = _objective(lambda v: f(v.cpu()) if device == "cuda" else f(v))
        paths[device] = [opt.step(x, fn)[0] for _ in range(8)]
        state = opt.state_dict()
        assert state["s"].device.type == device and opt.pairs == 4
    assert paths["cuda"] == pytest.approx(paths["cpu"], rel=1e-9)


def test_read_aux_comes_back_as_floats_from_the_same_read(monkeypatch):
    """With read_aux the objective's 1-d aux is read with the line search's numbers (no read of its
    own) and handed back as a tuple of floats equal to the tensor at the accepted point."""
    reads = _count_reads(monkeypatch)
    calls = {"n": 0}

    def fn(point):
        calls["n"] += 1
        x = point.detach().clone().requires_grad_(True)
        loss = (x - 0.25).pow(2).sum() + x.prod()
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad, torch.stack([loss.detach(), point.sum()])

    x = torch.tensor([0.9, -0.4, 0.3], dtype=torch.float64)
    opt = LBFGS(history=3, read_aux=True)
    for _ in range(4):
        loss, aux = opt.step(x, fn)
        assert isinstance(aux, tuple) and aux == (loss, x.sum().item())
    assert reads["n"] == calls["n"]


def test_a_replayed_phase_runs_its_kernels_on_new_values_but_never_its_python():
    # The emulation the next test relies on: like a CUDA graph, a replay sees the tensors' new values
    # and the Python numbers of the capture; and a read from the device cannot be captured.
    runner = ReplayedPhases(warmup=1)
    buf, out, scale = torch.ones(3), torch.zeros(3), {"k": 2.0}
    phase = runner(lambda: out.copy_(buf * scale["k"] + buf.sum()))
    phase(), phase()  # warm-up (Python), then captured
    buf.fill_(2.0)
    scale["k"] = 10.0  # a graph does not see this
    phase()
    assert out.tolist() == [10.0, 10.0, 10.0] and runner.replays == 1
    reads = ReplayedPhases(warmup=0)(lambda: out.fill_(float(buf.sum())))
    with pytest.raises(HostReadDuringCapture):
        reads()


def test_the_allocation_check_catches_a_phase_that_keeps_what_it_allocates():
    kept: dict = {}
    buf = torch.ones(4)
    runner = AllocationCheck()
    in_place = runner(lambda: buf.mul_(2.0).add_(buf.sum()))
    keeps = runner(lambda: kept.__setitem__("t", buf * 2.0))
    for _ in range(3):
        in_place()
    keeps()  # the first call is the warm-up: not checked
    with pytest.raises(KeptAllocations, match="aten.mul"):
        keeps()
    assert runner.checked == 2


@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_the_phases_keep_nothing_they_allocate(bounds, preconditioned):
    # On CUDA the phases' graphs share a memory pool and replay in any order (graphs.Recorder): a
    # phase may keep only what it writes into the buffers made before, never a tensor it allocated.
    shape, g = _field_leaving_the_box()
    pre = pyramid_preconditioner(shape, 1.4) if preconditioned else None
    runner = AllocationCheck()
    opt = LBFGS(history=4, bounds=bounds, precondition=pre, phases=runner)
    x, fn = torch.full(shape, 0.5, dtype=torch.float64), _objective(g)
    for i in range(14):
        if i == 10:
            opt.reset()
        opt.step(x, fn)
    assert runner.checked > 20


@pytest.mark.parametrize("history", [4, 6])
@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_as_cuda_graphs_the_phases_give_the_same_run(bounds, preconditioned, history):
    # The phases replayed with CUDA-graph semantics (numbers frozen at capture, slots rounded up to
    # powers of two) against the same optimiser as Python: the same losses, images and evaluations,
    # through the ring's wrapping and a reset (what the run does after a NaN).
    shape, g = _field_leaving_the_box()
    pre = pyramid_preconditioner(shape, 1.4) if preconditioned else None
    runner = ReplayedPhases()
    graphed = LBFGS(history=history, bounds=bounds, precondition=pre, phases=runner)
    plain = LBFGS(history=history, bounds=bounds, precondition=pre)
    x_graphed, x_plain = torch.full(shape, 0.5, dtype=torch.float64), torch.full(shape, 0.5, dtype=torch.float64)
    fn_graphed, fn_plain = _objective(g), _objective(g)
    for i in range(16):
        if i == 11:
            graphed.reset(), plain.reset()
        loss_graphed, _ = graphed.step(x_graphed, fn_graphed)
        loss_plain, _ = plain.step(x_plain, fn_plain)
        assert loss_graphed == pytest.approx(loss_plain, rel=1e-9)
        assert torch.allclose(x_graphed, x_plain, rtol=1e-8, atol=1e-10)
    assert fn_graphed.calls["n"] == fn_plain.calls["n"]
    assert runner.captured >= 4 and runner.replays > 2 * runner.captured


@pytest.mark.parametrize("history, side", [(4, 16), (40, 16), (4, 48)])
def test_as_graphs_an_iteration_launches_a_few_operations_per_evaluation_whatever_the_history_and_size(history, side):
    # On a GPU every launch costs more than its arithmetic (benchmarks/launches.py): outside its phases'
    # graphs and the evaluations, an iteration may only move numbers between host and device (the
    # step size in, one read per evaluation out), never do vector work of its own.
    shape = (1, 3, side, side)
    target = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    launches = load_benchmark("launches")
    counter = launches.Counting()

    fn = counter.paused(smooth_pull(target))

    graphs = launches.GraphLaunches(counter)  # a phase's call: one launch, its kernels uncounted
    opt = LBFGS(history=history, bounds=(0.0, 1.0), precondition=pyramid_preconditioner(shape, 1.4), read_aux=True, phases=graphs)
    x = torch.full(shape, 0.5)
    for _ in range(6):
        opt.step(x, fn)
    evaluations, iterations = opt.evals, 6
    with counter:
        for _ in range(iterations):
            opt.step(x, fn)
    evaluations = opt.evals - evaluations
    assert set(counter.ops) <= {"cudaGraphLaunch", "aten.copy_", "aten.fill_", "aten._to_copy", "aten.cat", "aten.zero_"}, counter.ops
    assert sum(counter.ops.values()) <= 6 * evaluations + 4 * iterations, (counter.ops, evaluations)
