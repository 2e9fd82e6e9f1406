"""A batch worker for Ray: an actor that keeps its encoders loaded and runs one job at a time.

It gets the settings and either the already-loaded inputs (tensors: the driver read the files, so a
worker needs no access to them) or the checkpoint the job continues from, and returns the finished
image and what the manifest records; the driver writes every file. While a job runs, the worker
reports its progress (and, with ``checkpoint_every``, its checkpoints) to a :class:`ProgressBoard`
actor through a :class:`BoardSink`; the driver reads the board, shows each job's bar and writes each
checkpoint beside its output, so that a job whose worker dies continues from there on the next try.
:meth:`BatchWorker.stop` (the actor runs two calls at once) ends the job in flight within one loss
evaluation and returns its state, as Ctrl-C does to a local batch.

Nothing here imports Ray: :func:`painterly.cli.batch_ray` wraps the classes with ``ray.remote``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any, Mapping

PROGRESS_EVERY = 0.2  # seconds: a worker reports a job's progress at most this often (and its last step)


def progress_fields(progress: Any) -> dict[str, Any]:  # noqa: ANN401 - an engine Progress
    """A :class:`~painterly.engine.Progress` without its image (plain numbers: cheap to send)."""
    out = {f.name: getattr(progress, f.name) for f in dataclasses.fields(progress) if f.name != "image"}
    out["losses"] = {k: float(v) for k, v in out["losses"].items()}
    return out


class ProgressBoard:
    """Where workers leave the latest progress and checkpoint of each job (by its key) and the driver
    takes them; only the newest of each is kept."""

    def __init__(self) -> None:
        self._progress: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, dict[str, Any]] = {}

    def progress(self, key: str, fields: dict[str, Any]) -> None:
        self._progress[key] = fields

    def checkpoint(self, key: str, state: dict[str, Any]) -> None:
        self._checkpoints[key] = state

    def take(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(progress by key, checkpoints by key) left since the last call; the board is emptied."""
        out = (self._progress, self._checkpoints)
        self._progress, self._checkpoints = {}, {}
        return out


class BoardSink:
    """A worker's side of the board: each report is sent without waiting (a Ray actor handle)."""

    def __init__(self, board: Any) -> None:  # noqa: ANN401 - an actor handle of a ProgressBoard
        self.board = board

    def progress(self, key: str, fields: dict[str, Any]) -> None:
        self.board.progress.remote(key, fields)

    def checkpoint(self, key: str, state: dict[str, Any]) -> None:
        self.board.checkpoint.remote(key, state)


class BatchWorker:
    """Runs jobs with one :class:`~painterly.batch.encoders.EncoderCache` for its whole life.

    Args:
        threads: torch threads for this worker (its share of the node's CPUs).
    """

    def __init__(self, threads: int | None = None) -> None:
        import torch

        from .encoders import EncoderCache

        if threads:
            torch.set_num_threads(threads)
        self.encoders = EncoderCache()
        self._lock = threading.Lock()
        self._run: Any = None
        self._stopped = False

    def pid(self) -> int:
        """The worker's process id (shown by the driver, so that a stuck worker can be found)."""
        return os.getpid()

    def stop(self) -> None:
        """End the job in flight within one loss evaluation (it returns its state), and any later one at once."""
        with self._lock:
            self._stopped = True
            if self._run is not None:
                self._run.stop()

    def run(
        self, key: str, config: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
        checkpoint: Mapping[str, Any] | None = None, checkpoint_every: int = 0, sink: Any = None, store: Any = None,
    ) -> dict[str, Any]:  # fmt: skip
        """One job: ``config`` as :meth:`Config.to_dict`, and ``inputs`` as :meth:`Inputs.to_dict` or the
        ``checkpoint`` (:meth:`Run.state_dict`) it continues. ``key`` names the job in its reports to
        ``sink`` (a :class:`BoardSink`; None: no reports). The sink comes with each call, not with the
        actor: Ray cannot restart an actor whose constructor arguments were lost from its object store.
        ``store``, when the output folder is shared by every node, keeps the job's checkpoints and its
        result itself (``store.checkpoint(state)``, ``store.result(image)``: the command line's writers,
        run here) instead of sending them to the driver.

        Returns ``pid``, ``seed``, ``seconds``, ``iterations``, ``total``, ``resumed_at`` (the iteration
        of the checkpoint, or None) and ``stopped``; a finished job adds ``image`` ((1, 3, H, W) float32
        in [0, 1], CPU; None when ``store`` wrote it) and ``losses``, a stopped one ``state`` (its
        checkpoint; None when ``store`` kept it). Errors (a
        :class:`~painterly.errors.PainterlyError`) propagate.
        """
        from ..config import Config
        from ..engine import Inputs, Run, StyleTransfer

        cfg = Config.from_mapping(config)
        transfer = StyleTransfer(cfg, encoder=self.encoders.get(cfg))
        if checkpoint is not None:
            run = Run.from_state_dict(transfer, checkpoint)
        elif inputs is not None:
            run = transfer.start(Inputs.from_dict(cfg, inputs))
        else:
            raise ValueError("run() needs inputs or a checkpoint")
        resumed_at = run.iteration if checkpoint is not None else None
        with self._lock:
            self._run = run
            if self._stopped:
                run.stop()
        last = 0.0
        try:
            for progress in run:
                now = time.monotonic()
                if sink is not None and (now - last >= PROGRESS_EVERY or progress.iteration == progress.total_iterations):
                    sink.progress(key, progress_fields(progress))
                    last = now
                if checkpoint_every and progress.iteration % checkpoint_every == 0 and not run.done:
                    if store is not None:
                        store.checkpoint(run.state_dict())
                    elif sink is not None:
                        sink.checkpoint(key, run.state_dict())
        finally:
            with self._lock:
                self._run = None
        out = {
            "pid": os.getpid(), "seed": run.seed, "seconds": run.elapsed, "iterations": run.iteration,
            "total": run.total_iterations, "resumed_at": resumed_at, "stopped": run.iteration < run.total_iterations,
        }  # fmt: skip
        if out["stopped"]:
            out["state"] = run.state_dict()
            if store is not None and store.checkpoint(out["state"]):
                out["state"] = None
        else:
            out["image"] = run.result()
            out["losses"] = dict(run.state.losses)
            if store is not None:
                store.result(out["image"])
                out["image"] = None
        return out
