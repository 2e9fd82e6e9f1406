"""Video jobs in the studio: a clip and a painting in, frame i of n with a preview and an ETA on the
job's event stream, a cancel at a frame boundary, the video (with the clip's sound) out, and the job
still there after a restart. Real HTTP on 127.0.0.1 against the real server (support.running_server),
the tiny random VGG prefix (support.tiny_weights), clips of 36×48 px and 3–5 frames written in the test.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
av = pytest.importorskip("av")
pytest.importorskip("cv2")

from conftest import clip_with_audio  # noqa: E402
from support import TOKEN_HEADER, noise_png, running_server, tiny_options, tiny_weights  # noqa: E402

from painterly.web.app import create_app  # noqa: E402

FPS = 10


def clip_frames(n: int, h: int = 36, w: int = 48) -> list[torch.Tensor]:
    """A smooth texture panning left by 2 px per frame, (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand((1, 3, 6, 8), generator=g), size=(h, w + 2 * n), mode="bicubic", align_corners=False).clamp(0, 1)
    return [base[..., 2 * i : 2 * i + w].contiguous() for i in range(n)]


def make_clip(path: Path, frames: int = 3) -> Path:
    """An H.264 clip of ``frames`` frames at 10 fps with a tone as long as the pictures."""
    return clip_with_audio(path, clip_frames(frames), FPS, audio_seconds=frames / FPS)


def video_streams(data: bytes) -> tuple[int, int, tuple[int, int]]:
    """(video frames, audio streams, (height, width)) of an encoded video."""
    with av.open(io.BytesIO(data)) as container:
        audio = len(container.streams.audio)
        frames = [f for f in container.decode(video=0)]
    return len(frames), audio, (frames[0].height, frames[0].width)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=1)


@pytest.fixture
def defaults(weights_file) -> dict[str, Any]:
    return tiny_options(weights_file, size=48, iterations=4, multiscale=False, seed=0)


@pytest.fixture
def serve(tmp_path, defaults):
    """``serve(workdir=..., **create_app_kwargs)`` → (base URL, app), a real server for the test."""
    import contextlib

    stack = contextlib.ExitStack()

    def start(workdir: Path | None = None, **kwargs: Any) -> tuple[str, Any]:
        kwargs.setdefault("default_options", defaults)
        app = create_app(workdir or tmp_path / "work", **kwargs)
        return stack.enter_context(running_server(app)), app

    with stack:
        yield start


def post_clip(url: str, app: Any, clip: bytes | None, options: dict | None = None, *, styles: int = 1, name: str = "take.mp4", **form: Any) -> httpx.Response:
    files = [("clip", (name, clip, "video/mp4"))] if clip is not None else []
    files += [("style", (f"painting{i}.png", noise_png(40, 40, seed=i + 1), "image/png")) for i in range(styles)]
    data = {**form, **({"options": json.dumps(options)} if options is not None else {})}
    return httpx.post(f"{url}/api/jobs", files=files, data=data, headers={TOKEN_HEADER: app.state.token}, timeout=30)


def wait_for(url: str, job_id: str, predicate: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if predicate(job):
            return job
        assert time.monotonic() < deadline, f"timed out; last: {job['status']} {job.get('video')} {job.get('error')}"
        time.sleep(0.05)


def events(url: str, job_id: str) -> list[dict]:
    """Every event of the job's stream until its ``end`` (``{"event": name, **data}``)."""
    seen: list[dict] = []
    with httpx.stream("GET", f"{url}/api/jobs/{job_id}/events", timeout=60) as response:
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append({"event": name, **json.loads(line[6:])})
                if name == "end":
                    break
    return seen


def test_a_clip_becomes_a_video_with_its_sound_frame_by_frame(serve, tmp_path, monkeypatch):
    import painterly.engine as engine
    from painterly.web.job_routes import EVENT_POLL_S

    # The event stream sends the job's state as it is at each poll: a tiny frame done between two polls
    # would never be seen. Each iteration is slowed to outlast a few polls (the results are unchanged).
    step = engine.Run.step
    monkeypatch.setattr(engine.Run, "step", lambda self: (time.sleep(3 * EVENT_POLL_S), step(self))[1])
    url, app = serve()
    clip = make_clip(tmp_path / "take.mp4", frames=4).read_bytes()
    r = post_clip(url, app, clip, {"size": 48, "iterations": 4, "frame_iterations": 3, "temporal_weight": 1e5})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "video" and job["video"]["frames"] == 4 and job["inputs"]["clip"] == "take.mp4"
    assert job["options"]["frame_iterations"] == 3 and job["options"]["temporal_weight"] == 1e5

    stream = events(url, job["id"])
    progress = [e for e in stream if e["event"] == "progress" and e["status"] == "running" and e["video"]["frame"]]
    # Frame i of n, each frame's iterations, a preview and an ETA, through the image jobs' event stream.
    assert sorted({e["video"]["frame"] for e in progress}) == [1, 2, 3, 4]
    assert {e["total_iterations"] for e in progress if e["video"]["frame"] > 1} == {3}
    assert any(e["eta"] is not None and e["eta"] >= 0 for e in progress)
    assert all(e["urls"]["preview"] for e in progress if e["iteration"])
    end = stream[-1]
    assert end["event"] == "end" and end["status"] == "done", end
    assert end["video"]["done"] == 4 and end["has_result"] and end["video"]["audio"] is True

    result = httpx.get(f"{url}{end['urls']['result']}")
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert video_streams(result.content) == (4, 1, (36, 48))
    download = httpx.get(f"{url}{end['urls']['download']}")
    assert download.content == result.content
    assert f"painterly-{job['id'][:8]}.mp4" in download.headers["content-disposition"]
    preview = httpx.get(f"{url}{end['urls']['preview']}")
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (48, 36)
    # Only the result, the last frame's preview and the record stay in the job's folder.
    folder = tmp_path / "work" / "jobs" / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "preview.jpg", "result.mp4"]


def test_a_piece_of_the_clip_and_the_job_after_a_restart(serve, tmp_path):
    url, app = serve()
    clip = make_clip(tmp_path / "take.mp4", frames=5).read_bytes()
    # From 0.1 s, 0.2 s long: frames 2 and 3 of the five; the 48x36 frames painted at 64 px.
    r = post_clip(url, app, clip, {"size": 64, "iterations": 3, "frame-iterations": 2, "start": "0:00.1", "duration": 0.2})
    assert r.status_code == 202, r.text
    job = wait_for(url, r.json()["id"], lambda j: j["status"] in ("done", "failed", "cancelled"))
    assert job["status"] == "done" and job["video"]["frames"] == 2 and job["video"]["done"] == 2, job
    assert job["notes"] == ["each frame is only 48x36 px; upscaled to 64 px"]  # once, as an image job's
    assert video_streams(httpx.get(f"{url}/api/jobs/{job['id']}/result").content)[:2] == (2, 1)

    # Another server on the same folder shows the job as it was, and serves its video and preview.
    url2, _ = serve(tmp_path / "work")
    again = httpx.get(f"{url2}/api/jobs/{job['id']}").json()
    assert again["status"] == "done" and again["kind"] == "video" and again["has_result"]
    assert again["video"]["done"] == 2 and again["options"]["start"] == 0.1 and again["notes"] == job["notes"]
    result = httpx.get(f"{url2}{again['urls']['result']}")
    assert result.headers["content-type"] == "video/mp4" and video_streams(result.content)[0] == 2
    assert httpx.get(f"{url2}{again['urls']['preview']}").headers["content-type"] == "image/jpeg"


def test_a_cancel_stops_at_a_frame_boundary_and_keeps_the_finished_frames(serve, tmp_path):
    url, app = serve()
    clip = make_clip(tmp_path / "take.mp4", frames=4).read_bytes()
    # Later frames long enough to be cancelled in the middle of one.
    r = post_clip(url, app, clip, {"size": 48, "iterations": 2, "frame_iterations": 5000})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_for(url, job_id, lambda j: j["video"]["frame"] == 2 and j["iteration"] >= 1)
    r = httpx.delete(f"{url}/api/jobs/{job_id}", headers={TOKEN_HEADER: app.state.token})
    assert r.status_code == 200, r.text
    job = wait_for(url, job_id, lambda j: j["status"] in ("done", "failed", "cancelled"), timeout=30)
    assert job["status"] == "cancelled" and job["error"] is None, job
    # Frame 2 was dropped where it stood: the video holds the one finished frame.
    assert job["video"]["done"] == 1 and job["has_result"]
    assert video_streams(httpx.get(f"{url}/api/jobs/{job_id}/result").content)[0] == 1
    assert not (tmp_path / "work" / "jobs" / job_id / "frames").exists()


def test_bad_video_requests_are_refused_naming_the_field(serve, tmp_path):
    url, app = serve(max_video_bytes=200_000)
    clip = make_clip(tmp_path / "take.mp4", frames=3).read_bytes()
    ok = {"size": 48, "iterations": 2}
    cases = [
        (noise_png(48, 36), ok, {}, 415, "clip"),  # a still image is not a clip
        (b"just some text, not a video at all", ok, {}, 415, "clip"),
        (os.urandom(300_000), ok, {}, 413, "clip"),  # over this server's video limit
        (clip, {**ok, "frame_iterations": 0}, {}, 400, "frame_iterations"),
        (clip, {**ok, "temporal-weight": -1}, {}, 400, "temporal-weight"),
        (clip, {**ok, "start": "soon"}, {}, 400, "start"),
        (clip, {**ok, "start": 9}, {}, 400, "start"),  # past the end of a 0.3 s clip
        (clip, {**ok, "duration": 0.01}, {}, 400, "duration"),  # less than one frame
        (clip, {**ok, "long_term": "yes"}, {}, 400, "long_term"),
        (clip, {**ok, "size": "big"}, {}, 400, "size"),
        (clip, {**ok, "init": "image"}, {}, 400, "init"),
        (clip, {**ok, "regions": ["style1"]}, {}, 400, "regions"),
        (clip, ok, {"styles": 0}, 400, "style"),
        (clip, ok, {"demo": "true"}, 400, "demo"),
    ]
    for data, options, form, status, field in cases:
        r = post_clip(url, app, data, options, **form)
        assert r.status_code == status, (field, r.status_code, r.text)
        body = r.json()
        assert body.get("field") == field and field.replace("-", "_") in body["detail"].replace("-", "_"), body
        assert str(tmp_path) not in body["detail"]  # never a server path
    # Nothing was queued, and no folder of a refused clip is left behind.
    assert httpx.get(f"{url}/api/jobs").json()["jobs"] == []
    assert list((tmp_path / "work" / "jobs").iterdir()) == []


def test_a_clip_with_more_pixels_than_the_server_takes_is_413(serve, tmp_path):
    """Told apart from a file that is no video (415) by its error's type (TooManyPixels), not its words."""
    url, app = serve(max_pixels=1700)  # the 40x40 painting passes, the clip's frames do not
    r = post_clip(url, app, make_clip(tmp_path / "take.mp4", frames=2).read_bytes(), {"size": 48, "iterations": 2})
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["field"] == "clip" and body["detail"] == "clip: take.mp4: 48x36 pixels exceeds the limit of 1700", body
    assert "raise" not in body["detail"] and str(tmp_path) not in body["detail"]


def test_a_server_without_pyav_says_how_to_install_it(tmp_path, weights_file):
    """A real `painterly serve` in a process where PyAV cannot be imported."""
    code = (
        "import sys; sys.modules['av'] = None\n"
        "from painterly.cli import main\n"
        f"sys.exit(main(['serve', '--port', '0', '--workdir', {str(tmp_path / 'work')!r}]))\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "painterly studio:" in line, line
        url, token = line.split()[2], line.split()[4]
        clip = make_clip(tmp_path / "take.mp4", frames=3).read_bytes()
        r = httpx.post(
            f"{url}/api/jobs", files=[("clip", ("take.mp4", clip, "video/mp4")), ("style", ("p.png", noise_png(40, 40), "image/png"))],
            headers={TOKEN_HEADER: token}, timeout=30,
        )  # fmt: skip
        assert r.status_code == 501 and r.json()["field"] == "clip", r.text
        assert "pip install 'painterly[video]'" in r.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_server_stopped_mid_clip_shows_the_job_interrupted_with_its_last_frame(tmp_path, defaults):
    clip = make_clip(tmp_path / "take.mp4", frames=4).read_bytes()
    app = create_app(tmp_path / "work", default_options=defaults)
    with running_server(app) as url:
        r = post_clip(url, app, clip, {"size": 48, "iterations": 2, "frame_iterations": 5000})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        wait_for(url, job_id, lambda j: j["video"]["frame"] == 2 and j["iteration"] >= 1)
    # The server has stopped in the middle of frame 2; another one on the same folder:
    app2 = create_app(tmp_path / "work", default_options=defaults)
    with running_server(app2) as url:
        job = httpx.get(f"{url}/api/jobs/{job_id}").json()
        assert job["status"] == "interrupted" and job["kind"] == "video" and not job["has_result"], job
        assert job["video"]["done"] == 1 and "server stopped" in job["error"]
        preview = httpx.get(f"{url}{job['urls']['preview']}")  # what it had painted: frame 1
        assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (48, 36)
        assert httpx.get(f"{url}/api/jobs/{job_id}/result").status_code == 409
    # What a resume needs stays (web/resume.py): the clip, the finished frame, the saved inputs.
    folder = tmp_path / "work" / "jobs" / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4", "frames", "inputs.pt", "job.json", "preview.jpg"]
    assert sorted(p.name for p in (folder / "frames").iterdir()) == ["frame_000001.png"]


def test_a_crash_mid_clip_leaves_no_frames_or_upload_behind(tmp_path, defaults):
    """What a killed server of an older painterly leaves (a record saying running, finished frames, the
    upload, but no saved inputs to resume from): the next server shows the job as interrupted with its
    preview, and removes what nothing will use again."""
    folder = tmp_path / "work" / "jobs" / ("ab" * 16)
    (folder / "frames").mkdir(parents=True)
    (folder / "frames" / "frame_000001.png").write_bytes(noise_png(48, 36))
    make_clip(folder / "clip.mp4", frames=3)
    (folder / "preview.jpg").write_bytes(_jpeg(noise_png(48, 36)))  # what the running job had written
    record = {"id": "ab" * 16, "status": "running", "kind": "video", "created": 1.0, "options": {"size": 48},
              "video": {"frame": 2, "frames": 3, "done": 1, "fps": 10.0, "audio": True}}  # fmt: skip
    (folder / "job.json").write_text(json.dumps(record))
    app = create_app(tmp_path / "work", default_options=defaults)
    with running_server(app) as url:
        job = httpx.get(f"{url}/api/jobs/{'ab' * 16}").json()
        assert job["status"] == "interrupted" and job["kind"] == "video" and job["video"]["done"] == 1
        assert httpx.get(f"{url}{job['urls']['preview']}").status_code == 200
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "preview.jpg"]


def _jpeg(png: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, format="JPEG")
    return out.getvalue()
