"""Who may use the studio, what it may be asked to compute, and what it keeps: against the real app
over HTTP on 127.0.0.1 (uvicorn in a thread, or a real ``painterly serve``-like subprocess).

The network is a tiny random VGG prefix (conv1_1 … conv2_2, real shapes) saved as a file and set as
the server's default ``weights``.
"""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from painterly.web.app import create_app  # noqa: E402
from support import TOKEN_HEADER, running_server, tiny_options, tiny_weights, token_headers  # noqa: E402

FOREIGN = "http://evil.example"
LONG = {"size": 64, "iterations": 5000}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=4)


@pytest.fixture
def defaults(weights_file) -> dict[str, Any]:
    return tiny_options(weights_file, size=32, iterations=4, multiscale=False, seed=0)


@pytest.fixture
def studio(tmp_path, defaults):
    """(app, base URL, httpx client without any token) of a running server."""
    app = create_app(tmp_path / "work", default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield app, url, http


def png(width: int = 40, height: int = 32, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def upload(options: dict | None = None) -> dict[str, Any]:
    data = {"options": json.dumps(options)} if options is not None else {}
    return {"files": {"content": ("c.png", png()), "style": ("s.png", png(seed=1))}, "data": data}


def wait_status(http, job_id: str, statuses: set[str], timeout: float = 60.0, headers=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"still {job['status']}"
        time.sleep(0.05)


def host_of(url: str) -> str:
    return url.split("://", 1)[1]


# --- Host, Origin and the token -----------------------------------------------------------------------


def test_a_foreign_pages_form_cannot_start_jobs(studio):
    app, url, http = studio
    # What a self-submitting form on another site sends: urlencoded, with the other site's Origin.
    r = http.post("/api/jobs", data={"demo": "true"}, headers={"Origin": FOREIGN, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "other sites" in r.json()["detail"]
    r = http.post("/api/jobs", data={"demo": "true"}, headers={"Origin": "null"})  # sandboxed frames
    assert r.status_code == 403
    r = http.post("/api/jobs", data={"demo": "true"}, headers={"Origin": url, "Sec-Fetch-Site": "same-site"})
    assert r.status_code == 403
    # Nor without any Origin and token (a browser that sends none, a stray script).
    r = http.post("/api/jobs", data={"demo": "true"})
    assert r.status_code == 403 and TOKEN_HEADER in r.json()["detail"]
    r = http.post("/api/jobs", data={"demo": "true"}, headers={TOKEN_HEADER: "0" * 32})
    assert r.status_code == 403 and "does not match" in r.json()["detail"]
    assert http.get("/api/jobs").json()["jobs"] == []  # nothing was started


def test_dns_rebinding_host_names_are_refused(studio):
    app, url, http = studio
    port = url.rsplit(":", 1)[1]
    job_id = http.post("/api/jobs", **upload(LONG), headers=token_headers(app)).json()["id"]
    rebound = {"Host": f"rebind.example:{port}"}
    for method, path in (("GET", "/api/jobs"), ("GET", f"/api/jobs/{job_id}/result"), ("GET", "/"), ("DELETE", f"/api/jobs/{job_id}")):
        r = http.request(method, path, headers=rebound)
        assert r.status_code == 421, (method, path, r.status_code)
    # Even with the token: the page under the rebound name must not be served at all.
    assert http.delete(f"/api/jobs/{job_id}", headers={**rebound, **token_headers(app)}).status_code == 421
    assert http.get("/api/jobs", headers={"Host": "127.0.0.1:1"}).status_code == 421  # another port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert http.get("/api/jobs", headers={"Host": host}).status_code == 200
    assert http.get(f"/api/jobs/{job_id}").json()["status"] in ("queued", "running")  # not cancelled
    http.delete(f"/api/jobs/{job_id}", headers=token_headers(app))


def test_the_pages_own_requests_carry_the_token_and_are_accepted(studio):
    app, url, http = studio
    page = http.get("/")
    token = re.search(r'<meta name="painterly-token" content="([0-9a-f]{32})">', page.text).group(1)
    assert token == app.state.token
    assert page.headers["cache-control"] == "no-store"
    # What the page's fetch() sends: same Origin, same-origin fetch metadata, the token.
    browser = {"Origin": url, "Sec-Fetch-Site": "same-origin", TOKEN_HEADER: token}
    r = http.post("/api/jobs", **upload({"iterations": 2}), headers=browser)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert wait_status(http, job_id, {"done", "failed"})["status"] == "done"
    # A same-origin form without the token is the page too.
    r = http.post("/api/jobs", **upload(LONG), headers={"Origin": url, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 202
    assert http.delete(f"/api/jobs/{r.json()['id']}", headers=browser).status_code == 200


def test_a_script_with_the_token_needs_no_origin(studio):
    app, url, http = studio
    r = http.post("/api/jobs", data={"demo": "true", "options": '{"iterations": 2}'}, headers=token_headers(app))
    assert r.status_code == 202, r.text
    # The token wins over a foreign Origin: it can only have come from this server.
    r = http.post("/api/jobs", **upload({"iterations": 2}), headers={**token_headers(app), "Origin": FOREIGN})
    assert r.status_code == 202


def test_security_headers_on_every_response_and_no_third_party_docs(studio):
    app, url, http = studio
    responses = [
        http.get("/"),
        http.get("/static/app.js"),
        http.get("/api/config"),
        http.get("/api/jobs/" + "a" * 32),  # 404
        http.post("/api/jobs", data={"demo": "true"}),  # 403
        http.get("/", headers={"Host": "evil.example"}),  # 421
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 403, 421]
    for r in responses:
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert http.get("/docs").status_code == 404 and http.get("/redoc").status_code == 404
    assert TOKEN_HEADER in http.get("/openapi.json").json()["info"]["description"]
    assert "<script>" not in responses[0].text and "style=" not in responses[0].text  # nothing inline


# --- what a job may ask for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        # limit: the longest side this server computes (what fits its memory: /api/config).
        (lambda limit: {"size": 64, "style_scale": 1.5 * limit / 64}, "style_scale"),
        (lambda limit: {"size": limit, "style_scale": 1.5}, "style_scale"),
        (lambda limit: {"multiscale": True, "min_size": 2 * limit, "size": 64}, "min_size"),
        (lambda limit: {"seed": 2**64}, "seed"),
        (lambda limit: {"lbfgs_history": 100_000}, "lbfgs_history"),
    ],
)
def test_sizes_and_seeds_beyond_this_server_are_400_naming_the_field(studio, options, field):
    app, url, http = studio
    limit = http.get("/api/config").json()["limits"]["max_size"]
    r = http.post("/api/jobs", **upload(options(limit)), headers=token_headers(app))
    assert r.status_code == 400 and r.json()["detail"].startswith(field), r.text


def test_the_pixel_budget_counts_every_style(tmp_path, defaults):
    from painterly.web.options import Limits

    app = create_app(tmp_path / "w", default_options=defaults, limits=Limits(max_size=256, max_total_pixels=3 * 256 * 256))
    styles = [("style", (f"s{i}.png", png(seed=i))) for i in range(3)]
    with running_server(app) as url, httpx.Client(base_url=url, headers=token_headers(app)) as http:
        ok = http.post("/api/jobs", files=[("content", ("c.png", png())), *styles[:2]], data={"options": '{"size": 256, "iterations": 1}'})
        assert ok.status_code == 202, ok.text  # 256² × (1 + 2) = the budget
        r = http.post("/api/jobs", files=[("content", ("c.png", png())), *styles], data={"options": '{"size": 256}'})
        assert r.status_code == 400 and r.json()["detail"].startswith("size:") and "megapixels" in r.json()["detail"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_device_this_server_lacks_is_400(studio):
    app, url, http = studio
    r = http.post("/api/jobs", **upload({"device": "cuda"}), headers=token_headers(app))
    assert r.status_code == 400 and r.json()["field"] == "device" and "no CUDA GPU" in r.json()["detail"], r.text


def test_deeply_nested_options_are_400_naming_options(studio):
    app, url, http = studio
    for text in ("[" * 100_000, '{"style_blend": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"size": NaN}', '{"size": 1' + "0" * 5000 + "}"):
        r = http.post("/api/jobs", files=upload()["files"], data={"options": text}, headers=token_headers(app))
        assert r.status_code == 400 and r.json()["detail"].startswith("options"), r.text[:200]
    assert http.get("/api/config").status_code == 200


# --- what the server keeps ------------------------------------------------------------------------------


def test_job_folders_and_files_are_private(studio):
    app, url, http = studio
    job_id = http.post("/api/jobs", **upload({"iterations": 2}), headers=token_headers(app)).json()["id"]
    wait_status(http, job_id, {"done"})
    folder = app.state.workdir / "jobs" / job_id
    for path in (app.state.workdir, app.state.workdir / "jobs", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for name in ("job.json", "result.png"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_the_gallery_keeps_the_newest_finished_jobs(tmp_path, defaults):
    work = tmp_path / "work"
    app = create_app(work, default_options=defaults, keep=2)
    with running_server(app) as url, httpx.Client(base_url=url, headers=token_headers(app)) as http:
        ids = []
        for _ in range(3):
            ids.append(http.post("/api/jobs", **upload({"iterations": 1})).json()["id"])
            wait_status(http, ids[-1], {"done"})
        listed = [j["id"] for j in http.get("/api/jobs").json()["jobs"]]
        assert listed == [ids[2], ids[1]]
        assert http.get(f"/api/jobs/{ids[0]}").status_code == 404
    assert sorted(p.name for p in (work / "jobs").iterdir()) == sorted(ids[1:])
    # A restart with a smaller limit trims at once; folders without a record are removed, others kept.
    (work / "jobs" / ("e" * 32)).mkdir()
    (work / "jobs" / "notes").mkdir()
    create_app(work, default_options=defaults, keep=1)
    assert sorted(p.name for p in (work / "jobs").iterdir()) == sorted([ids[2], "notes"])


def test_a_folder_with_a_result_but_no_usable_record_is_left_alone(tmp_path, defaults, caplog):
    """Nothing the user had is lost: a result (or a crash's last preview) stays even when its job.json
    is unreadable or has a status this server does not know; only folders with nothing made are removed."""
    jobs = tmp_path / "work" / "jobs"
    jobs.mkdir(parents=True)
    result = png(seed=5)
    kept = {"a" * 32: ("job.json", b"{not json", "result.png"), "b" * 32: ("job.json", json.dumps({"status": "exploded"}).encode(), "preview.jpg")}
    for name, (record, text, image) in kept.items():
        (jobs / name).mkdir()
        (jobs / name / record).write_bytes(text)
        (jobs / name / image).write_bytes(result)
    (jobs / ("c" * 32)).mkdir()
    (jobs / ("c" * 32) / "job.json").write_bytes(b"\x00")  # a record and nothing made: removed
    (jobs / ("d" * 32)).mkdir()
    (jobs / ("d" * 32) / "mask.png").write_bytes(result)  # cut short before its first record: removed
    with caplog.at_level("WARNING", logger="painterly.web"):
        app = create_app(tmp_path / "work", default_options=defaults, keep=1)
    assert sorted(p.name for p in jobs.iterdir()) == sorted(kept)
    assert sum("left as it is" in r.getMessage() for r in caplog.records) == 2
    with running_server(app) as url, httpx.Client(base_url=url, headers=token_headers(app)) as http:
        assert http.get("/api/jobs").json()["jobs"] == []  # not shown as jobs
        assert http.get(f"/api/jobs/{'a' * 32}").status_code == 404
        for _ in range(3):  # finished jobs beyond keep=1 are pruned; the kept folders are not touched
            wait_status(http, http.post("/api/jobs", **upload({"iterations": 1})).json()["id"], {"done"})
        assert len(http.get("/api/jobs").json()["jobs"]) == 1
    create_app(tmp_path / "work", default_options=defaults, keep=1)  # and a restart leaves them again
    for name, (_, _, image) in kept.items():
        assert (jobs / name / image).read_bytes() == result


def test_half_sent_requests_are_dropped_and_the_server_stays_reachable(tmp_path, defaults):
    app = create_app(tmp_path / "w2", default_options=defaults)
    with running_server(app, header_timeout=1.0, max_connections=50) as url:
        host, port = host_of(url).split(":")
        hanging = []
        for _ in range(120):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            hanging.append(s)
        try:
            for s in hanging:  # the server closes every one of them (at once beyond 50, or after 1 s)
                s.settimeout(20)
                assert closed_by_peer(s)
            assert httpx.get(url + "/api/config", timeout=10).status_code == 200
        finally:
            for s in hanging:
                s.close()


def closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:  # closed with our unread bytes in its buffer: a reset, just as closed
        return True


# --- crashes and restarts -------------------------------------------------------------------------------

SERVE = """
import json, sys
from painterly.web import serve
sys.exit(serve("127.0.0.1", 0, sys.argv[1], default_options=json.loads(sys.argv[2])))
"""


class Server:
    """A studio in its own process, as ``painterly serve`` runs it (serve() itself)."""

    def __init__(self, workdir: Path, defaults: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(workdir), json.dumps(defaults)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert lines and lines[0].startswith("painterly studio: http://127.0.0.1:"), (lines, self.proc.poll())
        words = lines[0].split()
        self.url, self.token = words[2], words[4]
        self.http = httpx.Client(base_url=self.url, timeout=30, headers={TOKEN_HEADER: self.token})

    def stop(self, sig: int) -> int:
        self.http.close()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_queued_and_running_jobs_come_back_interrupted_after_the_server_stops(tmp_path, defaults, sig):
    work = tmp_path / "work"
    first = Server(work, defaults)
    try:
        done = first.http.post("/api/jobs", **upload({"iterations": 2})).json()["id"]
        wait_status(first.http, done, {"done"})
        running = first.http.post("/api/jobs", **upload(LONG)).json()["id"]
        queued = first.http.post("/api/jobs", **upload(LONG)).json()["id"]
        wait_status(first.http, running, {"running"})
        while first.http.get(f"/api/jobs/{running}").json()["iteration"] < 2:
            time.sleep(0.05)
    finally:
        code = first.stop(sig)
    # uvicorn re-raises Ctrl-C once it has shut down: the process ends by SIGINT (-2), as it should.
    assert code in ((-9,) if sig == signal.SIGKILL else (0, 130, -2))

    second = Server(work, defaults)
    try:
        jobs = {j["id"]: j for j in second.http.get("/api/jobs").json()["jobs"]}
        assert set(jobs) == {done, running, queued}
        assert jobs[done]["status"] == "done" and jobs[done]["has_result"]
        for job_id in (running, queued):
            job = second.http.get(f"/api/jobs/{job_id}").json()
            assert job["status"] == "interrupted" and "server stopped" in job["error"], job
            assert job["options"]["iterations"] == 5000
        if sig == signal.SIGINT:  # a graceful stop keeps what the running job had painted
            assert jobs[running]["has_result"]
            assert second.http.get(f"/api/jobs/{running}/result").status_code == 200
        assert second.http.get(f"/api/jobs/{queued}/result").status_code == 409
        # Interrupted jobs are not run again by themselves: the queue is empty. Each can be resumed
        # (tests/studio/test_web_resume.py) or discarded, once: discarded, it is over.
        assert second.http.get("/api/jobs").json()["queue"]["waiting"] == 0
        assert all(second.http.get(f"/api/jobs/{j}").json()["resumable"] for j in (running, queued))
        assert second.http.delete(f"/api/jobs/{queued}").status_code == 200
        assert second.http.get(f"/api/jobs/{queued}").json()["status"] == "cancelled"
        assert second.http.delete(f"/api/jobs/{queued}").status_code == 409
        # A page (or script) from before the restart still sends the old token: told what to do.
        r = second.http.post("/api/jobs", data={"demo": "true"}, headers={TOKEN_HEADER: first.token})
        assert r.status_code == 403 and "reload the page" in r.json()["detail"], r.text
    finally:
        second.stop(signal.SIGINT)
    assert not any(p.name.endswith(".tmp") for p in work.rglob("*"))
