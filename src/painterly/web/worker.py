"""The studio's one call into the engine (:func:`run_job`) and the network it runs on (:class:`Encoders`).

Everything around the engine (the queue, statuses, saving the result) is the
:class:`~painterly.web.queue.JobManager`'s; this module is the only place that knows how a job's
images and config become a run.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..config import Config
from .job import Job

EncoderFactory = Callable[[Config], Any]
"""``config -> VGG19Encoder``: lets tests (or a server with its own network) supply the encoder."""


def run_job(job: Job, encoder: Any, on_start: Callable[[Any], None], on_progress: Callable[[Any], None]) -> Any:
    """Run ``job`` to its end on ``encoder``; returns the engine's finished ``Run``.

    ``on_start(run)`` is called once the run exists (so it can be stopped from other threads), then
    ``on_progress(progress)`` after every iteration. Its state is checkpointed now and then and when
    the server stops it (:class:`~painterly.web.resume.Checkpoints`).
    """
    from ..engine import Run, StyleTransfer
    from .resume import Checkpoints

    assert job.config is not None and job.images is not None
    transfer = StyleTransfer(job.config, encoder=encoder)
    # A resumed job continues its checkpoint's state, as `painterly resume` does.
    run = transfer.start(job.images) if job.state is None else Run(transfer, job.images, job.state)
    on_start(run)
    checkpoints = Checkpoints(job)
    for progress in run:
        on_progress(progress)
        checkpoints.due(run)
    if run.stopped and job.interrupt_requested and not job.cancel_requested:
        checkpoints.save(run)  # the server is stopping: its next start can resume from here
    return run


class Encoders:
    """The job's encoder: from the factory, or from (cached) weights named by the config."""

    def __init__(self, factory: EncoderFactory | None = None, keep: int = 2) -> None:
        self.factory = factory
        self.keep = keep
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, config: Config) -> Any:
        if self.factory is not None:
            return self.factory(config)
        from ..engine import build_encoder
        from ..weights import load_weights

        with self._lock:
            weights = self._cache.get(config.weights)
            if weights is None:
                # Reading VGG19 (80 MB) for every job would cost more than a short job's run; keep the
                # last few sources in memory.
                weights = load_weights(config.weights)
                if len(self._cache) >= self.keep:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[config.weights] = weights
        return build_encoder(config, weights=weights)
