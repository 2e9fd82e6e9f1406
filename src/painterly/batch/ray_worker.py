"""A batch worker for Ray: an actor that keeps its encoders loaded and runs one job at a time.

It gets the settings and the already-loaded inputs (tensors: the driver read the files, so a worker
needs no access to them) and returns the finished image and what the manifest records; the driver
writes every file. Nothing here imports Ray: :func:`painterly.cli.batch_ray` wraps the class with
``ray.remote``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping


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

    def pid(self) -> int:
        """The worker's process id (shown by the driver, so that a stuck worker can be found)."""
        return os.getpid()

    def run(self, config: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
        """One job: ``config`` as :meth:`Config.to_dict`, ``inputs`` as :meth:`Inputs.to_dict`. Returns
        ``image`` ((1, 3, H, W) float32 in [0, 1], CPU), ``seed``, ``seconds``, ``losses``,
        ``iterations`` and ``pid``. Errors (a :class:`~painterly.errors.PainterlyError`) propagate."""
        from ..config import Config
        from ..engine import Inputs, StyleTransfer

        cfg = Config.from_mapping(config)
        transfer = StyleTransfer(cfg, encoder=self.encoders.get(cfg))
        run = transfer.start(Inputs.from_dict(cfg, inputs))
        for _ in run:
            pass
        return {
            "image": run.result(), "seed": run.seed, "seconds": run.elapsed, "losses": dict(run.state.losses),
            "iterations": run.iteration, "pid": os.getpid(),
        }  # fmt: skip
