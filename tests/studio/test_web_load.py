"""The studio under a burst of concurrent requests, over real HTTP (uvicorn on 127.0.0.1, free port).

50 requests at once from 50 threads, a mix of valid jobs and every kind of bad upload: the server must
answer each with its own status (202 or 429 for valid jobs, 413/415/400 for the rest), keep its memory
bounded, and leave the queue consistent: every accepted job finishes, none is lost or duplicated, and a
fresh job still completes afterwards. Every request has a 30 s timeout, so the test ends by itself.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from painterly.web.app import create_app  # noqa: E402
from support import running_server, tiny_weights, token_headers  # noqa: E402

REQUESTS = 50
TIMEOUT_S = 30.0
MAX_RSS_GROWTH_MB = 500


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status here")


def png(width: int, height: int, seed: int = 0, noise: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    if noise:
        arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        y, x = np.mgrid[0:height, 0:width]
        arr = np.stack([x * 7 % 256, y * 5 % 256, (x * y) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def bomb() -> bytes:
    data = bytearray(png(1, 1))
    struct.pack_into(">II", data, 16, 60_000, 60_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=2)


def test_fifty_concurrent_mixed_requests(tmp_path, weights_file):
    app = create_app(
        tmp_path / "work",
        max_upload_bytes=150_000,
        max_pixels=2_000_000,
        queue_size=4,
        default_options={
            "weights": str(weights_file),
            "content_layers": "relu2_2",
            "style_layers": "relu1_1,relu2_1",
            "size": 32,
            "iterations": 40,
            "multiscale": False,
        },
    )
    good = png(48, 32)
    style = png(32, 32, seed=3, noise=True)
    big = png(256, 256, noise=True)  # ~200 kB: over this server's 150 kB upload limit
    assert len(big) > 150_000
    kinds = {
        # kind: (content bytes, options, accepted statuses)
        "valid": (good, {}, {202, 429}),
        "oversize": (big, {}, {413}),
        "bomb": (bomb(), {}, {413}),
        "too-many-pixels": (png(1500, 1500), {}, {413}),
        "text": (b"just some text, honestly\n" * 20, {}, {415}),
        "truncated": (png(64, 64, noise=True)[:400], {}, {400}),
        "bad-options": (good, {"size": "big"}, {400}),
    }
    plan = (["valid"] * 20 + ["oversize", "bomb", "too-many-pixels", "text", "truncated", "bad-options"] * 5)[:REQUESTS]
    assert len(plan) == REQUESTS

    with running_server(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S, headers=token_headers(app)) as http:
        # Warm up (first job loads the weights, imports, allocates) before taking the baseline.
        first = http.post("/api/jobs", files={"content": ("c.png", good), "style": ("s.png", style)})
        assert first.status_code == 202
        wait_all(http, [first.json()["id"]])
        baseline = rss_mb()

        barrier = threading.Barrier(REQUESTS)

        def fire(kind: str) -> tuple[str, int, str]:
            content, options, _ = kinds[kind]
            with httpx.Client(base_url=url, timeout=TIMEOUT_S, headers=token_headers(app)) as c:
                barrier.wait(timeout=TIMEOUT_S)  # all at once
                r = c.post(
                    "/api/jobs",
                    files=[("content", ("photo.png", content, "image/png")), ("style", ("style.png", style, "image/png"))],
                    data={"options": json.dumps(options)},
                )
                return kind, r.status_code, r.text

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            results = list(pool.map(fire, plan))
        burst_s = time.monotonic() - t0

        wrong = [(k, s, body[:120]) for k, s, body in results if s not in kinds[k][2]]
        assert not wrong, wrong
        for kind, status, body in results:
            if status != 202:
                assert json.loads(body)["detail"], (kind, status)  # every refusal says why
        statuses = [s for _, s, _ in results]
        accepted = [json.loads(body)["id"] for _, s, body in results if s == 202]
        assert accepted, "no valid job got in"
        assert 429 in statuses, "20 jobs at once should overflow a queue of 4"
        assert burst_s < TIMEOUT_S

        # The queue is intact: each accepted job is listed once and runs to the end.
        final = wait_all(http, accepted)
        assert all(j["status"] == "done" for j in final.values()), {k: (j["status"], j["error"]) for k, j in final.items()}
        listing = http.get("/api/jobs").json()
        ids = [j["id"] for j in listing["jobs"]]
        assert len(ids) == len(set(ids)) == len(accepted) + 1
        assert set(accepted) <= set(ids)
        assert listing["queue"]["waiting"] == 0 and listing["queue"]["running"] == 0

        fresh = http.post("/api/jobs", files={"content": ("c.png", good), "style": ("s.png", style)})
        assert fresh.status_code == 202
        assert wait_all(http, [fresh.json()["id"]])[fresh.json()["id"]]["status"] == "done"
        assert http.get(f"/api/jobs/{fresh.json()['id']}/result").content.startswith(b"\x89PNG")

        growth = rss_mb() - baseline
        print(f"burst {burst_s:.1f}s accepted {len(accepted)} 429s {statuses.count(429)} rss +{growth:.0f} MB")
        assert growth < MAX_RSS_GROWTH_MB, f"RSS grew by {growth:.0f} MB"


def wait_all(http, ids: list[str], timeout: float = 45.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    out: dict[str, dict] = {}
    while True:
        for job_id in ids:
            if job_id not in out:
                job = http.get(f"/api/jobs/{job_id}").json()
                if job["status"] in ("done", "failed", "cancelled"):
                    out[job_id] = job
        if len(out) == len(ids):
            return out
        assert time.monotonic() < deadline, f"{len(ids) - len(out)} jobs never finished"
        time.sleep(0.1)
