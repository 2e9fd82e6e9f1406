"""The studio's batch view: a grid of jobs (one content × several styles, times the values of one swept
setting such as ``style_weight=50,100,200``) submitted to the studio's own queue as ordinary jobs, and
the contact sheet of :mod:`painterly.batch.sheet` drawn from their results as they finish.

A batch is a small record, ``<workdir>/batches/<id>.json``: its rows, columns and the job of each cell.
Everything else (status, progress, results) is the jobs' own; a cell whose job the gallery has since
removed shows as ``removed``. Routes (added by :func:`add_batch_routes`):

* ``POST /api/batches`` (token): ``content`` (or ``demo=true``), ``style`` (repeat), ``options`` (JSON,
  as for a job), ``sweep`` (``FIELD=V1,V2,...``, optional) → 202 and the batch;
* ``GET /api/batches/{id}``: the grid, each cell's job status and progress, and the sheet's URL;
* ``GET /api/batches/{id}/sheet``: the contact sheet (PNG) as it stands;
* ``GET /batch``: the page (``static/batch.html`` and ``batch.js``).
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ..errors import ConfigError, shown
from .job import DONE, FINAL, Job
from .options import Limits, build_config, check_budget, notes_as_sent, planned_iterations, public_options, read_options
from .queue import JobManager, QueueFull
from .resume import keep_inputs
from .uploads import require_form, sent_once, uploaded_pair

BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_SWEEP_VALUES = 12


class BatchStore:
    """The batch records of a workdir (``batches/<id>.json``, written atomically)."""

    def __init__(self, workdir: Path) -> None:
        self.folder = Path(workdir) / "batches"

    def save(self, batch: dict[str, Any]) -> None:
        from ..files import make_folder, write_bytes

        make_folder(self.folder)
        write_bytes(self.folder / f"{batch['id']}.json", json.dumps(batch).encode("utf-8"))

    def load(self, batch_id: str) -> dict[str, Any]:
        if not BATCH_ID.match(batch_id):
            raise HTTPException(404, f"no batch {shown(batch_id)} on this server")
        try:
            return json.loads((self.folder / f"{batch_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise HTTPException(404, f"no batch {shown(batch_id)} on this server") from None


def grid_columns(styles: list[str], sweep: tuple[str, tuple[Any, ...]] | None) -> list[tuple[int, str, dict[str, Any]]]:
    """(style index, column label, swept option) for each column: every style times every swept value."""
    from ..batch.jobs import _stem, _value_text

    values = [{}] if sweep is None else [{sweep[0]: v} for v in sweep[1]]
    return [
        (i, " ".join([_stem(name), *(f"{k}={_value_text(v)}" for k, v in swept.items())]), swept)
        for i, name in enumerate(styles)
        for swept in values
    ]


def cell_record(manager: JobManager, cell: Mapping[str, Any]) -> dict[str, Any]:
    """A cell as a contact-sheet record (:func:`painterly.batch.contact_sheet`), from its job's state."""
    job = manager.get(cell["job"])
    record = {"row": cell["row"], "column": cell["column"], "output": f"{cell['job']}/result.png", "job": cell["job"]}
    if job is None:
        return {**record, "status": "failed", "error": "removed"}
    snap = manager.snapshot(job)
    status = snap["status"]
    if status == DONE and snap["has_result"]:
        return {**record, "status": "done", "seconds": snap["elapsed"], "seed": snap["seed"], "losses": snap["losses"]}
    if status in FINAL:
        return {**record, "status": "failed", "error": snap["error"] or status}
    note = "queued" if status != "running" else f"running {100 * snap['work_fraction']:.0f} %"
    return {**record, "status": status, "note": note}


def add_batch_routes(
    app: FastAPI, manager: JobManager, *, defaults: Mapping[str, Any], limits: Limits,
    max_upload_bytes: int, max_pixels: int, token: str,
) -> None:  # fmt: skip
    """Add the batch routes to the studio's ``app``; ``token``: this server's (the page carries it)."""
    from .app import STATIC_DIR, TOKEN_PLACEHOLDER

    store = BatchStore(manager.workdir)
    page = (STATIC_DIR / "batch.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, token)

    @app.get("/batch", include_in_schema=False)
    def batch_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    @app.post(
        "/api/batches", status_code=202, tags=["batches"], summary="Submit a grid: one content × styles (× a sweep)",
        dependencies=[Depends(sent_once("content", "options", "sweep", "demo"))],
    )  # fmt: skip
    def submit_batch(
        request: Request,
        content: UploadFile | None = File(None, description="the content image"),
        style: list[UploadFile] | None = File(None, description="the style images, one column each (repeat the field)"),
        options: str | None = Form(None, description="JSON object of options for every job, as for POST /api/jobs"),
        sweep: str | None = Form(None, description="a setting and its values, one column each: FIELD=V1,V2,..."),
        demo: bool = Form(False, description="the built-in demo pair instead of uploads"),
    ) -> JSONResponse:
        from ..api import load_inputs
        from ..batch.jobs import parse_sweep

        require_form(request.headers.get("content-type"))
        requested = read_options(request, options)
        base = build_config(requested, defaults, limits)
        swept = None
        if sweep is not None and sweep.strip():
            swept = parse_sweep(sweep)
            if not swept[1]:
                raise ConfigError(f"`sweep` {shown(sweep)}: no values")
            if len(swept[1]) > MAX_SWEEP_VALUES:
                raise ConfigError(f"`sweep`: at most {MAX_SWEEP_VALUES} values, got {len(swept[1])}")
        styles_in = [s for s in (style or []) if s is not None]
        content_img, style_imgs, content_name, style_names = uploaded_pair(
            demo, content, styles_in, max_styles=limits.max_styles, max_bytes=max_upload_bytes, max_pixels=max_pixels,
            max_side=limits.max_size, style_hint=" (one column each)",
        )
        if demo:
            content_name, style_names = "demo", ["demo style"]
        columns = grid_columns(style_names, swept)
        counts = manager.counts()
        if len(columns) > counts["capacity"]:
            raise ConfigError(f"`sweep`: a grid of {len(columns)} jobs is more than this server's queue holds ({counts['capacity']})")
        # Every job is checked (options, budget, images) before any is queued: a bad cell queues nothing.
        planned = []
        for index, label, values in columns:
            config = base if not values else build_config({**requested, **values}, defaults, limits)
            check_budget(config, 1, limits)
            images = load_inputs(config, content_img, [style_imgs[index]], warn=False)
            planned.append((label, values, config, images, style_names[index]))
        if counts["capacity"] - counts["waiting"] < len(planned):
            raise HTTPException(429, f"the queue has room for {counts['capacity'] - counts['waiting']} jobs, the grid needs {len(planned)}; try again when some have finished")
        from ..batch.jobs import _stem

        row = _stem(content_name)
        cells: list[dict[str, Any]] = []
        for label, values, config, images, style_name in planned:
            job_id, directory = manager.new_directory()
            job = Job(
                id=job_id, directory=directory, options=public_options(config), config=config, images=images,
                inputs={"content": content_name, "styles": [style_name], **({"demo": True} if demo else {})},
                notes=notes_as_sent(images.notes, request.state.option_keys),
                total_iterations=planned_iterations(config),
            )  # fmt: skip
            try:
                keep_inputs(job)  # what a resume needs (web/resume.py); 507 on a full disk
                manager.submit(job)
            except (QueueFull, HTTPException) as exc:  # another request took the room meanwhile: take back this grid's jobs
                manager.discard_directory(directory)
                for cell in cells:
                    if (queued := manager.get(cell["job"])) is not None:
                        manager.cancel(queued, wait=0)
                if isinstance(exc, HTTPException):
                    raise
                raise HTTPException(429, str(exc)) from None
            cells.append({"job": job_id, "row": row, "column": label, "swept": values})
        batch_id = uuid.uuid4().hex
        batch = {"id": batch_id, "created": time.time(), "rows": [row], "columns": [c["column"] for c in cells], "sweep": sweep or None, "cells": cells}
        store.save(batch)
        body = batch_snapshot(batch)
        return JSONResponse(body, status_code=202, headers={"Location": f"/api/batches/{batch_id}"})

    def batch_snapshot(batch: Mapping[str, Any]) -> dict[str, Any]:
        records = [cell_record(manager, c) for c in batch["cells"]]
        done = sum(r["status"] == "done" for r in records)
        over = sum(r["status"] in ("done", "failed") for r in records)
        cells = []
        for cell, rec in zip(batch["cells"], records):
            job = manager.get(cell["job"])
            snap = manager.snapshot(job) if job is not None else None
            status = snap["status"] if snap else "removed"
            cells.append({
                "row": cell["row"], "column": cell["column"], "job": cell["job"], "status": status,
                # A cancelled (or removed) job has no error but its status: the page would show it twice.
                "work_fraction": snap["work_fraction"] if snap else 0.0, "error": None if rec.get("error") == status else rec.get("error"),
                "result": snap["urls"]["result"] if snap else None,
            })  # fmt: skip
        return {
            "id": batch["id"], "rows": batch["rows"], "columns": batch["columns"], "sweep": batch.get("sweep"),
            "cells": cells, "total": len(cells), "done": done, "over": over, "finished": over == len(cells),
            "urls": {"self": f"/api/batches/{batch['id']}", "sheet": f"/api/batches/{batch['id']}/sheet?over={over}"},
        }  # fmt: skip

    @app.get("/api/batches/{batch_id}", tags=["batches"], summary="A grid's cells, their jobs' status, and the sheet's URL")
    def get_batch(batch_id: str) -> dict[str, Any]:
        return batch_snapshot(store.load(batch_id))

    @app.get("/api/batches/{batch_id}/sheet", tags=["batches"], summary="The contact sheet as it stands (PNG)")
    def get_sheet(batch_id: str) -> Response:
        from ..batch import contact_sheet

        batch = store.load(batch_id)
        image = contact_sheet([cell_record(manager, c) for c in batch["cells"]], manager.jobs_dir)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})
