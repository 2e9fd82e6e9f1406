"""Several runs evaluated together (engine/batched.py): the same results as each run alone."""

from __future__ import annotations

import threading

import pytest
import torch

from painterly.engine import StyleTransfer, batched, evaluate_batch, load_inputs, run_together
from painterly.engine.objective import build_objective
from painterly.engine.targets import build_targets

pytestmark = pytest.mark.usefixtures("single_thread")


def _close(a, b, rtol=1e-4, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def test_a_batched_evaluation_equals_each_objective_alone(images, tiny_config, tiny_transfer):
    """Two objectives with different style targets, one pass: each total, term and gradient as alone."""
    cfg = tiny_config()
    transfer = tiny_transfer(cfg)
    hw = tuple(images.content_t.shape[-2:])
    objectives, xs = [], []
    for k, style in enumerate([images.style_t, images.content_t.flip(-1)]):
        inputs = load_inputs(cfg, images.content_t, [style])
        targets = build_targets(transfer.encoder, cfg, inputs, cfg.size, hw, transfer.device, None)
        objectives.append(build_objective(transfer.encoder, cfg, targets, None, (), hw, transfer.device))
        xs.append(torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(k)))
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
