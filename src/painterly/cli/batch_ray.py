"""``painterly batch --backend ray``: the same job list as Ray tasks on actors that each keep their
encoder loaded (one per GPU, or one per node on CPUs, or ``--ray-workers``). The driver reads the
inputs, writes every output, checkpoint, the manifest and the contact sheet, and reports progress and
failures as the local backend does: the bar over the jobs, each running job's own bar beneath it (on
a terminal; the workers report through a :class:`~painterly.batch.ray_worker.ProgressBoard` actor),
one line a failed job.

Resuming: with ``--checkpoint-every N`` the workers send their checkpoints to the driver, which keeps
them beside the outputs (``<output>.ckpt``, as locally); with ``--ray-shared`` (the output folder is
the same path on every node) the workers write checkpoints and results there themselves. A worker that dies is restarted by Ray and the
driver runs its job again from the latest checkpoint (up to 3 times); Ctrl-C or SIGTERM stops every
job in flight within one loss evaluation and keeps its checkpoint, and the next run continues it, on
either backend. A job that fails with an error is recorded failed and the others go on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.jobs import Job
from ..errors import ConfigError, ImageError, PainterlyError

INSTALL_HINT = "--backend ray needs Ray, which is not installed: pip install 'painterly[ray]'"
RETRIES = 3  # restarts of a dead actor, and tries of the job it had
TICK = 0.2  # seconds: how often the driver reads the workers' progress while it waits for results
STOP_WAIT = 60.0  # seconds: how long a stopped batch waits for its jobs to hand back their state


def import_ray() -> Any:  # noqa: ANN401
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _worker_plan(ray: Any, wanted: int | None) -> tuple[int, dict[str, float]]:
    """How many actors, and what each asks of Ray (a GPU each where there are GPUs; else a node's CPUs)."""
    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (wanted or gpus), {"num_gpus": 1, "num_cpus": 1}
    cpus = int(resources.get("CPU", 1))
    count = wanted or max(1, len(nodes))
    return count, {"num_cpus": max(1, cpus // count)}


@dataclass(frozen=True)
class SharedFolder:
    """``--ray-shared``: a job's checkpoints and result are written by its worker, straight into the
    output folder (the same path on every node), in the forms the local backend writes them."""

    folder: str
    output: str
    every: int
    metadata: dict[str, str]

    def checkpoint(self, state: dict[str, Any]) -> bool:
        from .batch_local import write_checkpoint
        from .outputs import OutputFiles

        return write_checkpoint(OutputFiles(Path(self.folder) / self.output), state, self.every)

    def result(self, image: Any) -> None:  # noqa: ANN401 - a (1, 3, H, W) tensor
        from ..imageio import save_image

        save_image(image, Path(self.folder) / self.output, metadata=self.metadata)


@dataclass
class Flight:
    """A job in flight: on which worker, under which key (output and try), and its bar."""

    job: Job
    worker: Any
    key: str
    bar: Any


class RayJobs:
    """The driver's side of one batch on Ray: hands jobs to workers, shows their progress, keeps their
    checkpoints, writes their results, and tries a job again when its worker died."""

    def __init__(self, ray: Any, batch: Any, jobs: list[Job], workers: list[Any], board: Any) -> None:
        from .batch_local import JobsBar

        from ..batch.ray_worker import BoardSink

        self.ray, self.batch, self.board = ray, batch, board
        self.sink = BoardSink(board)
        self.queue = list(jobs)
        self.workers = workers
        self.slots = {id(w): i for i, w in enumerate(workers)}  # a worker's bar sits on its own line
        self.deaths: dict[int, int] = {}
        self.tries: dict[str, int] = {}
        self.running: dict[Any, Flight] = {}
        self.every = int(getattr(batch.args, "checkpoint_every", 0) or 0)
        self.shared = bool(getattr(batch.args, "ray_shared", False))
        if self.shared:  # the workers write into it
            from ..files import make_folder

            make_folder(batch.folder)
        self.bar = JobsBar(len(jobs), batch.quiet)
        self.stopping: int | None = None
        self.halted = False
        """The manifest cannot be written: the jobs in flight are stopped at their checkpoints, no more start."""

    def files(self, job: Job) -> Any:
        from .outputs import OutputFiles

        return OutputFiles(self.batch.folder / job.output)

    def submit(self, worker: Any) -> None:
        """Give ``worker`` the next job (from its checkpoint when there is one); a job whose inputs cannot
        be read fails here and the next is tried."""
        from ..engine import load_inputs
        from .batch_local import _metadata, read_checkpoint
        from .report import ProgressBar

        while self.queue and self.stopping is None and not self.halted:
            job = self.queue.pop(0)
            config = self.batch.configs[job.output]
            state = read_checkpoint(self.files(job), config)
            inputs = None
            if state is None:
                try:
                    inputs = load_inputs(config, job.content, job.styles, warn=False).to_dict()
                except PainterlyError as exc:
                    self.fail(job, exc)
                    continue
            self.tries[job.output] = self.tries.get(job.output, 0) + 1
            key = f"{job.output}#{self.tries[job.output]}"
            store = SharedFolder(str(self.batch.folder.resolve()), job.output, self.every, _metadata(config)) if self.shared else None
            ref = worker.run.remote(key, config.to_dict(), inputs, state, self.every, self.sink, store)
            bar = ProgressBar(config.iterations, quiet=self.batch.quiet or self.bar.bar is None, position=1 + self.slots[id(worker)], leave=False, label=job.output)
            self.running[ref] = Flight(job, worker, key, bar)
            return

    def fail(self, job: Job, exc: BaseException) -> None:
        from ..batch.manifest import failed_record
        from . import flag

        reason = " ".join((exc.render(flag) if isinstance(exc, PainterlyError) else f"{type(exc).__name__}: {exc}").split())
        self.batch.say(f"painterly: error: {job.output}: {reason}")
        self.batch.record(failed_record(job, self.batch.configs[job.output], reason))
        self.bar.finished(job.output, "failed")

    def drain(self) -> None:
        """Show the latest progress of each job in flight and keep its latest checkpoint (reports of a
        job no longer in flight, or of an earlier try, are dropped)."""
        from ..engine import Progress
        from .batch_local import write_checkpoint

        progress, checkpoints = self.ray.get(self.board.take.remote())
        flights = {f.key: f for f in self.running.values()}
        for key, fields in progress.items():
            if key in flights:
                flights[key].bar.update(Progress(**fields, image=None))
        for key, state in checkpoints.items():
            if key in flights:
                write_checkpoint(self.files(flights[key].job), state, self.every)

    def finish(self, ref: Any) -> None:
        """A job's call came back: record its result, keep its state, or run it again."""
        from ..batch.manifest import done_record
        from ..files import remove_quietly
        from ..imageio import save_image
        from .batch_local import _metadata, write_checkpoint

        ray = self.ray
        flight = self.running.pop(ref)
        flight.bar.close()
        job, worker = flight.job, flight.worker
        config = self.batch.configs[job.output]
        files = self.files(job)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the job's own error, raised in the worker
            self.fail(job, exc.cause if isinstance(exc.cause, BaseException) else exc)
            self.submit(worker)
            return
        except ray.exceptions.RayActorError as exc:  # the worker died: Ray restarts it; the job runs again
            self.lost(job, worker, exc)
            return
        if result["stopped"]:
            kept = result["state"] is None or write_checkpoint(files, result["state"], self.every)
            from .signals import signal_name

            name = signal_name(self.stopping) if self.stopping is not None else "stopping"
            self.batch.say(
                f"painterly: {name}: stopped {job.output} at iteration {result['iterations']}/{result['total']}"
                + ("; run the same command again to continue" if kept else "")
            )
            return
        if result["image"] is not None:
            try:
                save_image(result["image"], files.output, metadata=_metadata(config))
            except PainterlyError as exc:  # as a local batch: the job fails, its image kept elsewhere
                from .runner import keep_in_temp

                safe = keep_in_temp(result["image"], files.output, _metadata(config))
                self.fail(job, ImageError(exc.template + (f"; the finished image is kept in {safe}" if safe else "")))
                self.submit(worker)
                return
        action = "ran" if result["resumed_at"] is None else "resumed"
        try:
            record = done_record(job, config, files.output, seed=result["seed"], seconds=result["seconds"], losses=result["losses"], iterations=result["iterations"], action=action)
        except OSError:  # --ray-shared, but the worker's folder is not the driver's
            self.fail(job, RuntimeError(f"--ray-shared: worker {result['pid']} wrote {files.output}, which this machine cannot see; is the folder shared?"))
            self.submit(worker)
            return
        self.batch.record(record)
        remove_quietly(files.checkpoint)  # after the record: a driver killed in between continues the job
        since = "" if result["resumed_at"] is None else f" from iteration {result['resumed_at']}"
        self.bar.finished(job.output, f"{action}{since} on worker {result['pid']}, {result['seconds']:.1f} s, seed {result['seed']}")
        self.submit(worker)

    def lost(self, job: Job, worker: Any, exc: BaseException) -> None:
        """``job``'s worker died: try the job again (from its latest checkpoint), on this worker once Ray
        has restarted it, or on another when this one is gone for good."""
        self.deaths[id(worker)] = self.deaths.get(id(worker), 0) + 1
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self.tries.get(job.output, 0) > RETRIES or self.stopping is not None:
            self.fail(job, RuntimeError(f"worker lost: {reason}"))
        else:
            state = "its latest checkpoint" if self.files(job).checkpoint.is_file() else "the start"
            self.batch.say(f"painterly: ray: the worker running {job.output} died; running it again from {state}")
            self.queue.insert(0, job)
        if self.deaths[id(worker)] <= RETRIES:
            self.submit(worker)
        elif not any(self.deaths.get(id(w), 0) <= RETRIES for w in self.workers):
            self.queue, left = [], self.queue  # every worker lost: what is left is recorded, not dropped
            for other in left:
                self.fail(other, RuntimeError("no Ray worker left to run it"))

    def run(self) -> int:
        """Every job to its end (or, on a signal, every job in flight to its checkpoint); 128 + signal or 0."""
        ray = self.ray
        from .signals import Signals

        # Signals with no run: it only records the signal; the loop below asks the jobs to hand back.
        with Signals(None) as signals:
            try:
                for worker in self.workers:
                    self.submit(worker)
                waited = 0.0
                while self.running:
                    if signals.received is not None and self.stopping is None:
                        self.stopping = signals.received
                        for worker in self.workers:
                            worker.stop.remote()
                    ready, _ = ray.wait(list(self.running), num_returns=1, timeout=TICK)
                    self.drain()
                    for ref in ready:
                        self.finish(ref)
                    if not self.halted and self.stopping is None and self.batch.stuck():
                        # As a local batch does: a job finished now could not be recorded (it would be
                        # made again by the next run), so the jobs in flight stop at their checkpoints.
                        self.halted = True
                        for worker in self.workers:
                            worker.stop.remote()
                    if self.stopping is not None or self.halted:
                        waited += TICK
                        if waited > STOP_WAIT:
                            break
            finally:
                for flight in self.running.values():
                    flight.bar.close()
                self.bar.close()
        return 128 + self.stopping if self.stopping is not None else 1 if self.halted else 0


def check_address(address: str | None) -> None:
    """A ``--ray-address HOST:PORT`` (or, without the flag, Ray's own ``RAY_ADDRESS``) must answer
    before Ray is asked to join it: Ray itself retries an address where nothing listens for minutes,
    printing its own warnings."""
    import os
    import socket

    where = "--ray-address"
    if address is None:
        address, where = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address is None or address in ("auto", "local"):  # Ray's own words: find a cluster, or start one here
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where} {address}: write it as HOST:PORT (e.g. 10.0.0.5:6379), auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"{where} {address}: nothing answers there ({reason}); is the cluster started (ray start --head)?") from None


def run_on_ray(batch: Any, jobs: list[Job]) -> int:
    """Run ``jobs`` on the Ray cluster of ``--ray-address`` (or a new one on this machine)."""
    ray = import_ray()
    from ..batch.ray_worker import BatchWorker, ProgressBoard

    if not jobs:
        return 0
    args = batch.args
    try:
        ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False, configure_logging=False, ignore_reinit_error=True)
    except (ConnectionError, ValueError) as exc:
        raise ConfigError(f"--ray-address {args.ray_address}: cannot join that Ray cluster ({' '.join(str(exc).split())})") from None
    try:
        count, ask = _worker_plan(ray, args.ray_workers)
        # Two calls at once: stop() must reach a worker while its run() goes on. The driver tries a
        # job again itself (max_task_retries=0) so that the new try starts from the latest checkpoint.
        actor = ray.remote(max_restarts=RETRIES, max_task_retries=0, max_concurrency=2, **ask)(BatchWorker)
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        threads = int(ask.get("num_cpus", 1)) if "num_gpus" not in ask else None
        workers = [actor.remote(threads) for _ in range(min(count, len(jobs)))]
        pids = ray.get([w.pid.remote() for w in workers])
        if not batch.quiet:
            batch.say(f"painterly: ray: {len(workers)} worker{'s' * (len(workers) != 1)} (pids {', '.join(map(str, pids))}), {ask}")
        rc = RayJobs(ray, batch, jobs, workers, board).run()
    finally:
        ray.shutdown()
    sys.stderr.flush()
    return rc
