"""``painterly batch``: many contents × styles (× swept settings) into one folder, resumable, with a
manifest and a contact sheet; locally (one process, one encoder per set of layers) or on a Ray cluster.

    painterly batch --content photos/ --style 'paintings/*.jpg' -o out/ [--sweep style_weight=50,100]
    painterly batch --jobs jobs.jsonl -o out/ --backend ray --ray-address auto
    painterly batch --jobs jobs.yaml -o out/

A finished job (by ``out/manifest.jsonl``: its settings, and its file's size and SHA-256) is skipped; an
interrupted one continues from its checkpoint; a job that fails is one line and a record, and the
others go on. The exit status is 0 only if every job is done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

from ..errors import ConfigError, PainterlyError

if TYPE_CHECKING:  # the batch modules (and Pillow) are imported when a batch runs, not when --help is built
    from ..batch import Job

SHEET_EVERY = 2.0  # seconds: the contact sheet is redrawn at most this often while jobs finish


def add_batch_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "batch", help="stylise many contents × styles (× settings) into one folder, resumably",
        description="Stylise every content in every style (or --paired), times every --sweep value, into one "
        "folder with a manifest.jsonl and a contact sheet. Re-running the same command skips finished jobs.",
    )  # fmt: skip
    jobs = p.add_argument_group("jobs")
    jobs.add_argument("--content", nargs="+", default=[], metavar="PATH", help="content images: files, folders or globs")
    jobs.add_argument("--style", nargs="+", default=[], metavar="PATH", help="style images: files, folders or globs")
    jobs.add_argument("--paired", action="store_true", help="the i-th content with the i-th style (default: every content in every style)")
    jobs.add_argument("--sweep", action="append", default=[], metavar="FIELD=V1,V2", help="also run every value of a setting, e.g. style_weight=50,100,200 (repeatable: all combinations)")
    jobs.add_argument("--jobs", default=None, metavar="FILE", help='a job file: a job per JSON line {"content": ..., "styles": [...], "options": {...}, "output": ...}, or (.yaml/.yml) a YAML list of the same; its options override the command line')
    jobs.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder of the results, manifest.jsonl, contact-sheet.png and index.html")
    jobs.add_argument("--backend", choices=("local", "ray"), default="local", help="run here (default) or on a Ray cluster")
    jobs.add_argument("--together", type=int, default=None, metavar="N", help="local backend: advance N jobs at once, their images evaluated in one encoder pass (default: 4 on a GPU, 1 on a CPU)")
    jobs.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT", help="the Ray cluster to join (default: the one in RAY_ADDRESS if set, else a new one on this machine)")
    jobs.add_argument("--ray-shared", action="store_true", help="the --output folder is the same path on every Ray node (a shared file system): workers write results and checkpoints there themselves instead of sending them to this machine")
    jobs.add_argument("--ray-workers", type=int, default=None, metavar="N", help="Ray actors, each with its encoder loaded (default: one per GPU, else one per node)")
    # Every stylize option but the per-image outputs (the folder, its manifest and sheet replace them).
    common(p, "stylize", None, skip=("save_every", "log", "plot"))


def job_list(args: argparse.Namespace) -> list[Job]:
    """The jobs the command line asks for."""
    from ..batch import build_jobs, expand_paths, parse_sweep, read_job_file

    if args.jobs is not None:
        if args.content or args.style or args.sweep:
            raise ConfigError("give either --jobs or --content/--style/--sweep, not both")
        return read_job_file(args.jobs)
    if not args.content or not args.style:
        raise ConfigError("batch needs --content and --style (files, folders or globs), or --jobs FILE (.jsonl or .yaml)")
    sweeps = [parse_sweep(s) for s in args.sweep]
    return build_jobs(expand_paths(args.content, "--content"), expand_paths(args.style, "--style"), paired=args.paired, sweeps=sweeps)


class Batch:
    """The state of one ``painterly batch`` command: its jobs, their records, and the files it publishes."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ..batch import read_manifest
        from ..config import INITS
        from .options import config_options

        self.args = args
        self.quiet = args.quiet
        self.jobs = job_list(args)
        self.folder = Path(args.output)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.folder}: is a file; --output is the batch's folder")
        self.base = config_options(args)
        if "init" in self.base and self.base["init"] not in INITS:
            raise ConfigError(f"`init` {self.base['init']}: a batch starts from noise, content or style")
        self.configs: dict[str, Any] = {}
        for job in self.jobs:
            try:
                self.configs[job.output] = job.config(self.base)
            except ConfigError as exc:
                raise ConfigError(f"job {job.output}: {exc.template}") from None
        self._check_outputs()
        self.records: dict[str, dict[str, Any]] = read_manifest(self.folder)
        self._check_folder()
        self._sheet_at = 0.0
        self.unwritten = False  # a manifest, sheet or page could not be written: the exit status is 1
        # The manifest could not be written: nothing more the batch does would be recorded (a result
        # without its record is made again by the next run), so the jobs stop (see :meth:`stuck`).
        self.manifest_unwritten: str | None = None

    def _check_outputs(self) -> None:
        """No result may land on an input (``-o`` the photos' own folder), and each must be an image name."""
        from ..batch import MANIFEST_NAME, PAGE_NAME, SHEET_NAME
        from ..imageio import output_format, same_file

        inputs = {p for job in self.jobs for p in job.inputs}
        for job in self.jobs:
            target = self.folder / job.output
            if job.output.lower() in (MANIFEST_NAME, SHEET_NAME, PAGE_NAME):
                raise ConfigError(f"job {job.output}: the batch writes its own {job.output} there; give the job another output name")
            output_format(target)
            clash = next((p for p in inputs if same_file(target, p)), None)
            if clash is not None:
                raise ConfigError(f"{target}: would overwrite the input {clash}; give the batch its own --output folder")

    def _check_folder(self) -> None:
        """Nothing in ``-o`` that a batch did not write is replaced: a result's name, the manifest, the
        sheet or the page already there without a record of the batch that made it is refused."""
        from ..batch import MANIFEST_NAME, PAGE_NAME, SHEET_NAME

        if not self.folder.is_dir():
            return
        names = [MANIFEST_NAME, SHEET_NAME, PAGE_NAME] if not self.records else []
        # A result written just before the batch was killed (its record not yet written) is its own.
        names += [j.output for j in self.jobs if j.output not in self.records and (self.folder / j.output).exists()
                  and not _made_for(self.folder / j.output, self.configs[j.output])]  # fmt: skip
        foreign = next((self.folder / n for n in names if (self.folder / n).exists()), None)
        if foreign is not None and foreign.name == MANIFEST_NAME:
            raise ConfigError(f"{foreign}: is not a painterly batch manifest; move it away or give the batch another --output folder (it would be replaced)")
        if foreign is not None:
            raise ConfigError(
                f"{foreign}: already there, and {self.folder / MANIFEST_NAME} has no record of a batch making it; "
                "move it away or give the batch another --output folder (it would be replaced)"
            )

    def pending(self) -> list[Job]:
        """The jobs still to do; the finished ones are marked skipped. A finished result that was made with
        other inputs or settings is made again, and one line says so (it is replaced)."""
        from ..batch import is_finished
        from ..batch.manifest import changes

        todo, replaced = [], []
        for job in self.jobs:
            record = self.records.get(job.output)
            if is_finished(record, job, self.configs[job.output], self.folder):
                self.records[job.output] = {**record, "action": "skipped"}
                _drop_checkpoint(self.folder / job.output)
                continue
            todo.append(job)
            if record is not None and record.get("status") == "done" and (self.folder / job.output).is_file():
                changed = changes(record, job, self.configs[job.output])
                if changed:
                    replaced.append(f"{job.output} ({changed})")
        if replaced:
            more = f" and {len(replaced) - 3} more" if len(replaced) > 3 else ""
            self.say(
                f"painterly: {len(replaced)} finished result{'s' * (len(replaced) != 1)} in {self.folder} "
                f"{'were' if len(replaced) != 1 else 'was'} made with other settings and will be replaced: "
                + ", ".join(replaced[:3]) + more
            )
        return todo

    def check_inputs(self, jobs: list[Job]) -> list[Job]:
        """Read every input of ``jobs`` once: a bad one is one line, and its jobs are recorded failed."""
        from ..batch.manifest import failed_record
        from ..engine import to_tensor

        bad: dict[str, str] = {}
        for path in dict.fromkeys(p for job in jobs for p in job.inputs):
            try:
                if Path(path).is_dir():
                    raise PainterlyError(f"{path}: is a folder, not an image file")
                if not Path(path).is_file():
                    raise PainterlyError(f"{path}: no such file")
                to_tensor(path, name=path, max_side=64)
            except PainterlyError as exc:
                bad[path] = " ".join(exc.render(_flag).split())
                count = sum(path in job.inputs for job in jobs)
                self.say(f"painterly: error: {bad[path]} (skipping its {count} job{'s' * (count != 1)})")
        good = []
        for job in jobs:
            reason = next((bad[p] for p in job.inputs if p in bad), None)
            if reason is None:
                good.append(job)
            else:
                self.record(failed_record(job, self.configs[job.output], reason))
        return good

    def make_folder(self) -> None:
        """Create ``-o`` before any job runs: a folder that cannot be made is one line, not a job's failure."""
        from ..files import make_folder

        try:
            make_folder(self.folder)
        except OSError as exc:
            raise ConfigError(f"{self.folder}: cannot create the batch's --output folder ({exc.strerror or exc})") from None

    def record(self, record: dict[str, Any]) -> None:
        """Keep ``record`` and publish the manifest (and, now and then, the contact sheet and page)."""
        self.records[record["output"]] = record
        self.publish(sheet=time.monotonic() - self._sheet_at > SHEET_EVERY)

    def publish(self, *, sheet: bool = True) -> None:
        """Write the manifest (this batch's jobs first, then older records), the sheet and the page."""
        from ..batch import MANIFEST_NAME, PAGE_NAME, SHEET_NAME, contact_page, contact_sheet
        from ..batch.manifest import manifest_bytes
        from ..files import make_folder, write_bytes, write_with

        if not self.records:
            return
        names = {j.output for j in self.jobs}
        ours = [self.records[j.output] for j in self.jobs if j.output in self.records]
        others = [r for k, r in self.records.items() if k not in names]
        target = self.folder / MANIFEST_NAME
        try:
            make_folder(self.folder)
            write_bytes(target, manifest_bytes(ours + others))
            self.manifest_unwritten = None
            if sheet and ours:
                image = contact_sheet(ours, self.folder)
                target = self.folder / SHEET_NAME
                write_with(target, lambda p: image.save(p, format="PNG"))
                page = contact_page(ours, f"painterly batch: {self.folder.name}")
                target = self.folder / PAGE_NAME
                write_bytes(target, page.encode("utf-8"))
                self._sheet_at = time.monotonic()
        except OSError as exc:  # a full disk or a folder gone read-only: the batch ends non-zero
            if not self.unwritten:
                self.say(f"painterly: error: {target}: cannot write it ({exc.strerror or exc}); the exit status will be 1")
            self.unwritten = True
            if target.name == MANIFEST_NAME:
                self.manifest_unwritten = exc.strerror or str(exc)

    def stuck(self) -> bool:
        """Whether the jobs must stop because the manifest cannot be written (says so once)."""
        if self.manifest_unwritten is None:
            return False
        from ..batch import MANIFEST_NAME

        self.say(
            f"painterly: error: stopping the batch: {self.folder / MANIFEST_NAME} cannot be written "
            f"({self.manifest_unwritten}); run the same command again once it can (finished jobs are kept)"
        )
        return True

    def say(self, line: str) -> None:
        from . import say

        say(line)  # a terminal gone mid-batch (ssh closed) must not end the batch

    def summary(self, ran: int) -> int:
        from ..batch import PAGE_NAME

        states = [self.records.get(j.output, {}) for j in self.jobs]
        done = sum(r.get("status") == "done" for r in states)
        failed = [r for r in states if r.get("status") == "failed"]
        skipped = sum(r.get("action") == "skipped" for r in states)
        if not self.quiet or failed:
            self.say(
                f"painterly: batch {self.folder}: {done}/{len(self.jobs)} done ({ran} ran, {skipped} skipped), "
                f"{len(failed)} failed; see {self.folder / PAGE_NAME}"
            )
        return 1 if failed or done < len(self.jobs) or self.unwritten else 0


def _drop_checkpoint(output: Path) -> None:
    """A finished job's checkpoint (left when the folder went read-only or the batch was killed just
    after recording the job) has nothing left to give."""
    from ..files import remove_quietly, remove_stale_temps
    from .outputs import OutputFiles

    checkpoint = OutputFiles(output).checkpoint
    if checkpoint.exists():
        remove_quietly(checkpoint)
        remove_stale_temps(checkpoint)


def _made_for(path: Path, config: Any) -> bool:
    """Whether ``path`` is a PNG that painterly wrote with ``config``'s result settings (its
    ``painterly:config`` text; the device and precision may differ, as for the manifest's jobs)."""
    import json

    from PIL import Image

    from ..batch.manifest import result_settings

    try:
        with Image.open(path) as image:
            saved = image.info.get("painterly:config")
        return saved is not None and result_settings(json.loads(saved)) == result_settings(json.loads(json.dumps(config.to_dict())))
    except Exception:  # noqa: BLE001 - not an image, or not one of ours
        return False


def _flag(field: str) -> str:
    from . import flag

    return flag(field)


def run_batch(args: argparse.Namespace) -> int:
    if args.ray_workers is not None and args.ray_workers < 1:
        raise ConfigError("--ray-workers must be at least 1")
    if args.backend != "ray" and (args.ray_shared or args.ray_address is not None or args.ray_workers is not None):
        raise ConfigError("--ray-shared, --ray-address and --ray-workers need --backend ray")
    if args.backend == "ray" and args.together is not None:
        raise ConfigError("--together is for --backend local (a Ray worker runs one job at a time)")
    batch = Batch(args)
    todo = batch.pending()
    if args.backend == "ray":
        from .batch_ray import check_address, import_ray, run_on_ray

        import_ray()  # before any work: without Ray, one line says how to install it
        check_address(args.ray_address)
        run_jobs = run_on_ray
    else:
        from .batch_local import run_locally

        run_jobs = run_locally
    rc = 0
    if todo:
        batch.make_folder()
    try:
        todo = batch.check_inputs(todo)
        rc = run_jobs(batch, todo)
    finally:
        # Whatever happened (Ctrl-C included), the manifest, sheet and page say what is done.
        batch.publish()
    return rc or batch.summary(len(todo))
