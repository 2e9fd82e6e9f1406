"""The studio's batch view (issue 17), over real HTTP on 127.0.0.1: a grid of one content × styles
(× a swept setting) goes to the studio's queue as ordinary jobs; the batch shows each cell's job and
the contact sheet fills in as they finish. Bad input is a 4xx naming the field. Tiny random VGG prefix."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")

from support import noise_png, running_server, tiny_options, tiny_weights, token_headers  # noqa: E402


@pytest.fixture(scope="module")
def studio(tmp_path_factory):  # noqa: ANN201
    """(base URL, token headers, the app) of a studio with a queue of 4 and the tiny encoder."""
    from painterly.web.app import create_app

    tmp = tmp_path_factory.mktemp("studio")
    weights = tiny_weights(tmp / "tiny-vgg.safetensors", seed=1)
    defaults = tiny_options(weights, size=40, iterations=3, multiscale=False, seed=0)
    app = create_app(tmp / "work", default_options=defaults, queue_size=4)
    with running_server(app) as url:
        yield url, token_headers(app), app


def post_grid(studio, *, styles: int = 2, sweep: str | None = None, options: str = '{"size": 40, "iterations": 3}', token: bool = True, content: bool = True) -> httpx.Response:  # noqa: ANN001
    url, headers, _ = studio
    files: list[Any] = [("content", ("photo.png", noise_png(48, 40, 0), "image/png"))] if content else []
    files += [("style", (f"painting{i}.png", noise_png(40, 40, 10 + i), "image/png")) for i in range(styles)]
    data = {"options": options, **({"sweep": sweep} if sweep is not None else {})}
    return httpx.post(f"{url}/api/batches", files=files, data=data, headers=headers if token else {}, timeout=30)


def wait_finished(studio, batch: dict) -> dict:  # noqa: ANN001
    url = studio[0]
    deadline = time.monotonic() + 60
    seen_sheets = {batch["urls"]["sheet"]}
    while not batch["finished"]:
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
        batch = httpx.get(url + batch["urls"]["self"], timeout=10).json()
        seen_sheets.add(batch["urls"]["sheet"])
    batch["seen_sheets"] = seen_sheets
    return batch


def sheet(studio, batch: dict) -> Image.Image:  # noqa: ANN001
    res = httpx.get(studio[0] + batch["urls"]["sheet"], timeout=10)
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(res.content)).convert("RGB")


def test_one_content_two_styles_fills_the_sheet(studio) -> None:  # noqa: ANN001
    res = post_grid(studio)
    assert res.status_code == 202, res.text
    batch = res.json()
    assert res.headers["location"] == f"/api/batches/{batch['id']}"
    assert batch["total"] == 2 and batch["rows"] == ["photo"] and batch["columns"] == ["painting0", "painting1"]
    empty = sheet(studio, batch)  # the grid as submitted: two empty cells
    done = wait_finished(studio, batch)
    assert done["done"] == 2 and {c["status"] for c in done["cells"]} == {"done"}
    assert done["urls"]["sheet"].endswith("over=2")
    full = sheet(studio, done)
    assert full.size == empty.size  # the same grid, filled in
    # Each cell of the sheet holds its job's result (the studio's own records and results).
    url = studio[0]
    for cell in done["cells"]:
        job = httpx.get(f"{url}/api/jobs/{cell['job']}", timeout=10).json()
        assert job["status"] == "done" and job["options"]["size"] == 40 and job["iteration"] == 3
        result = httpx.get(url + cell["result"], timeout=10)
        assert result.status_code == 200 and Image.open(io.BytesIO(result.content)).size == (40, 33)
    e, f = np.asarray(empty, dtype=np.int16), np.asarray(full, dtype=np.int16)
    assert np.abs(e - f).sum() > 0 and len(np.unique(f.reshape(-1, 3), axis=0)) > len(np.unique(e.reshape(-1, 3), axis=0)) + 100


def test_a_style_weight_sweep_is_one_column_a_value(studio) -> None:  # noqa: ANN001
    res = post_grid(studio, styles=1, sweep="style_weight=50,200")
    assert res.status_code == 202, res.text
    batch = wait_finished(studio, res.json())
    assert batch["columns"] == ["painting0 style_weight=50", "painting0 style_weight=200"]
    weights = [httpx.get(f"{studio[0]}/api/jobs/{c['job']}", timeout=10).json()["options"]["style_weight"] for c in batch["cells"]]
    assert weights == [50, 200] and batch["done"] == 2


def test_each_cell_job_carries_its_notes(studio) -> None:  # noqa: ANN001
    res = post_grid(studio, styles=1, sweep="size=40,64", options='{"iterations": 2}')
    assert res.status_code == 202, res.text
    batch = wait_finished(studio, res.json())
    notes = [httpx.get(f"{studio[0]}/api/jobs/{c['job']}", timeout=10).json()["notes"] for c in batch["cells"]]
    assert notes == [[], ["content image is only 48x40 px; upscaled to 64 px"]]


@pytest.mark.parametrize(
    ("kwargs", "status", "field", "text"),
    [
        ({"sweep": "style_wait=1,2"}, 400, "sweep", "unknown option 'style_wait'"),
        ({"sweep": "style_weight"}, 400, "sweep", "FIELD=V1,V2"),
        ({"sweep": "style_weight=50,-5"}, 400, "style_weight", "at least 0"),
        ({"options": '{"size": 100000}'}, 400, "size", "at most"),
        ({"styles": 0}, 400, None, "style: upload at least one style image"),
        ({"content": False}, 400, None, "content: no file uploaded"),
        ({"styles": 3, "sweep": "style_weight=1,2"}, 400, "sweep", "a grid of 6 jobs is more than this server's queue holds (4)"),
        ({"token": False}, 403, None, ""),
    ],
)
def test_bad_grid_is_a_4xx_naming_the_field_and_queues_nothing(studio, kwargs: dict, status: int, field: str | None, text: str) -> None:  # noqa: ANN001
    url = studio[0]
    before = len(httpx.get(f"{url}/api/jobs", timeout=10).json()["jobs"])
    res = post_grid(studio, **kwargs)
    assert res.status_code == status, res.text
    body = res.json()
    assert text in body["detail"] and "\n" not in body["detail"]
    if field is not None:
        assert body["field"] == field and body["detail"].startswith(field), body
    assert len(httpx.get(f"{url}/api/jobs", timeout=10).json()["jobs"]) == before


def test_unknown_batch_is_404_and_the_page_carries_the_token(studio) -> None:  # noqa: ANN001
    url, headers, _ = studio
    assert httpx.get(f"{url}/api/batches/{'0' * 32}", timeout=10).status_code == 404
    assert httpx.get(f"{url}/api/batches/..%2Fjobs", timeout=10).status_code == 404
    assert httpx.get(f"{url}/api/batches/{'0' * 32}/sheet", timeout=10).status_code == 404
    page = httpx.get(f"{url}/batch", timeout=10)
    assert page.status_code == 200 and headers["X-Painterly-Token"] in page.text and "/static/batch.js" in page.text
    assert 'href="/batch"' in httpx.get(url, timeout=10).text  # the studio's page links to it


def test_a_cancelled_cell_says_cancelled_once(studio) -> None:  # noqa: ANN001
    url, headers, _ = studio
    batch = post_grid(studio, options='{"size": 40, "iterations": 5000}').json()
    for cell in batch["cells"]:
        assert httpx.delete(f"{url}/api/jobs/{cell['job']}", headers=headers, timeout=10).status_code == 200
    batch = wait_finished(studio, batch)
    assert {c["status"] for c in batch["cells"]} == {"cancelled"}, batch["cells"]
    assert [c["error"] for c in batch["cells"]] == [None, None]  # not "cancelled: cancelled" on the page
