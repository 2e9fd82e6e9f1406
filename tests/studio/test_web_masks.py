"""Issue 15 in the studio's API: a mask uploaded with the job, its colours assigned by ``regions``;
the job completes and keeps its mask; a bad mask is a 400 naming it, and no job is made."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from test_web_api import client, defaults, finished, make_client, png_bytes, wait_for, weights_file  # noqa: F401


def _mask_png(width: int, height: int, colors=((255, 0, 0), (0, 0, 255))) -> bytes:  # noqa: ANN001
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = colors[0]
    arr[:, width // 2 :] = colors[1]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _post(client, mask: bytes, regions: list[str]):  # noqa: ANN001, ANN202
    files = [
        ("content", ("content.png", png_bytes(48, 32), "image/png")),
        ("style", ("a.png", png_bytes(40, 40, seed=1, noise=True), "image/png")),
        ("style", ("b.png", png_bytes(40, 40, seed=2), "image/png")),
        ("mask", ("mask.png", mask, "image/png")),
    ]
    return client.post("/api/jobs", files=files, data={"options": json.dumps({"regions": regions})})


def test_a_job_with_a_mask_completes_and_keeps_it(client, tmp_path) -> None:  # noqa: ANN001
    r = _post(client, _mask_png(48, 32), ["red=1", "blue=2"])
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], finished, timeout=60)
    assert job["status"] == "done", job
    assert job["options"]["regions"] == ["red=1", "blue=2"]
    kept = list(tmp_path.rglob(f"{job['id']}/mask.png"))
    assert len(kept) == 1 and Image.open(kept[0]).size == (48, 32)


def test_bad_masks_are_a_400_naming_the_problem(client) -> None:  # noqa: ANN001
    r = _post(client, _mask_png(48, 32, ((255, 0, 0), (255, 255, 0))), ["red=1", "blue=2"])
    assert r.status_code == 400 and "yellow" in r.text and "regions" in r.text, r.text
    r = _post(client, _mask_png(32, 32), ["red=1", "blue=2"])
    assert r.status_code == 400 and "aspect" in r.text, r.text
    r = _post(client, _mask_png(48, 32), ["red=1", "red=2"])
    assert r.status_code == 400 and "twice" in r.text, r.text
    assert client.get("/api/jobs").json()["jobs"] == []
