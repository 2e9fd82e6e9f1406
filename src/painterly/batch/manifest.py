"""The record of a batch: ``manifest.jsonl`` in the output folder, one JSON object a job.

A record says what the job was (inputs, options, the seed in effect), how it went (``status``: ``done``
or ``failed``, with ``error``; ``action``: ``ran``, ``resumed`` or ``skipped`` in the latest run), how
long it took, its final losses, and the output's size and SHA-256, so that a re-run can tell a finished
job from one whose file was removed, replaced or cut short. This module builds and checks records;
the command line writes the file (atomically, through :mod:`painterly.files`).
"""

from __future__ import annotations

import hashlib
import os
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..config import Config
from .jobs import Job

MANIFEST_NAME = "manifest.jsonl"


def file_digest(path: str | Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def result_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The settings (``Config.to_dict()``) that make two results the same: all but where and at which
    precision they were computed."""
    return {k: v for k, v in options.items() if k not in ("device", "precision")}


def job_identity(job: Job, config: Config) -> dict[str, Any]:
    """What makes two jobs the same job: the output name, the inputs and :func:`result_settings`."""
    options = result_settings(config.to_dict())
    return {"output": job.output, "content": job.content, "styles": list(job.styles), "options": options}


def done_record(job: Job, config: Config, output: Path, *, seed: int, seconds: float, losses: Mapping[str, float],
                iterations: int, action: str) -> dict[str, Any]:
    size, sha = file_digest(output)
    return {
        **job_identity(job, config), "status": "done", "action": action, "seed": seed,
        "seconds": round(seconds, 3), "iterations": iterations,
        "losses": {k: float(v) for k, v in losses.items()}, "bytes": size, "sha256": sha,
        "row": job.row, "column": job.column,
    }  # fmt: skip


def failed_record(job: Job, config: Config | None, error: str) -> dict[str, Any]:
    identity = job_identity(job, config) if config is not None else {"output": job.output, "content": job.content, "styles": list(job.styles), "options": dict(job.options)}
    return {**identity, "status": "failed", "action": "ran", "error": error, "row": job.row, "column": job.column}


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """The records of ``folder``'s manifest by output name (a damaged line is ignored: its job reruns)."""
    try:
        lines = (folder / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("output"), str):
            out[record["output"]] = record
    return out


def is_finished(record: Mapping[str, Any] | None, job: Job, config: Config, folder: Path) -> bool:
    """Whether ``record`` shows ``job`` done with these settings, and its file is still the one written."""
    if record is None or record.get("status") != "done":
        return False
    if changes(record, job, config):
        return False
    path = folder / job.output
    try:
        if path.stat().st_size != record.get("bytes"):
            return False
        return file_digest(path)[1] == record.get("sha256")
    except OSError:
        return False


def _same_paths(was: Any, now: str | list[str]) -> bool:
    """The same input files, however spelt (``photos/a.jpg``, ``./photos/a.jpg``, an absolute path)."""
    if was == now:
        return True
    if isinstance(now, str):
        return isinstance(was, str) and os.path.realpath(was) == os.path.realpath(now)
    return isinstance(was, list) and len(was) == len(now) and all(_same_paths(w, n) for w, n in zip(was, now))


def changes(record: Mapping[str, Any], job: Job, config: Config) -> str:
    """What differs between ``record`` and ``job`` with ``config``, in words (``style_weight 100 → 5``);
    "" when nothing does."""
    now = job_identity(job, config)
    was = {k: record.get(k) for k in now}
    parts = [f"{k} {was[k]} → {now[k]}" for k in ("content", "styles") if not _same_paths(was[k], now[k])]
    if was["output"] != now["output"]:
        parts.append(f"output {was['output']} → {now['output']}")
    old, new = was["options"] if isinstance(was["options"], dict) else {}, now["options"]
    parts += [f"{k} {old.get(k)} → {new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(parts)


def manifest_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
