"""Interrupted studio jobs resume (web/resume.py), over real HTTP on 127.0.0.1.

* A server stopped mid-job (its manager's stop, as Ctrl-C does) leaves the running job, and one
  waiting behind it, ``interrupted`` and resumable; another server on the same folder resumes them and
  they end with the very PNG (and loss history) of the same job run uninterrupted: the running one
  from its checkpoint (across a level boundary), the waiting one from the start.
* A video job resumed goes on at the first frame not done: the frames made before are not made again.
* A server killed outright (SIGKILL, a real ``painterly serve`` process) leaves a resumable job: its
  last periodic checkpoint. ``painterly serve --resume-interrupted`` runs interrupted jobs at start.
* Refusals: a job that is not interrupted (409), an unknown one (404), one with nothing kept (410).
  An interrupted job not to be resumed is discarded (DELETE): cancelled, its saved run removed.

Tiny random VGG prefix (support.tiny_weights), 32–48 px images; runs that a test must stop at a known
point are slowed down per iteration (the results are unchanged), never raced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

httpx = pytest.importorskip("httpx")

from support import noise_png, running_server, tiny_options, tiny_weights, token_headers  # noqa: E402

from painterly.web.app import create_app  # noqa: E402
from painterly.web.job import CHECKPOINT_FILE, SAVED_FILE  # noqa: E402

# Two levels (32 then 48 px), ten iterations each: a job stopped in the first resumes across the boundary.
OPTIONS = {"size": 48, "min_size": 32, "multiscale": True, "level_iterations": "10,10", "seed": 7}


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201
    """One torch thread (as the killed server's process has): the runs compared are computed alike."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:  # noqa: ANN001
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=3)


@pytest.fixture
def defaults(weights: Path) -> dict[str, Any]:
    return tiny_options(weights)


def submit(http: httpx.Client, options: dict[str, Any]) -> str:
    files = {"content": ("photo.png", noise_png(40, 32, seed=1), "image/png"), "style": ("painting.png", noise_png(36, 36, seed=2), "image/png")}
    r = http.post("/api/jobs", files=files, data={"options": json.dumps(options)})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_for(http: httpx.Client, job_id: str, predicate: Callable[[dict], bool], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/api/jobs/{job_id}").json()
        if predicate(job):
            return job
        assert time.monotonic() < deadline, f"timed out; last: {job['status']} {job['iteration']} {job.get('video')} {job.get('error')}"
        time.sleep(0.05)


def over(job: dict) -> bool:
    return job["status"] in ("done", "failed", "cancelled", "interrupted")


def slowed(monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    import painterly.engine as engine

    step = engine.Run.step
    monkeypatch.setattr(engine.Run, "step", lambda self: (time.sleep(delay), step(self))[1])


def interrupted_job(work: Path, defaults: dict, monkeypatch: pytest.MonkeyPatch, options: dict) -> str:
    """A job of ``options`` (slowed) stopped at its second iteration by the server's stop: its id."""
    slowed(monkeypatch, 0.1)
    app = create_app(work, default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        job_id = submit(http, options)
        wait_for(http, job_id, lambda j: j["iteration"] >= 2)
    monkeypatch.undo()
    return job_id


def test_a_stopped_server_leaves_jobs_that_resume_to_the_uninterrupted_result(tmp_path, defaults, monkeypatch):
    work = tmp_path / "work"
    slowed(monkeypatch, 0.15)
    app = create_app(work, default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        running = submit(http, OPTIONS)
        waiting = submit(http, OPTIONS)
        wait_for(http, running, lambda j: j["iteration"] >= 4)
        assert http.post(f"/api/jobs/{running}/resume").status_code == 409  # running: nothing to resume
    # The server has stopped (its manager's stop, as on Ctrl-C) in the first level of `running`.
    monkeypatch.undo()
    folder = work / "jobs" / running
    state = torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    assert 4 <= state["iteration"] < 10 and state["level_index"] == 0
    assert not (work / "jobs" / waiting / CHECKPOINT_FILE).exists() and (work / "jobs" / waiting / SAVED_FILE).is_file()

    app2 = create_app(work, default_options=defaults)
    with running_server(app2) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app2)) as http:
        for job_id in (running, waiting):
            job = http.get(f"/api/jobs/{job_id}").json()
            assert job["status"] == "interrupted" and job["resumable"] and job["urls"]["resume"] == f"/api/jobs/{job_id}/resume", job
        assert http.get(f"/api/jobs/{running}").json()["iteration"] == state["iteration"]  # saved where it stopped

        r = http.post(f"/api/jobs/{running}/resume")
        assert r.status_code == 202 and r.json()["status"] in ("queued", "running") and not r.json()["resumable"], r.text
        assert r.json()["iteration"] == state["iteration"]  # it goes on from there, not from 0
        again = http.post(f"/api/jobs/{running}/resume")
        assert again.status_code == 409 and running in again.json()["detail"], again.text
        assert http.post(f"/api/jobs/{waiting}/resume").status_code == 202
        plain = submit(http, OPTIONS)  # the same job, never interrupted
        results = {}
        for job_id in (running, waiting, plain):
            job = wait_for(http, job_id, over)
            assert job["status"] == "done" and job["iteration"] == 20, job
            results[job_id] = (http.get(f"/api/jobs/{job_id}/result").content, http.get(f"/api/jobs/{job_id}").json()["history"])
    image, history = results[plain]
    assert results[running][0] == image and results[waiting][0] == image
    # Each iteration once in the resumed job's loss chart, with the uninterrupted run's losses.
    assert [row[0] for row in history] == list(range(1, 21))
    assert results[running][1] == history and results[waiting][1] == history
    # Over: what a resume needed is gone; the result, the record and the preview stay.
    for job_id in (running, waiting):
        assert sorted(p.name for p in (work / "jobs" / job_id).iterdir()) == ["job.json", "result.png"]


def test_refusals_name_the_job(tmp_path, defaults):
    work = tmp_path / "work"
    app = create_app(work, default_options={**defaults, "size": 32, "iterations": 2, "multiscale": False})
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        done = submit(http, {})
        wait_for(http, done, over)
        r = http.post(f"/api/jobs/{done}/resume")
        assert r.status_code == 409 and r.json()["detail"] == f"job {done} is done; only an interrupted job can be resumed"
        assert http.post(f"/api/jobs/{'0' * 32}/resume").status_code == 404
        assert http.post("/api/jobs/not-a-job/resume").status_code == 404
        assert httpx.post(f"{url}/api/jobs/{done}/resume").status_code == 403  # a change needs the token
    # A job interrupted under a server that kept nothing (an older painterly): shown, not resumable.
    old = "cd" * 16
    (work / "jobs" / old).mkdir()
    (work / "jobs" / old / "job.json").write_text(json.dumps({"id": old, "status": "running", "created": 1.0, "options": {"size": 32}}))
    # And one whose saved inputs were damaged.
    damaged = "ef" * 16
    (work / "jobs" / damaged).mkdir()
    (work / "jobs" / damaged / "job.json").write_text(json.dumps({"id": damaged, "status": "running", "created": 2.0, "options": {}}))
    (work / "jobs" / damaged / SAVED_FILE).write_bytes(b"not a checkpoint")
    app2 = create_app(work, default_options=defaults)
    with running_server(app2) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app2)) as http:
        job = http.get(f"/api/jobs/{old}").json()
        assert job["status"] == "interrupted" and not job["resumable"] and job["urls"]["resume"] is None
        r = http.post(f"/api/jobs/{old}/resume")
        assert r.status_code == 410 and old in r.json()["detail"] and "older painterly" in r.json()["detail"], r.text
        assert http.get(f"/api/jobs/{damaged}").json()["resumable"]
        r = http.post(f"/api/jobs/{damaged}/resume")
        assert r.status_code == 410 and damaged in r.json()["detail"] and "damaged" in r.json()["detail"], r.text
        job = http.get(f"/api/jobs/{damaged}").json()
        assert job["status"] == "interrupted" and not job["resumable"]  # left as it was, no longer offered


def test_the_server_can_resume_every_interrupted_job_at_start(tmp_path, defaults, monkeypatch):
    """``painterly serve --resume-interrupted`` (create_app's resume_interrupted)."""
    work = tmp_path / "work"
    job_id = interrupted_job(work, defaults, monkeypatch, {"size": 32, "iterations": 12, "multiscale": False, "seed": 1})
    app2 = create_app(work, default_options=defaults, resume_interrupted=True)
    with running_server(app2) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app2)) as http:
        job = wait_for(http, job_id, over)
        assert job["status"] == "done" and job["iteration"] == 12, job


def test_an_interrupted_job_not_to_be_resumed_is_discarded(tmp_path, defaults, monkeypatch):
    """DELETE on a resumable interrupted job: cancelled, what it kept to resume removed (its preview stays)."""
    work = tmp_path / "work"
    job_id = interrupted_job(work, defaults, monkeypatch, {"size": 32, "iterations": 50, "multiscale": False})
    folder = work / "jobs" / job_id
    assert {SAVED_FILE, CHECKPOINT_FILE, "result.png"} <= {p.name for p in folder.iterdir()}
    app2 = create_app(work, default_options=defaults)
    with running_server(app2) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app2)) as http:
        r = http.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled" and not r.json()["resumable"], r.text
        assert sorted(p.name for p in folder.iterdir()) == ["job.json", "result.png"]
        assert http.post(f"/api/jobs/{job_id}/resume").status_code == 409
        assert http.delete(f"/api/jobs/{job_id}").status_code == 409
        assert http.get(f"/api/jobs/{job_id}/result").status_code == 200  # what it had painted stays
    assert create_app(work, default_options=defaults).state.jobs.get(job_id).status == "cancelled"  # so recorded


@pytest.mark.slow
def test_painterly_serve_resume_interrupted_runs_them_again(tmp_path, defaults, monkeypatch):
    """The flag on a real ``painterly serve``: the job (its saved config names the tiny weights) is done."""
    work = tmp_path / "work"
    job_id = interrupted_job(work, defaults, monkeypatch, {"size": 32, "iterations": 12, "multiscale": False})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "painterly", "serve", "--port", "0", "--workdir", str(work), "--resume-interrupted"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "painterly studio:" in line, (line, proc.poll())
        with httpx.Client(base_url=line.split()[2], timeout=30) as http:
            job = wait_for(http, job_id, over)
        assert job["status"] == "done" and job["iteration"] == 12, job
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


# --- video ------------------------------------------------------------------------------------------


def test_a_resumed_video_job_does_not_paint_the_frames_done_again(tmp_path, defaults, monkeypatch):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from test_web_video import make_clip, post_clip, video_streams

    from painterly.video.sequence import ClipStyler

    work = tmp_path / "work"
    started: list[int] = []  # a frame's run starts (ClipStyler.start: one per frame painted)
    start = ClipStyler.start
    monkeypatch.setattr(ClipStyler, "start", lambda self, frame, *a, **k: (started.append(1), start(self, frame, *a, **k))[1])
    slowed(monkeypatch, 0.05)
    clip = make_clip(tmp_path / "take.mp4", frames=4).read_bytes()
    options = {"size": 48, "iterations": 3, "frame_iterations": 40, "multiscale": False}
    app = create_app(work, default_options=defaults)
    with running_server(app) as url:
        r = post_clip(url, app, clip, options)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        with httpx.Client(base_url=url, timeout=30) as http:
            wait_for(http, job_id, lambda j: j["video"]["done"] == 2 and j["iteration"] >= 1)
    assert len(started) == 3  # stopped in the middle of frame 3
    folder = work / "jobs" / job_id
    assert sorted(p.name for p in (folder / "frames").iterdir()) == ["frame_000001.png", "frame_000002.png"]
    kept = (folder / "frames" / "frame_000002.png").read_bytes()

    started.clear()
    app2 = create_app(work, default_options=defaults)
    with running_server(app2) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app2)) as http:
        job = http.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "interrupted" and job["resumable"] and job["video"]["done"] == 2, job
        assert (folder / "frames" / "frame_000002.png").read_bytes() == kept
        assert http.post(f"/api/jobs/{job_id}/resume").status_code == 202
        job = wait_for(http, job_id, over)
        assert job["status"] == "done" and job["video"]["done"] == 4 and job["has_result"], job
        assert len(started) == 2  # frames 3 and 4 only: 1 and 2 were kept
        assert video_streams(http.get(f"/api/jobs/{job_id}/result").content)[:2] == (4, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "preview.jpg", "result.mp4"]


# --- a server killed outright -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_server_leaves_a_job_that_resumes_to_the_uninterrupted_result(tmp_path, defaults):
    """A real ``painterly serve`` process (slowed per iteration, checkpointing every iteration) is
    SIGKILLed mid-job; a new server on its folder resumes the job from its last checkpoint."""
    work = tmp_path / "work"
    code = (
        "import sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "import painterly.engine as engine, painterly.web.resume as resume\n"
        "resume.CHECKPOINT_INTERVAL_S, resume.CHECKPOINT_SHARE = 0.0, 0  # after every iteration\n"
        "_step = engine.Run.step\n"
        "engine.Run.step = lambda self: (time.sleep(0.15), _step(self))[1]\n"
        "from painterly.web import serve\n"
        f"sys.exit(serve(port=0, workdir={str(work)!r}, default_options={defaults!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "painterly studio:" in line, (line, proc.poll())
        url, token = line.split()[2], line.split()[4]
        with httpx.Client(base_url=url, timeout=30, headers={"X-Painterly-Token": token}) as http:
            job_id = submit(http, OPTIONS)
            wait_for(http, job_id, lambda j: j["iteration"] >= 5)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(20) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    state = torch.load(work / "jobs" / job_id / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    assert state["iteration"] >= 4

    app = create_app(work, default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        job = http.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "interrupted" and job["resumable"], job
        assert http.post(f"/api/jobs/{job_id}/resume").status_code == 202
        plain = submit(http, OPTIONS)
        results = []
        for one in (job_id, plain):
            assert wait_for(http, one, over)["status"] == "done"
            results.append(http.get(f"/api/jobs/{one}/result").content)
    assert results[0] == results[1]
