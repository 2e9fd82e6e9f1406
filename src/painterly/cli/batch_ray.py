"""``painterly batch --backend ray``: the same job list as Ray tasks on actors that each keep their
encoder loaded (one per GPU, or one per node on CPUs, or ``--ray-workers``). The driver reads the
inputs, writes every output, the manifest and the contact sheet, and reports progress and failures as
the local backend does. An actor that dies (its node lost, its process killed) is restarted by Ray and
its job retried there; a job that fails with an error is recorded failed and the others go on.
"""

from __future__ import annotations

import sys
from typing import Any

from ..batch.jobs import Job
from ..errors import ConfigError, PainterlyError

INSTALL_HINT = "--backend ray needs Ray, which is not installed: pip install 'painterly[ray]'"
RETRIES = 3  # restarts of a dead actor, and retries of the job it had


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


def run_on_ray(batch: Any, jobs: list[Job]) -> int:
    """Run ``jobs`` on the Ray cluster of ``--ray-address`` (or a new one on this machine)."""
    ray = import_ray()
    from ..batch.manifest import done_record, failed_record
    from ..batch.ray_worker import BatchWorker
    from ..engine import load_inputs
    from ..imageio import save_image
    from . import flag
    from .batch_local import JobsBar, _metadata

    if not jobs:
        return 0
    args = batch.args
    try:
        ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False, configure_logging=False, ignore_reinit_error=True)
    except ConnectionError as exc:
        raise ConfigError(f"--ray-address {args.ray_address}: cannot join that Ray cluster ({' '.join(str(exc).split())})") from None
    try:
        count, ask = _worker_plan(ray, args.ray_workers)
        actor = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, **ask)(BatchWorker)
        threads = int(ask.get("num_cpus", 1)) if "num_gpus" not in ask else None
        workers = [actor.remote(threads) for _ in range(min(count, len(jobs)))]
        pids = ray.get([w.pid.remote() for w in workers])
        if not batch.quiet:
            batch.say(f"painterly: ray: {len(workers)} worker{'s' * (len(workers) != 1)} (pids {', '.join(map(str, pids))}), {ask}")
        bar = JobsBar(len(jobs), batch.quiet)
        queue = list(jobs)
        running: dict[Any, tuple[Any, Job]] = {}

        def submit(worker: Any) -> None:
            while queue:
                job = queue.pop(0)
                config = batch.configs[job.output]
                try:
                    inputs = load_inputs(config, job.content, job.styles, warn=False)
                except PainterlyError as exc:
                    fail(job, config, exc)
                    continue
                running[worker.run.remote(config.to_dict(), inputs.to_dict())] = (worker, job)
                return

        def fail(job: Job, config: Any, exc: BaseException) -> None:
            reason = " ".join((exc.render(flag) if isinstance(exc, PainterlyError) else f"{type(exc).__name__}: {exc}").split())
            batch.say(f"painterly: error: {job.output}: {reason}")
            batch.record(failed_record(job, config, reason))
            bar.finished(job.output, "failed")

        try:
            for worker in workers:
                submit(worker)
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                worker, job = running.pop(ref)
                config = batch.configs[job.output]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the job's own error, raised in the worker
                    fail(job, config, exc.cause if isinstance(exc.cause, BaseException) else exc)
                    submit(worker)
                    continue
                except ray.exceptions.RayActorError as exc:  # the worker is gone for good (retries used up)
                    fail(job, config, RuntimeError(f"worker lost: {str(exc).splitlines()[0]}"))
                    continue
                path = batch.folder / job.output
                save_image(result["image"], path, metadata=_metadata(config))
                batch.record(
                    done_record(job, config, path, seed=result["seed"], seconds=result["seconds"], losses=result["losses"], iterations=result["iterations"], action="ran")
                )  # fmt: skip
                bar.finished(job.output, f"ran on worker {result['pid']}, {result['seconds']:.1f} s, seed {result['seed']}")
                submit(worker)
        finally:
            bar.close()
        if queue:  # every worker lost: what is left is recorded, not silently dropped
            for job in queue:
                fail(job, batch.configs[job.output], RuntimeError("no Ray worker left to run it"))
    finally:
        ray.shutdown()
    sys.stderr.flush()
    return 0
