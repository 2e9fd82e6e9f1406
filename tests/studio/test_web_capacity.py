"""Issue 14 item 5 and issue 15 item 4 in the studio's API: the largest size is what fits this machine's
memory with tiles (offered in /api/config, refused above with a 400 naming `size`); a tiled job reports
its tile grid; a job's mask is kept with it and served back, also by a restarted server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from painterly.config import MAX_SIZE, Config
from painterly.engine.memory import ACTIVATION_SHARE, lbfgs_history_for_memory
from painterly.engine.optimizers import MIN_LBFGS_HISTORY
from painterly.errors import ConfigError
from painterly.web.capacity import FLOOR, STEP, fits, largest_size, level_bytes, memory_limits
from painterly.web.options import build_config
from test_web_api import client, defaults, detail, finished, make_client, png_bytes, submit, wait_for, weights_file  # noqa: F401
from test_web_masks import _mask_png, _post

GB = 10**9


@pytest.mark.parametrize("free_gb", [1, 4, 12, 24, 64])
def test_the_largest_size_is_the_largest_that_fits(free_gb: int) -> None:
    config = Config.for_mode("stylize")
    cap = largest_size(config, free_gb * GB)
    assert cap.max_size % STEP == 0 and FLOOR <= cap.max_size < MAX_SIZE
    assert fits(cap.max_size, free_gb * GB, config) and not fits(cap.max_size + STEP, free_gb * GB, config)
    # The history is the engine's own choice at that size (at least MIN_LBFGS_HISTORY steps), not the request's 100.
    side = cap.max_size
    assert cap.history == lbfgs_history_for_memory(100, (1, 3, side, side), free_gb * GB, MIN_LBFGS_HISTORY)
    assert cap.history >= MIN_LBFGS_HISTORY
    assert level_bytes(side, free_gb * GB, config) <= (1 - ACTIVATION_SHARE) * free_gb * GB


def test_the_largest_size_grows_with_memory_and_stops_at_the_config_limit() -> None:
    config = Config.for_mode("stylize")
    sizes = [largest_size(config, g * GB).max_size for g in (2, 8, 32)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert largest_size(config, 10**15).max_size == MAX_SIZE == 16384
    assert largest_size(config, 1).max_size == FLOOR
    # Adam keeps two images of moments, not L-BFGS's history: more fits.
    assert largest_size(Config.for_mode("stylize", optimizer="adam"), 8 * GB).max_size > sizes[1]


def test_memory_limits_allow_what_fits_and_refuse_above_naming_size(defaults) -> None:
    limits, cap = memory_limits(Config.for_mode("stylize"), free=24 * GB)
    assert limits.max_size == cap.max_size > 2048  # tiles: more than the old fixed 2048
    assert build_config({"size": limits.max_size}, defaults, limits).size == limits.max_size
    with pytest.raises(ConfigError, match=f"size must be at most {limits.max_size} on this server") as err:
        build_config({"size": limits.max_size + STEP}, defaults, limits)
    assert err.value.fields == ("size",)
    # Two workers share the memory: each job gets less.
    assert memory_limits(Config.for_mode("stylize"), workers=2, free=24 * GB)[0].max_size < limits.max_size


def test_config_offers_the_size_that_fits_and_a_request_above_it_is_a_400(client) -> None:  # noqa: F811
    limits = client.get("/api/config").json()["limits"]
    top = limits["max_size"]
    assert top % STEP == 0 and FLOOR <= top <= MAX_SIZE
    assert f"up to {top} px" in limits["max_size_note"] and "tiles" in limits["max_size_note"]
    r = submit(client, {"size": top + STEP})
    assert r.status_code == 400 and r.json()["field"] == "size"
    assert f"at most {top}" in detail(r)
    assert client.get("/api/jobs").json()["jobs"] == []


def test_a_tiled_job_reports_its_tile_grid(client) -> None:  # noqa: F811
    r = submit(client, {"size": 48, "iterations": 3, "tile": 16})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], finished, timeout=60)
    assert job["status"] == "done", job
    h, w = job["size"]["height"], job["size"]["width"]
    covered = np.zeros((h, w), int)
    for top, left, th, tw in job["tiles"]["grid"]:
        covered[top : top + th, left : left + tw] += 1
    assert len(job["tiles"]["grid"]) > 1 and (covered == 1).all()
    assert job["tiles"]["active"] is None  # nothing is in work once it is over
    untiled = wait_for(client, submit(client, {"size": 48, "iterations": 2, "tile": 0}).json()["id"], finished, timeout=60)
    assert untiled["status"] == "done" and untiled["tiles"] is None


def test_the_mask_is_kept_with_the_job_and_served_after_a_restart(make_client, tmp_path) -> None:  # noqa: F811
    sent = _mask_png(48, 32)
    c = make_client(workdir=tmp_path / "w")
    r = _post(c, sent, ["red=1", "blue=2"])
    assert r.status_code == 202, r.text
    job = wait_for(c, r.json()["id"], finished, timeout=60)
    assert job["has_mask"] and job["urls"]["mask"] == f"/api/jobs/{job['id']}/mask"
    assert job["inputs"]["mask"] == "mask.png"
    got = c.get(job["urls"]["mask"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got.content))), np.asarray(Image.open(io.BytesIO(sent))))
    plain = wait_for(c, submit(c, {"iterations": 1}).json()["id"], finished, timeout=60)
    assert not plain["has_mask"] and plain["urls"]["mask"] is None
    assert c.get(f"/api/jobs/{plain['id']}/mask").status_code == 404

    again = make_client(workdir=tmp_path / "w")  # a restarted server on the same folder
    restored = again.get(f"/api/jobs/{job['id']}").json()
    assert restored["has_mask"] and restored["urls"]["mask"] == job["urls"]["mask"]
    assert again.get(job["urls"]["mask"]).content == got.content
