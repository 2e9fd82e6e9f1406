"""painterly's own L-BFGS (one iteration per step, strong-Wolfe line search), in float64."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from painterly.lbfgs import LBFGS, _cubic_min


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
    assert len(loaded["old_s"]) == len(opt.old_s) <= 3
    assert loaded["n_iter"] == 4 and loaded["f"] == opt.f


def test_history_is_bounded():
    _, _, f = _quadratic(n=12)
    x = torch.zeros(12, dtype=torch.float64)
    opt = LBFGS(history=3)
    fn = _objective(f)
    for _ in range(8):
        opt.step(x, fn)
    assert len(opt.old_s) == len(opt.old_y) == len(opt.rho) <= 3


def test_reset_forgets_history_and_cached_loss():
    _, _, f = _quadratic()
    x = torch.ones(6, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(f)
    for _ in range(3):
        opt.step(x, fn)
    assert opt.old_s and opt.f is not None
    opt.reset()
    assert opt.old_s == [] and opt.old_y == [] and opt.rho == []
    assert opt.f is None and opt.g is None and opt.n_iter == 0 and opt.h_diag == 1.0
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
    assert opt.old_s == []
    assert opt.evals <= 11


def test_stationary_point_is_left_alone():
    x = torch.zeros(3, dtype=torch.float64)
    opt = LBFGS()
    fn = _objective(lambda v: (v**2).sum())
    loss, _ = opt.step(x, fn)
    assert loss == 0.0 and torch.equal(x, torch.zeros(3, dtype=torch.float64))
    assert fn.calls["n"] == 1


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
