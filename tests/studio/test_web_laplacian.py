"""The studio and the Laplacian loss, over real HTTP on 127.0.0.1: ``laplacian_weight`` in a job's
options runs the term (its losses and history hold it), a bad value is a 400 naming the field, and
``/api/config`` lists every loss term the page shows (the page builds its list from it)."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from painterly.engine import BUILTIN_TERMS  # noqa: E402
from painterly.web.app import create_app  # noqa: E402
from support import noise_png, running_server, tiny_weights, token_headers  # noqa: E402


@pytest.fixture(scope="module")
def studio(tmp_path_factory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("studio-laplacian")
    weights = tiny_weights(root / "tiny.safetensors", seed=1)
    defaults = {"weights": str(weights), "content_layers": "relu2_2", "style_layers": "relu1_1,relu2_1",
                "size": 48, "iterations": 5, "multiscale": False, "seed": 0}  # fmt: skip
    app = create_app(root / "work", default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        yield http


def _submit(http, options: dict):  # noqa: ANN001, ANN202
    files = {"content": ("c.png", noise_png(48, 32, 1)), "style": ("s.png", noise_png(40, 40, 2))}
    return http.post("/api/jobs", files=files, data={"options": json.dumps(options)})


def _finished(http, job_id: str) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    pytest.fail("the job did not finish")


def test_config_lists_every_loss_term_the_page_shows(studio) -> None:
    terms = studio.get("/api/config").json()["loss_terms"]
    assert [t["name"] for t in terms] == ["total", *BUILTIN_TERMS]
    assert {t["name"]: t["label"] for t in terms}["tv"] == "smoothness"
    assert [t["name"] for t in terms if not t["always"]] == ["laplacian"]
    assert studio.get("/api/config").json()["defaults"]["laplacian_weight"] == 0


def test_a_job_with_the_field_reports_the_term(studio) -> None:
    r = _submit(studio, {"laplacian_weight": 500, "laplacian_pools": [2, 4]})
    assert r.status_code == 202, r.text
    done = _finished(studio, r.json()["id"])
    assert done["status"] == "done", done["error"]
    assert done["options"]["laplacian_weight"] == 500 and done["options"]["laplacian_pools"] == [2, 4]
    assert done["losses"]["laplacian"] > 0
    column = 1 + ["total", *BUILTIN_TERMS].index("laplacian")
    assert len(done["history"]) == 5 and all(p[column] > 0 for p in done["history"])
    # Without it the column is empty and the losses do not name it.
    plain = _finished(studio, _submit(studio, {}).json()["id"])
    assert "laplacian" not in plain["losses"] and all(p[column] is None for p in plain["history"])


@pytest.mark.parametrize("options, field", [({"laplacian_weight": -1}, "laplacian_weight"), ({"laplacian-pools": "4,4"}, "laplacian-pools")])
def test_a_bad_value_is_a_400_naming_the_field(studio, options, field) -> None:
    r = _submit(studio, options)
    assert r.status_code == 400
    assert field in r.json()["detail"]
