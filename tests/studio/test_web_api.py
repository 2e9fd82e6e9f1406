"""The studio's JSON API, against the real app (FastAPI's TestClient runs it in-process).

The network is a tiny random VGG prefix (conv1_1 … conv2_2, real shapes, random values) saved with
``save_weights`` and set as the server's default ``weights``; images are 32–64 px. Each test builds its
own app on its own workdir, so jobs never leak between tests.
"""

from __future__ import annotations

import io
import json
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette's notice about httpx2 is not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from painterly.encoder import random_state  # noqa: E402
from painterly.web.app import create_app  # noqa: E402
from support import tiny_options, tiny_weights  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=1)


@pytest.fixture
def defaults(weights_file) -> dict[str, Any]:
    return tiny_options(weights_file, size=48, iterations=8, multiscale=False, seed=0)


@pytest.fixture
def make_client(tmp_path, defaults):
    """``make_client(**create_app_kwargs)`` → a started TestClient; all are closed at the end."""
    clients: list[TestClient] = []

    def make(**kwargs: Any) -> TestClient:
        kwargs.setdefault("default_options", defaults)
        workdir = kwargs.pop("workdir", tmp_path / f"work{len(clients)}")
        app = create_app(workdir, **kwargs)
        # The server answers to 127.0.0.1 only, and changes need its token (see web/guard.py).
        client = TestClient(app, base_url="http://127.0.0.1", headers={"X-Painterly-Token": app.state.token})
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def png_bytes(width: int, height: int, seed: int = 0, noise: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    if noise:
        arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        y, x = np.mgrid[0:height, 0:width]
        arr = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny, valid-looking PNG whose header declares ``width x height`` pixels."""
    data = bytearray(png_bytes(1, 1))
    # IHDR chunk: length (4) 'IHDR' (4) width (4) height (4) ... then the CRC of type+data.
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def files(content: bytes | None = None, styles: list[bytes] | None = None, *, content_name: str = "content.png") -> list:
    out = []
    if content is not None:
        out.append(("content", (content_name, content, "image/png")))
    for i, s in enumerate(styles or []):
        out.append(("style", (f"style{i}.png", s, "image/png")))
    return out


def submit(client: TestClient, options: dict | None = None, *, content: bytes | None = None, styles: list[bytes] | None = None, **form: Any):
    content = png_bytes(48, 32) if content is None else content
    styles = [png_bytes(40, 40, seed=1, noise=True)] if styles is None else styles
    data = {k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()}
    if options is not None:
        data["options"] = json.dumps(options)
    if form.get("demo"):
        return client.post("/api/jobs", data=data)
    return client.post("/api/jobs", files=files(content, styles), data=data)


def wait_for(client: TestClient, job_id: str, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state: {job['status']} {job['iteration']}/{job['total_iterations']}")
        time.sleep(0.03)


def finished(job: dict) -> bool:
    return job["status"] in ("done", "failed", "cancelled")


def detail(response) -> str:
    body = response.json()
    return body["detail"] if isinstance(body["detail"], str) else json.dumps(body["detail"])


# --- the happy path -----------------------------------------------------------------------------------


def test_submit_poll_and_download_result(client):
    r = submit(client, {"size": 48, "iterations": 6})
    assert r.status_code == 202, r.text
    job = r.json()
    assert len(job["id"]) == 32 and r.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["status"] in ("queued", "running")

    done = wait_for(client, job["id"], finished)
    assert done["status"] == "done", done["error"]
    assert done["iteration"] == done["total_iterations"] == 6
    assert set(done["losses"]) == {"total", "content", "style", "tv"}
    assert len(done["history"]) == 6
    assert done["options"]["size"] == 48 and done["options"]["weights"] == "server"  # no server path leaks

    result = client.get(done["urls"]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert result.content.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(result.content)).size == (48, 32)  # 48x32 content, longest side 48

    download = client.get(done["urls"]["download"])
    assert "attachment" in download.headers["content-disposition"]
    preview = client.get(f"/api/jobs/{job['id']}/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"

    listed = client.get("/api/jobs").json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    assert listed["queue"] == {"waiting": 0, "running": 0, "capacity": 8, "workers": 1}


def test_cli_style_option_names_and_demo_pair(client):
    r = submit(client, {"style-weight": 1000, "original-colors": "luminance", "iterations": 4}, demo=True)
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"], finished)
    assert done["status"] == "done", done["error"]
    assert done["options"]["style_weight"] == 1000 and done["options"]["original_colors"] == "luminance"
    assert done["inputs"]["demo"] is True
    assert Image.open(io.BytesIO(client.get(done["urls"]["result"]).content)).size == (48, 32)  # demo is 451x300
    assert client.get("/api/demo/content").headers["content-type"] == "image/jpeg"
    assert client.get("/api/demo/style").status_code == 200
    assert client.get("/api/demo/passwd").status_code == 404


def test_event_stream_reports_progress_then_end(client):
    job_id = submit(client, {"iterations": 25}).json()["id"]
    events: list[tuple[str, dict]] = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line[5:])))
    names = [n for n, _ in events]
    assert names[-1] == "end" and names.count("end") == 1
    assert events[-1][1]["status"] == "done"
    progress = [d for n, d in events if n == "progress"]
    assert any(d["status"] == "running" and d["iteration"] > 0 for d in progress)
    with_preview = [d for d in progress if d["urls"]["preview"]]
    assert with_preview and client.get(with_preview[-1]["urls"]["preview"]).status_code == 200
    # The loss points arrive in pieces; together they are the whole history, each iteration once.
    points = [p for d in progress for p in d["points"]]
    assert [p[0] for p in points] == list(range(1, 26))
    assert all(set(d["losses"]) <= {"total", "content", "style", "tv"} for d in progress)


def test_previews_are_throttled(client):
    job_id = submit(client, {"iterations": 60}).json()["id"]
    t0 = time.monotonic()
    done = wait_for(client, job_id, finished)
    seconds = time.monotonic() - t0
    assert done["status"] == "done"
    # ≤ 3 frames a second, plus the first and the final result's frame.
    assert done["frame"] <= 3 * seconds + 3, (done["frame"], seconds)


def test_init_from_a_previous_result(client):
    first = wait_for(client, submit(client).json()["id"], finished)
    r = submit(client, {"iterations": 3}, init_job=first["id"])
    assert r.status_code == 202, r.text
    second = wait_for(client, r.json()["id"], finished)
    assert second["status"] == "done", second["error"]
    assert second["options"]["init"] == f"job:{first['id']}"
    assert second["inputs"]["init_job"] == first["id"]
    assert submit(client, init_job="0" * 32).status_code == 404
    assert submit(client, init_job="../../etc/passwd").status_code == 404


def test_engine_errors_fail_the_job_with_one_line(client):
    # The server's weights stop at conv2_2: a run that needs relu4_2 cannot be built.
    r = submit(client, {"content_layers": "relu4_2"})
    assert r.status_code == 202
    job = wait_for(client, r.json()["id"], finished)
    assert job["status"] == "failed"
    assert "conv3_1" in job["error"] and "\n" not in job["error"]
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409
    # ... and the worker goes on to the next job.
    assert wait_for(client, submit(client).json()["id"], finished)["status"] == "done"


def test_finished_jobs_come_back_after_a_restart(make_client, tmp_path):
    first = make_client(workdir=tmp_path / "shared")
    job_id = submit(first).json()["id"]
    wait_for(first, job_id, finished)
    second = make_client(workdir=tmp_path / "shared")
    job = second.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and len(job["history"]) == 8
    assert second.get(f"/api/jobs/{job_id}/result").content.startswith(PNG_MAGIC)
    assert second.get(f"/api/jobs/{job_id}/preview").status_code == 200


def test_notes_come_with_the_job_in_the_requests_words_and_survive_a_restart(make_client, tmp_path):
    """What the library finds odd but usable is shown with the job (the CLI prints it as a note),
    naming options as the request spelled them; a plain request has none."""
    first = make_client(workdir=tmp_path / "shared")
    r = submit(first, {"size": 96, "iterations": 2, "optimizer": "adam", "lbfgs-history": 5})
    assert r.status_code == 202, r.text
    notes = [
        "lbfgs-history has no effect with optimizer adam",
        "content image is only 48x32 px; upscaled to 96 px",
    ]
    assert r.json()["notes"] == notes
    wait_for(first, r.json()["id"], finished)
    assert make_client(workdir=tmp_path / "shared").get(f"/api/jobs/{r.json()['id']}").json()["notes"] == notes
    assert submit(first, {"size": 48, "iterations": 2}).json()["notes"] == []


def test_encoder_factory_supplies_the_network(make_client):
    from painterly.encoder import VGG19Encoder

    built: list[tuple[str, ...]] = []

    def factory(config):
        built.append(config.layers_needed)
        return VGG19Encoder(random_state(), "caffe", config.layers_needed, config.pooling)

    # No weights anywhere: every layer of the tiny random network is available.
    client = make_client(encoder_factory=factory, default_options={"size": 32, "iterations": 3, "multiscale": False})
    job = wait_for(client, submit(client).json()["id"], finished)
    assert job["status"] == "done", job["error"]
    assert job["options"]["weights"] == "caffe"
    assert built == [("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")]


def test_importing_the_web_package_stays_light():
    import subprocess
    import sys

    code = "import sys, painterly.web; print(sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- cancelling and the queue -----------------------------------------------------------------------


def test_cancel_a_running_job(client):
    job_id = submit(client, {"size": 64, "iterations": 5000}).json()["id"]
    running = wait_for(client, job_id, lambda j: j["status"] == "running" and j["iteration"] >= 3)
    # The engine's ETA and share of the work (issue 19), while it runs.
    assert running["eta"] is not None and running["eta"] > 0
    assert 0 < running["work_fraction"] < 0.01
    t0 = time.monotonic()
    r = client.delete(f"/api/jobs/{job_id}")
    assert r.status_code == 200
    job = wait_for(client, job_id, finished, timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert job["status"] == "cancelled" and job["iteration"] < 5000
    assert job["eta"] is None  # nothing left to wait for
    # What was painted so far is kept, like the CLI's Ctrl-C.
    assert client.get(f"/api/jobs/{job_id}/result").content.startswith(PNG_MAGIC)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 409  # already over


def test_queue_positions_cancel_waiting_and_429_when_full(make_client):
    client = make_client(queue_size=2)
    long = {"size": 64, "iterations": 5000}
    running = submit(client, long).json()["id"]
    wait_for(client, running, lambda j: j["status"] == "running")
    a = submit(client, long).json()
    b = submit(client, long).json()
    assert (a["status"], a["position"]) == ("queued", 1)
    assert (b["status"], b["position"]) == ("queued", 2)

    full = submit(client, long)
    assert full.status_code == 429 and "queue is full" in detail(full)

    assert client.delete(f"/api/jobs/{a['id']}").json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{b['id']}").json()["position"] == 1
    assert client.get("/api/jobs").json()["queue"]["waiting"] == 1
    assert submit(client, {"iterations": 2}).status_code == 202  # room again
    for job_id in (b["id"], running):
        client.delete(f"/api/jobs/{job_id}")
    assert client.get(f"/api/jobs/{running}").json()["status"] == "cancelled"


# --- refusals ---------------------------------------------------------------------------------------


def test_oversized_upload_is_413(make_client):
    client = make_client(max_upload_bytes=100_000)
    big = png_bytes(256, 256, noise=True)  # ~200 kB of incompressible pixels
    assert len(big) > 100_000
    r = submit(client, content=big)
    assert r.status_code == 413 and "larger than the upload limit" in detail(r)
    r = submit(client, styles=[png_bytes(40, 40), big])
    assert r.status_code == 413 and detail(r).startswith("style image 2")


def test_whole_request_over_the_cap_is_413_before_parsing(make_client):
    client = make_client(max_upload_bytes=10_000)  # cap on a whole request: 10 files' worth + 1 MB
    headers = {"content-type": "multipart/form-data; boundary=zz"}
    r = client.post("/api/jobs", content=b"x" * 2_000_000, headers=headers)
    assert r.status_code == 413 and "request is larger" in detail(r)
    # Without a Content-Length (chunked), the bytes are counted as they arrive.
    chunks = (b"--zz\r\n" + b"x" * 100_000 for _ in range(20))
    r = client.post("/api/jobs", content=chunks, headers=headers)
    assert r.status_code == 413 and "request is larger" in detail(r)
    assert client.get("/api/jobs").status_code == 200


def test_pixel_bombs_are_413(make_client):
    client = make_client(max_pixels=1_000_000)
    bomb = png_bomb()
    assert len(bomb) < 100
    r = submit(client, content=bomb)
    assert r.status_code == 413, r.text
    r = submit(client, content=png_bytes(1200, 1000))  # a real image, just over this server's limit
    assert r.status_code == 413 and "1200x1000" in detail(r) and "at most 1 megapixels" in detail(r)


def test_non_images_are_415_whatever_their_name(client):
    r = submit(client, content=b"hello, I am not a picture\n" * 10, content_name="photo.png")
    assert r.status_code == 415 and "not an image" in detail(r)
    r = submit(client, content=b"%PDF-1.7\n...", content_name="scan.jpg")
    assert r.status_code == 415


def test_truncated_or_empty_images_are_400(client):
    data = png_bytes(64, 64, noise=True)
    r = submit(client, content=data[: len(data) // 2])
    assert r.status_code == 400 and "truncated or corrupt" in detail(r)
    r = submit(client, content=b"")
    assert r.status_code == 400 and "empty" in detail(r)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": -5}, "size must be at least 1"),
        ({"sise": 64}, "unknown option 'sise'"),
        ({"optimizer": "newton"}, "optimizer must be one of"),
        ({"style-weight": "lots"}, "style-weight must be a number"),
        ({"size": 100_000}, "on this server, got 100000"),  # the limit: what fits (test_web_capacity.py)
        ({"weights": "/etc/passwd"}, "weights must be caffe or torchvision"),
        ({"init": "/etc/passwd"}, "init must be noise, content or style"),
        ({"max_pixels": 10**12}, "set by the server"),
        ({"style_blend": "1,2"}, "style_blend has 2 values for 1 style image"),
        ([1, 2], "options must be a JSON object"),
    ],
)
def test_bad_options_are_400_with_the_message(client, options, message):
    r = submit(client, options)
    assert r.status_code == 400 and message in detail(r), r.text


def test_malformed_requests(client):
    r = client.post("/api/jobs", data={"options": "{not json"}, files=files(png_bytes(32, 32), [png_bytes(32, 32)]))
    assert r.status_code == 400 and "not valid JSON" in detail(r)
    r = client.post("/api/jobs", files=files(None, [png_bytes(32, 32)]))
    assert r.status_code == 400 and "content" in detail(r)
    r = client.post("/api/jobs", files=files(png_bytes(32, 32), []))
    assert r.status_code == 400 and "style" in detail(r)
    r = client.post("/api/jobs", data={"demo": "maybe"})
    assert r.status_code == 422 and r.json()["field"] == "demo" and detail(r).startswith("demo: ")
    r = client.post("/api/jobs", data={"demo": "true"}, files=files(png_bytes(32, 32), []))
    assert r.status_code == 400 and "not both" in detail(r)


def test_unknown_jobs_are_404_and_unfinished_results_409(client):
    for path in ("/api/jobs/" + "a" * 32, "/api/jobs/nope", "/api/jobs/..%2F..%2Fetc/result", "/api/jobs/" + "b" * 32 + "/events"):
        assert client.get(path).status_code == 404, path
    assert client.delete("/api/jobs/" + "c" * 32).status_code == 404
    job_id = submit(client, {"size": 64, "iterations": 5000}).json()["id"]
    r = client.get(f"/api/jobs/{job_id}/result")
    assert r.status_code == 409 and "ready when it is done" in detail(r)
    client.delete(f"/api/jobs/{job_id}")


def test_server_keeps_serving_after_bad_requests(make_client):
    client = make_client(max_upload_bytes=100_000, max_pixels=1_000_000)
    bad = [
        submit(client, content=png_bytes(256, 256, noise=True)),
        submit(client, content=png_bomb()),
        submit(client, content=b"plain text", content_name="x.png"),
        submit(client, content=png_bytes(64, 64, noise=True)[:300]),
        submit(client, {"size": "huge"}),
        client.post("/api/jobs", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}),
        client.get("/api/jobs/" + "f" * 32),
    ]
    assert [r.status_code for r in bad] == [413, 413, 415, 400, 400, 400, 404]
    assert client.get("/").status_code == 200
    job = wait_for(client, submit(client).json()["id"], finished)
    assert job["status"] == "done"
    assert client.get("/api/jobs").json()["queue"]["waiting"] == 0


# --- the page and the schema ------------------------------------------------------------------------


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "painterly" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    # Fully offline: nothing on the page comes from elsewhere.
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text and "https://" not in text
    config = client.get("/api/config").json()
    assert config["defaults"]["weights"] == "server"
    assert config["limits"]["max_upload_bytes"] == 20 * 1024 * 1024
    assert set(config["presets"]) == {"draft", "normal", "high"}


def test_openapi_lists_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/jobs"]) == {"get", "post"}
    assert set(paths["/api/jobs/{job_id}"]) == {"get", "delete"}
    for path in ("/api/jobs/{job_id}/events", "/api/jobs/{job_id}/preview", "/api/jobs/{job_id}/result", "/api/demo", "/api/config"):
        assert "get" in paths[path], path
    form = paths["/api/jobs"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form


def test_serve_reports_a_busy_port_in_one_line(capsys, tmp_path):
    import socket

    from painterly.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--workdir", str(tmp_path / "w")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


def test_serve_refuses_a_bad_port_workdir_or_keep_in_one_line_naming_the_flag(capsys, tmp_path):
    from painterly.cli import main

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for args, flag in (
        (["--port", "99999"], "--port"),  # not port 34463 (99999 modulo 65536) without a word
        (["--port", "-1"], "--port"),
        (["--workdir", str(a_file)], "--workdir"),
        (["--keep", "0"], "--keep"),
    ):
        argv = ["serve", "--port", "0", "--workdir", str(tmp_path / "w"), *args]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"painterly: error: {flag} ") and err.count("\n") == 1, err
    assert a_file.read_text() == "not a folder"


@pytest.mark.slow
def test_painterly_serve_prints_its_url_and_serves(tmp_path):
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "painterly", "serve", "--port", "0", "--workdir", str(tmp_path / "w")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert lines and lines[0].startswith("painterly studio: http://127.0.0.1:"), (lines, proc.poll())
        url = lines[0].split()[2]
        assert httpx.get(url + "/api/config", timeout=10).json()["defaults"]["weights"] == "caffe"
        assert "painterly" in httpx.get(url + "/", timeout=10).text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code in (0, 130), proc.stderr.read()
