"""A waiting job's place in the queue, as its watchers see it, over real HTTP on 127.0.0.1: when a job
ahead of it leaves the line (cancelled, or taken by the worker), its event stream says so at once and
its version changes (the page's gallery redraws a card only then). Tiny random VGG prefix, 32 px."""

from __future__ import annotations

import io
import json
import time
from typing import Any, Iterator

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")

from support import running_server, tiny_options, tiny_weights, token_headers  # noqa: E402

LONG = {"iterations": 5000}


def png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def studio(tmp_path):  # noqa: ANN201
    from painterly.web.app import create_app

    weights = tiny_weights(tmp_path / "tiny-vgg.safetensors", seed=5)
    defaults = tiny_options(weights, size=32, multiscale=False)
    app = create_app(tmp_path / "work", default_options=defaults)
    # A read that waits 10 s for the next event fails the test instead of hanging it.
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=token_headers(app)) as http:
        yield http


def submit(http, options: dict[str, Any]) -> str:  # noqa: ANN001
    files = {"content": ("c.png", png(0), "image/png"), "style": ("s.png", png(1), "image/png")}
    r = http.post("/api/jobs", files=files, data={"options": json.dumps(options)})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def progress_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "progress":
            yield json.loads(line[6:])


def wait_running(http, job_id: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30
    while http.get(f"/api/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_waiting_jobs_stream_and_version_follow_its_place_in_the_queue(studio):
    http = studio
    running = submit(http, LONG)
    wait_running(http, running)
    second, third = submit(http, LONG), submit(http, LONG)
    with http.stream("GET", f"/api/jobs/{third}/events") as stream:
        events = progress_events(stream.iter_lines())
        assert next(events)["position"] == 2
        version = http.get(f"/api/jobs/{third}").json()["version"]
        # The job ahead of it is cancelled: it is next now, and its stream says so.
        assert http.delete(f"/api/jobs/{second}").status_code == 200
        event = next(events)
        assert event["status"] == "queued" and event["position"] == 1, event
        assert http.get(f"/api/jobs/{third}").json()["version"] > version
        # The running one is cancelled: the worker takes it.
        assert http.delete(f"/api/jobs/{running}").status_code == 200
        event = next(events)
        while event["status"] == "queued":
            event = next(events)
        assert event["status"] == "running" and event["position"] is None
    http.delete(f"/api/jobs/{third}")
