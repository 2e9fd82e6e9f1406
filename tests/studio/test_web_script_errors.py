"""Mistakes a script author makes with the studio's HTTP API, over real HTTP on 127.0.0.1: each gets a
4xx whose JSON ``detail`` is one line naming the field (never FastAPI's list of pydantic records),
and nothing is queued. Tiny random VGG prefix; no job runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from support import noise_png, running_server, tiny_options, tiny_weights, token_headers  # noqa: E402


def png(seed: int = 0) -> bytes:
    return noise_png(40, 32, seed)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):  # noqa: ANN201
    """(httpx client with the token, base URL) of a running studio."""
    from painterly.web.app import create_app

    tmp = tmp_path_factory.mktemp("studio")
    weights = tiny_weights(tmp / "tiny-vgg.safetensors", seed=2)
    defaults = tiny_options(weights, size=32, iterations=2, multiscale=False)
    app = create_app(tmp / "work", default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        yield http, url


def one_line(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body["detail"], str) and "\n" not in body["detail"], body
    return body


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        ({"data": {"demo": "maybe"}}, "demo"),
        # A file field sent as text (curl -F content=photo.png, without the @).
        ({"data": {"content": "photo.png"}, "files": {"style": ("s.png", png(1), "image/png")}}, "content"),
    ],
    ids=["demo-not-a-boolean", "content-as-text"],
)
def test_form_fields_of_the_wrong_kind_are_one_line_naming_the_field(studio, request_args, field):
    http, _ = studio
    r = http.post("/api/jobs", **request_args)
    assert r.status_code == 422
    body = one_line(r)
    assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
    assert "UploadFile" not in body["detail"] and "<class" not in body["detail"]
    assert http.get("/api/jobs").json()["jobs"] == []


def test_a_query_parameter_of_the_wrong_kind_is_one_line_naming_it(studio):
    http, _ = studio
    r = http.get("/api/jobs/" + "a" * 32 + "/result", params={"download": "maybe"})
    assert r.status_code == 422 and one_line(r)["field"] == "download"


@pytest.mark.parametrize("path", ["/api/jobs", "/api/batches"])
def test_a_json_body_is_415_saying_to_send_a_form(studio, path):
    http, _ = studio
    # Not read as an empty form: "no file uploaded (or send demo=true)" would be wrong, it did send demo.
    r = http.post(path, content=json.dumps({"demo": True, "options": {"size": 32}}), headers={"Content-Type": "application/json"})
    assert r.status_code == 415, r.text
    assert "application/json" in one_line(r)["detail"] and "multipart" in r.json()["detail"]
    assert http.get("/api/jobs").json()["jobs"] == []


def test_an_urlencoded_form_still_works(studio):
    http, _ = studio
    r = http.post("/api/jobs", data={"demo": "true", "options": json.dumps({"iterations": 1})})
    assert r.status_code == 202, r.text
    http.delete(f"/api/jobs/{r.json()['id']}")


def job_count(http: httpx.Client) -> int:
    return len(http.get("/api/jobs").json()["jobs"])


@pytest.mark.parametrize(
    ("path", "field", "request_args"),
    [
        ("/api/jobs", "content", {"files": [("content", ("a.png", png(1), "image/png")), ("content", ("b.png", png(2), "image/png")), ("style", ("s.png", png(3), "image/png"))]}),
        ("/api/jobs", "options", {"data": {"demo": "true", "options": ['{"size": 32}', '{"size": 64}']}}),
        ("/api/jobs", "mask", {"files": [("content", ("a.png", png(1), "image/png")), ("style", ("s.png", png(3), "image/png")), ("mask", ("m.png", png(4), "image/png")), ("mask", ("n.png", png(5), "image/png"))]}),
        ("/api/batches", "content", {"files": [("content", ("a.png", png(1), "image/png")), ("content", ("b.png", png(2), "image/png")), ("style", ("s.png", png(3), "image/png"))]}),
        ("/api/batches", "sweep", {"data": {"demo": "true", "sweep": ["style_weight=1,2", "tv_weight=1,2"]}}),
    ],
    ids=["job-content", "job-options", "job-mask", "batch-content", "batch-sweep"],
)
def test_a_repeated_form_field_is_a_422_naming_it(studio, path, field, request_args):
    http, _ = studio
    before = job_count(http)
    # The form parser keeps the last copy: the first photo (or options) would be silently ignored.
    r = http.post(path, **request_args)
    assert r.status_code == 422, r.text
    body = one_line(r)
    assert body == {"detail": f"{field}: sent twice; send it once", "field": field}
    assert job_count(http) == before


def test_several_style_files_are_still_one_field_repeated(studio):
    http, _ = studio
    files = [("content", ("a.png", png(1), "image/png")), ("style", ("s.png", png(3), "image/png")), ("style", ("t.png", png(4), "image/png"))]
    r = http.post("/api/jobs", files=files, data={"options": json.dumps({"iterations": 1})})
    assert r.status_code == 202, r.text
    assert r.json()["inputs"]["styles"] == ["s.png", "t.png"]
    http.delete(f"/api/jobs/{r.json()['id']}")


def test_init_job_with_an_explicit_init_is_refused_naming_both(studio):
    import time

    http, _ = studio
    first = http.post("/api/jobs", data={"demo": "true", "options": json.dumps({"iterations": 1})}).json()["id"]
    deadline = time.monotonic() + 60
    while http.get(f"/api/jobs/{first}").json()["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert http.get(f"/api/jobs/{first}").json()["status"] == "done"
    before = job_count(http)
    # init=noise said one start, init_job another: neither wins silently.
    r = http.post("/api/jobs", data={"demo": "true", "init_job": first, "options": json.dumps({"init": "noise", "iterations": 1})})
    assert r.status_code == 422, r.text
    body = one_line(r)
    assert body["field"] == "init_job" and "init_job" in body["detail"] and "init" in body["detail"].replace("init_job", "")
    assert job_count(http) == before
    # Either alone is fine.
    r = http.post("/api/jobs", data={"demo": "true", "init_job": first, "options": json.dumps({"iterations": 1})})
    assert r.status_code == 202 and r.json()["options"]["init"] == f"job:{first}", r.text
    http.delete(f"/api/jobs/{r.json()['id']}")


LONG = "x" * 100_000


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"style_layers": [LONG]}, "style_layers"),
        ({"content-layers": LONG}, "content-layers"),  # named as the request spelled it
        ({"optimizer": LONG}, "optimizer"),
        ({"regions": [LONG + "=1"]}, "regions"),
        ({"size": 10**4000}, "size"),
        ({"seed": LONG}, "seed"),
        ({"multiscale": [LONG]}, "multiscale"),
        ({"level_iterations": [-1] * 50_000}, "level_iterations"),
    ],
    ids=["layer-list", "layer-string", "choice", "regions", "huge-int", "seed", "bool", "level-iterations"],
)
def test_a_huge_value_is_echoed_cut_short_naming_the_field(studio, options, field):
    http, _ = studio
    before = job_count(http)
    r = http.post("/api/jobs", data={"demo": "true", "options": json.dumps(options)})
    assert r.status_code == 400, r.text[:300]
    body = one_line(r)
    assert body["field"] == field and body["detail"].startswith(field), body["detail"][:300]
    # The value is recognisable (its start, then an ellipsis), not sent back whole.
    assert "…" in body["detail"] and len(body["detail"]) < 500, body["detail"][:300]
    assert job_count(http) == before


def test_a_huge_unknown_option_or_job_id_is_echoed_cut_short(studio):
    http, _ = studio
    r = http.post("/api/jobs", data={"demo": "true", "options": json.dumps({LONG: 1})})
    assert r.status_code == 400 and "…" in one_line(r)["detail"] and len(r.json()["detail"]) < 200, r.text[:300]
    r = http.get("/api/jobs/" + "y" * 8000)
    assert r.status_code == 404 and "…" in one_line(r)["detail"] and len(r.json()["detail"]) < 200, r.text[:300]
