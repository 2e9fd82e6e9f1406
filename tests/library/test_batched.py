"""Several runs evaluated together (engine/batched.py): the same results as each run alone."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from painterly.engine import SharedEvaluation, StyleTransfer, batched, evaluate_batch, load_inputs, run_together
from painterly.errors import ConfigError
from painterly.engine.objective import build_objective
from painterly.engine.targets import build_targets

pytestmark = pytest.mark.usefixtures("single_thread")


def _close(a, b, rtol=1e-4, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _objectives_and_images(images, tiny_config, tiny_transfer, styles):
    """One objective per style over one tiny encoder (the content's size, single level), and a random
    image for each."""
    cfg = tiny_config()
    transfer = tiny_transfer(cfg)
    hw = tuple(images.content_t.shape[-2:])
    objectives, xs = [], []
    for k, style in enumerate(styles):
        inputs = load_inputs(cfg, images.content_t, [style])
        targets = build_targets(transfer.encoder, cfg, inputs, cfg.size, hw, transfer.device, None)
        objectives.append(build_objective(transfer.encoder, cfg, targets, None, (), hw, transfer.device))
        xs.append(torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(k)))
    return objectives, xs


def test_a_batched_evaluation_equals_each_objective_alone(images, tiny_config, tiny_transfer):
    """Two objectives with different style targets, one pass: each total, term and gradient as alone."""
    objectives, xs = _objectives_and_images(images, tiny_config, tiny_transfer, [images.style_t, images.content_t.flip(-1)])
    together = evaluate_batch(list(zip(objectives, xs)))
    for objective, x, (total, grad, values) in zip(objectives, xs, together):
        alone_total, alone_grad, alone_values = objective.evaluation(x)
        _close(total, alone_total)
        _close(values, alone_values)
        _close(grad, alone_grad, rtol=1e-4, atol=1e-3 * alone_grad.abs().max().item())
    assert not torch.allclose(together[0][1], together[1][1])  # the two really had their own targets


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_runs_together_give_the_images_of_runs_alone(optimizer, monkeypatch, images, tiny_config, tiny_transfer):
    """Three seeds and two styles (different numbers of L-BFGS evaluations per iteration, two levels),
    one encoder: every run's progress and final image as when it runs alone."""
    cases = [(0, images.style_t), (1, images.style_t), (2, images.content_t.flip(-1))]
    encoder = tiny_transfer(tiny_config()).encoder

    def make(seed, style):
        cfg = tiny_config(optimizer=optimizer, seed=seed, multiscale=True, size=48, min_size=24, level_iterations=(3, 4))
        return StyleTransfer(cfg, encoder=encoder).start(images.content_t, [style])

    batch_sizes = []

    def counted(items):
        batch_sizes.append(len(items))
        return evaluate_batch(items)

    monkeypatch.setattr(batched, "evaluate_batch", counted)

    alone = []
    for seed, style in cases:
        run = make(seed, style)
        losses = [p.loss for p in run]
        alone.append((losses, run.result(), run.evaluations))
    runs = [make(seed, style) for seed, style in cases]
    seen: dict[int, list[float]] = {i: [] for i in range(len(runs))}
    threads = set()
    for index, progress in run_together(runs):
        seen[index].append(progress.loss)
        threads.add(threading.current_thread().name)
    assert threads == {threading.current_thread().name}  # progress reaches the caller's thread
    for i, run in enumerate(runs):
        losses, image, evaluations = alone[i]
        assert run.evaluations == evaluations
        assert seen[i] == pytest.approx(losses, rel=1e-4)
        _close(run.result(), image, rtol=1e-3, atol=1e-4)
    assert max(batch_sizes) == 3  # really evaluated together
    if optimizer == "lbfgs":  # the runs needed different numbers of evaluations: the rendezvous coped
        assert len({a[2] for a in alone}) > 1 and min(batch_sizes) < 3
    else:
        assert sum(batch_sizes) == sum(a[2] for a in alone)


def test_a_failing_run_stops_the_others_and_raises(images, tiny_config, tiny_transfer):
    cfg = tiny_config(iterations=50)
    runs = [tiny_transfer(cfg).start(images.content_t, [images.style_t]) for _ in range(2)]

    class Boom(RuntimeError):
        pass

    original = runs[1].step

    def failing_step():
        if runs[1].iteration >= 2:
            raise Boom("broken")
        return original()

    runs[1].step = failing_step
    with pytest.raises(Boom):
        for _ in run_together(runs):
            pass
    assert runs[0].stopped and runs[0].iteration < 50


def test_breaking_out_stops_every_run(images, tiny_config, tiny_transfer):
    cfg = tiny_config(iterations=50)
    runs = [tiny_transfer(cfg).start(images.content_t, [images.style_t]) for _ in range(3)]
    for n, _ in enumerate(run_together(runs)):
        if n == 4:
            break
    assert all(r.stopped for r in runs) and all(r.iteration < 50 for r in runs)
    assert all(r.evaluator is None for r in runs)


def _replayed_capture(captures: list):
    """A batch capture (engine.batched.Capture) with CUDA-graph semantics on the CPU (graph_replay)."""
    from graph_replay import replayed_evaluation

    def capture(evaluate, example):
        captures.append(tuple(example.shape))
        return replayed_evaluation(evaluate, example, warmup=1), None

    return capture


def _together(runs, shared):
    losses: dict[int, list[float]] = {i: [] for i in range(len(runs))}
    for index, progress in run_together(runs, shared):
        losses[index].append(progress.loss)
    return losses, [run.result() for run in runs]


@pytest.mark.parametrize("max_graphs", [batched.MAX_GRAPHS, 1], ids=["kept", "evicted"])
def test_passes_replayed_as_graphs_give_the_eager_batches_results(max_graphs, monkeypatch, images, tiny_config, tiny_transfer):
    """What CUDA does with a batch's passes (captured once a group has met ``capture_after`` times, then
    replayed), under CUDA-graph semantics: the same losses and images as eager passes. Two levels, a
    run that ends early (the group shrinks: a new graph) and runs drifting apart in their evaluations
    (groups at two sizes at once); with room for one graph only, graphs are dropped and made again."""
    monkeypatch.setattr(batched, "MAX_GRAPHS", max_graphs)
    encoder = tiny_transfer(tiny_config()).encoder

    def make():
        options = dict(multiscale=True, size=48, min_size=24, lbfgs_history=4)
        cases = [(0, images.style_t, (5, 6)), (1, images.style_t, (5, 6)), (2, images.content_t.flip(-1), (3, 2))]
        return [
            StyleTransfer(tiny_config(seed=seed, level_iterations=its, **options), encoder=encoder).start(images.content_t, [style])
            for seed, style, its in cases
        ]

    eager_losses, eager_images = _together(make(), SharedEvaluation(3))
    captures: list = []
    shared = SharedEvaluation(3, capture=_replayed_capture(captures), capture_after=2)
    graphed_losses, graphed_images = _together(make(), shared)
    assert graphed_losses == eager_losses or all(
        g == pytest.approx(e, rel=1e-5) for g, e in zip(graphed_losses.values(), eager_losses.values())
    )
    for got, want in zip(graphed_images, eager_images):
        _close(got, want, rtol=0, atol=1e-5)
    assert shared.failed is None and shared.captured == len(captures)
    # Three runs at each level, then two after the short run ended; each group once, whatever the order
    # its runs' threads handed their images in.
    assert {shape[0] for shape in captures} >= {3, 2}
    if max_graphs > 1:  # (here no two groups of one level have the same number of runs)
        assert len(set(captures)) == len(captures), captures


def test_a_group_is_one_graph_whatever_order_its_runs_hand_their_images_in(images, tiny_config, tiny_transfer):
    """The runs' threads reach the rendezvous in any order: the group's pass (and its graph) is the
    same, in slot order, and each slot gets its own results."""
    styles = [images.style_t, images.content_t.flip(-1), images.style_t.flip(-2)]
    objectives, xs = _objectives_and_images(images, tiny_config, tiny_transfer, styles)
    hw = tuple(images.content_t.shape[-2:])
    captures: list = []
    shared = SharedEvaluation(3, capture=_replayed_capture(captures), capture_after=2)
    for order in [(2, 0, 1), (1, 2, 0), (0, 2, 1)]:
        results: dict = {}
        threads = []
        for slot in order:
            call = shared.evaluator(slot)(objectives[slot])
            threads.append(threading.Thread(target=lambda s=slot, c=call: results.__setitem__(s, c(xs[s]))))
            threads[-1].start()
            while slot not in shared._pending and slot not in results:  # handed in before the next one
                time.sleep(0.001)
        for thread in threads:
            thread.join()
        for slot in range(3):
            for got, want in zip(results[slot], objectives[slot].evaluation(xs[slot])):
                _close(got, want, rtol=1e-4, atol=1e-3 * want.abs().max().item())
    assert captures == [(3, 3, *hw)]  # captured at the second pass; the third replayed it


def test_a_batch_that_cannot_be_captured_is_evaluated_eagerly(images, tiny_config, tiny_transfer):
    encoder = tiny_transfer(tiny_config()).encoder
    make = lambda: [StyleTransfer(tiny_config(seed=k, iterations=6), encoder=encoder).start(images.content_t, [images.style_t]) for k in range(2)]  # noqa: E731
    eager_losses, eager_images = _together(make(), SharedEvaluation(2))
    shared = SharedEvaluation(2, capture=lambda evaluate, example: (evaluate, "no graphs on this device"), capture_after=2)
    losses, images_out = _together(make(), shared)
    assert losses == eager_losses
    for got, want in zip(images_out, eager_images):
        _close(got, want, rtol=0, atol=0)
    assert shared.failed == "no graphs on this device" and shared.captured == 0


def test_batch_capture_is_cuda_graphs_only_for_runs_on_cuda_with_graphs_on(images, tiny_config, tiny_transfer):
    runs = [tiny_transfer(tiny_config(seed=k)).start(images.content_t, [images.style_t]) for k in range(2)]
    assert batched.batch_capture(runs) is None  # on the CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_runs_together_replay_their_passes_as_graphs(images, tiny_config, tiny_transfer):
    encoder = tiny_transfer(tiny_config(device="cuda")).encoder

    def make():
        return [StyleTransfer(tiny_config(seed=k, iterations=8, device="cuda"), encoder=encoder).start(images.content_t, [images.style_t]) for k in range(3)]

    runs = make()
    shared = SharedEvaluation(3, capture=batched.batch_capture(runs), capture_after=2)
    _, graphed = _together(runs, shared)
    _, eager = _together(make(), SharedEvaluation(3))
    assert shared.failed is None and shared.captured >= 1
    for got, want in zip(graphed, eager):
        _close(got, want, rtol=1e-3, atol=1e-3)


def _first_event_within(iterator, seconds=60.0):
    """``next(iterator)`` in a thread: what it returned or raised, or ``"hung"`` (the defect this
    guards against left every run waiting forever)."""
    outcome: list = ["hung"]

    def take():
        try:
            outcome[0] = next(iterator)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcome[0] = exc

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0]


def test_a_run_given_twice_is_refused_not_a_deadlock(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config())
    run = transfer.start(images.content_t, [images.style_t])
    outcome = _first_event_within(run_together([run, run]))
    assert isinstance(outcome, ConfigError) and str(outcome) == "run_together: run 1 is given twice"
    assert run.evaluator is None and run.iteration == 0
    assert len(list(run_together([run]))) == run.total_iterations  # still usable on its own terms


def test_a_run_already_stepped_is_refused_not_a_deadlock(images, tiny_config, tiny_transfer):
    """Its level's evaluation was made before it joined: it would never hand its image to the batch."""
    transfer = tiny_transfer(tiny_config())
    stepped, fresh = (transfer.start(images.content_t, [images.style_t]) for _ in range(2))
    stepped.step()
    outcome = _first_event_within(run_together([fresh, stepped]))
    assert isinstance(outcome, ConfigError) and "run 1 has already started" in str(outcome)
    run_all = list(stepped)  # a finished run may join (it simply leaves at once)
    assert stepped.done and run_all
    assert len(list(run_together([fresh, stepped]))) == fresh.total_iterations
