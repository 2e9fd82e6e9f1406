"""Issue 17, ``painterly batch``: a 2 × 3 grid at 48 px through real subprocesses (tiny weights, one
thread): six images, the manifest, the contact sheet; a re-run recomputes nothing; a corrupt input is
one line and the other jobs finish; a batch stopped with SIGINT and run again completes with the very
same images as a batch never interrupted. Plus the job list itself: sweeps, paired, a jobs file."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import fast_args, finish, run_main, run_painterly, start_painterly, wait_for

ITERATIONS = 4


def _png(path: Path, seed: int, size: tuple[int, int] = (56, 48)) -> Path:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    noise = rng.integers(0, 80, (size[1], size[0], 3))
    Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def grid_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photos/{a,b}.png and paintings/{p1,p2,p3}.png."""
    root = tmp_path_factory.mktemp("grid")
    (root / "photos").mkdir()
    (root / "paintings").mkdir()
    for i, name in enumerate(("a", "b")):
        _png(root / "photos" / f"{name}.png", i)
    for i, name in enumerate(("p1", "p2", "p3")):
        _png(root / "paintings" / f"{name}.png", 10 + i, (48, 48))
    return root


def _batch_args(root: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [
        "batch", "--content", str(root / "photos"), "--style", str(root / "paintings" / "*.png"), "-o", str(out),
        *fast_args(weights, iterations=ITERATIONS), *extra,
    ]  # fmt: skip


def _records(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {r["output"]: r for r in map(json.loads, lines)}


def _files(out: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.glob("*__*.png"))}


EXPECTED = {f"{c}__{s}.png" for c in ("a", "b") for s in ("p1", "p2", "p3")}


@pytest.fixture(scope="module")
def reference(grid_inputs: Path, tiny_weights_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The grid run once, uninterrupted; returns (its folder, its stderr)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    proc = run_painterly(_batch_args(grid_inputs, out, tiny_weights_file), grid_inputs)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_grid_writes_six_images_manifest_and_contact_sheet(reference: tuple[Path, str]) -> None:
    out, err = reference
    assert set(_files(out)) == EXPECTED
    records = _records(out)
    assert set(records) == EXPECTED
    for name, r in records.items():
        assert r["status"] == "done" and r["action"] == "ran", r
        assert r["seed"] == 0 and r["iterations"] == ITERATIONS and r["losses"]["total"] > 0
        assert r["options"]["size"] == 48 and r["content"].endswith(name.split("__")[0] + ".png")
        assert r["bytes"] == (out / name).stat().st_size
        with Image.open(out / name) as img:
            assert max(img.size) == 48
    # The contact sheet: 2 rows × 3 columns of 160 px cells, labelled; the page links all six.
    with Image.open(out / "contact-sheet.png") as sheet:
        assert sheet.width > 3 * 160 and 2 * 160 < sheet.height < 3 * 160
        assert len(set(np.asarray(sheet.convert("L")).ravel().tolist())) > 50  # pictures, not a blank page
    page = (out / "index.html").read_text()
    assert all(f"src='{name}'" in page for name in EXPECTED)
    assert "6/6 done (6 ran, 0 skipped), 0 failed" in err
    for name in (*EXPECTED, "manifest.jsonl", "contact-sheet.png", "index.html"):  # private, as every file painterly writes
        assert oct((out / name).stat().st_mode & 0o777) == oct(0o600), name


def test_rerun_recomputes_nothing(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path) -> None:
    out, _ = reference
    before = _files(out)
    proc = run_painterly(_batch_args(grid_inputs, out, tiny_weights_file), grid_inputs)
    assert proc.returncode == 0, proc.stderr
    assert _files(out) == before  # not one image rewritten (same bytes, same mtime)
    assert {r["action"] for r in _records(out).values()} == {"skipped"}
    assert "6/6 done (0 ran, 6 skipped)" in proc.stderr


def test_changed_or_damaged_output_is_redone(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    good = (out / "a__p2.png").read_bytes()
    (out / "a__p2.png").write_bytes(good[:-20])  # cut short: same name, wrong size and hash
    (out / "b__p3.png").unlink()
    proc = run_painterly(_batch_args(grid_inputs, out, tiny_weights_file), grid_inputs)
    assert proc.returncode == 0, proc.stderr
    actions = {k: r["action"] for k, r in _records(out).items()}
    assert actions.pop("a__p2.png") == "ran" and actions.pop("b__p3.png") == "ran"
    assert set(actions.values()) == {"skipped"}
    assert (out / "a__p2.png").read_bytes() == good
    assert (out / "b__p3.png").read_bytes() == (reference[0] / "b__p3.png").read_bytes()


def test_corrupt_input_is_one_line_and_the_others_finish(grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    styles = tmp_path / "styles"
    styles.mkdir()
    for name in ("p1", "p2"):
        (styles / f"{name}.png").write_bytes((grid_inputs / "paintings" / f"{name}.png").read_bytes())
    (styles / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    out = tmp_path / "out"
    args = ["batch", "--content", str(grid_inputs / "photos"), "--style", str(styles), "-o", str(out), *fast_args(tiny_weights_file, iterations=ITERATIONS)]
    proc = run_painterly(args, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    naming = [line for line in proc.stderr.splitlines() if "broken.png" in line]
    assert len(naming) == 1 and naming[0].startswith("painterly: error:"), proc.stderr
    records = _records(out)
    failed = {k for k, r in records.items() if r["status"] == "failed"}
    assert failed == {"a__broken.png", "b__broken.png"}
    assert all("broken.png" in records[k]["error"] for k in failed)
    assert {k for k, r in records.items() if r["status"] == "done"} == {f"{c}__{s}.png" for c in "ab" for s in ("p1", "p2")}
    assert sorted(p.name for p in out.glob("*__*.png")) == sorted(f"{c}__{s}.png" for c in "ab" for s in ("p1", "p2"))
    assert "failed: " in (out / "index.html").read_text()


def test_sigint_mid_batch_then_rerun_completes_identically(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # --checkpoint-every 1: the third job's checkpoint shows that it is under way (the signal then
    # lands inside a run, not between two jobs, which would leave nothing to resume).
    args = _batch_args(grid_inputs, out, tiny_weights_file, "--checkpoint-every", "1")
    proc = start_painterly(args, grid_inputs, step_delay=0.3)

    def third_under_way() -> bool:
        try:
            done = {k for k, r in _records(out).items() if r["status"] == "done"}
        except (OSError, ValueError):
            return False
        # (A finished job's checkpoint stays until its record is written, and goes just after.)
        return len(done) == 2 and any(p.name.removesuffix(".ckpt") not in done for p in out.glob("*.ckpt"))

    wait_for(third_under_way, proc, timeout=120, what="two finished jobs and the third under way")
    proc.send_signal(signal.SIGINT)
    rc, err = finish(proc, timeout=30)
    assert rc == 130, err
    finished = _files(out)
    assert 2 <= len(finished) < 6, err
    assert "run the same command again to continue" in err, err
    assert len(list(out.glob("*.ckpt"))) == 1  # the job in flight kept its place

    proc = run_painterly(args, grid_inputs)
    assert proc.returncode == 0, proc.stderr
    after = _files(out)
    assert {k: after[k] for k in finished} == finished  # the finished images untouched
    actions = [r["action"] for r in _records(out).values()]
    assert actions.count("skipped") == len(finished) and actions.count("resumed") == 1
    assert not list(out.glob("*.ckpt"))
    # Every image, the resumed one included, is the very one an uninterrupted batch made.
    ref = reference[0]
    assert {k: v[1] for k, v in after.items()} == {k: (ref / k).read_bytes() for k in EXPECTED}


# --- the job list ---------------------------------------------------------------------------------


def test_sweep_and_jobs_file_name_and_override(capsys: pytest.CaptureFixture[str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    photo, painting = grid_inputs / "photos" / "a.png", grid_inputs / "paintings" / "p1.png"
    out = tmp_path / "sweep"
    rc, err = run_main(capsys, ["batch", "--content", str(photo), "--style", str(painting), "-o", str(out), "--sweep", "style_weight=50,200", "-q", *fast_args(tiny_weights_file, iterations=2)])
    assert rc == 0, err
    records = _records(out)
    assert set(records) == {"a__p1__style_weight-50.png", "a__p1__style_weight-200.png"}
    assert {r["options"]["style_weight"] for r in records.values()} == {50, 200}
    assert {r["column"] for r in records.values()} == {"p1 style_weight=50", "p1 style_weight=200"}

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"content": str(photo), "styles": [str(painting), str(grid_inputs / "paintings" / "p2.png")], "options": {"iterations": 1}, "output": "blend.png"}) + "\n"
        + "# a comment\n" + json.dumps({"content": str(photo), "style": str(painting)}) + "\n"
    )  # fmt: skip
    out = tmp_path / "jobs"
    rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(out), "-q", *fast_args(tiny_weights_file, iterations=2)])
    assert rc == 0, err
    records = _records(out)
    assert records["blend.png"]["iterations"] == 1 and records["a__p1.png"]["iterations"] == 2  # the line overrides


def test_yaml_jobs_file_list_or_documents(capsys: pytest.CaptureFixture[str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    """The same jobs as a YAML list and as YAML documents: relative paths, a style or a blend, per-job
    options over the command line's, an output name; the two make the same images."""
    import shutil

    shutil.copytree(grid_inputs, tmp_path / "in")
    listed = tmp_path / "in" / "jobs.yaml"
    listed.write_text(
        "# two jobs\n"
        "- content: photos/a.png\n"
        "  styles: [paintings/p1.png, paintings/p2.png]\n"
        "  options:\n"
        "    iterations: 1\n"
        "    style-weight: 50\n"
        "  output: blend.png\n"
        "- content: photos/b.png\n"
        "  style: paintings/p3.png\n"
    )
    documents = tmp_path / "in" / "jobs.yml"
    documents.write_text(
        "content: photos/a.png\nstyles:\n  - paintings/p1.png\n  - paintings/p2.png\noptions: {iterations: 1, style_weight: 50}\noutput: blend.png\n"
        "---\ncontent: photos/b.png\nstyle: paintings/p3.png\n"
    )
    made = {}
    for jobs in (listed, documents):
        out = tmp_path / jobs.suffix[1:]
        rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(out), "-q", *fast_args(tiny_weights_file, iterations=2)])
        assert rc == 0, err
        records = _records(out)
        assert set(records) == {"blend.png", "b__p3.png"}
        blend = records["blend.png"]
        assert blend["iterations"] == 1 and blend["options"]["style_weight"] == 50 and len(blend["styles"]) == 2
        assert records["b__p3.png"]["iterations"] == 2 and records["b__p3.png"]["content"] == str(tmp_path / "in" / "photos" / "b.png")
        made[jobs.suffix] = {name: (out / name).read_bytes() for name in records}
    assert made[".yaml"] == made[".yml"]


def test_bad_yaml_jobs_file_is_one_line_naming_line_and_field(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cases = {
        "- content: a.png\n  styles: [p.png]\n  options:\n    iterations: 2\n    style_weight: -5\n": "jobs.yaml line 5: --style-weight",
        "- content: a.png\n  styles: [p.png]\n  options:\n    style_wait: 3\n": "jobs.yaml line 4: unknown option 'style_wait'",
        "- content: a.png\n  styles: [p.png]\n- content: b.png\n  colour: red\n  style: p.png\n": "jobs.yaml line 4: unknown key 'colour'",
        "- content: a.png\n  styles: [p.png]\n- content: b.png\n": 'jobs.yaml line 3: needs "content" and "styles"',
        "- content: a.png\n  styles: {p: 1}\n": 'jobs.yaml line 2: "styles" must be a path or a list of paths',
        "- content: a.png\n  style: p.png\n  output: sub/x.png\n": 'jobs.yaml line 3: "output" must be a file name',
        "- content: a.png\n  styles: [p.png\n- content: b.png\n": "jobs.yaml line 3: not YAML",
        "# nothing\n": "lists no jobs",
    }
    jobs = tmp_path / "jobs.yaml"
    for text, expected in cases.items():
        jobs.write_text(text)
        rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(tmp_path / "o")])
        assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, (text, err)
        assert err.startswith("painterly: error: --jobs ") and "Traceback" not in err
    # Without PyYAML, a YAML job file (and only that) says how to install it.
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)
    rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(tmp_path / "o")])
    assert rc == 2 and err.strip() == "painterly: error: reading a YAML job file needs PyYAML, which is not installed: pip install pyyaml", err


def test_job_list_errors_are_one_line(capsys: pytest.CaptureFixture[str], grid_inputs: Path, tmp_path: Path) -> None:
    from painterly.batch import build_jobs

    cases = [
        (["batch", "-o", str(tmp_path / "o"), "--content", str(grid_inputs / "photos")], "--content and --style"),
        (["batch", "-o", str(tmp_path / "o"), "--content", str(grid_inputs / "photos"), "--style", str(tmp_path / "*.jpg")], "names no image files"),
        (["batch", "-o", str(tmp_path / "o"), "--content", "x.png", "--style", "y.png", "--sweep", "style_wait=1,2"], "unknown option 'style_wait'"),
        (["batch", "-o", str(tmp_path / "o"), "--content", "x.png", "--style", "y.png", "--paired", "--style", "y.png", "z.png"], "as many contents as styles"),
        (["batch", "-o", str(tmp_path / "o"), "--content", "x.png", "--style", "y.png", "--sweep", "style_weight=-5"], "--style-weight"),
        (["batch", "-o", str(tmp_path / "o"), "--content", "x.png", "--style", "y.png", "--ray-shared"], "need --backend ray"),
    ]
    for argv, expected in cases:
        rc, err = run_main(capsys, argv)
        assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, (argv, err)
    # A result may not land on an input: `-o` the photos' own folder, with a photo named like a result.
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "a__p1.png").write_bytes((grid_inputs / "photos" / "a.png").read_bytes())
    (clash / "a.png").write_bytes((grid_inputs / "photos" / "a.png").read_bytes())
    rc, err = run_main(capsys, ["batch", "-o", str(clash), "--content", str(clash / "a.png"), str(clash / "a__p1.png"), "--style", str(grid_inputs / "paintings" / "p1.png")])
    assert rc == 2 and "would overwrite the input" in err, err
    with pytest.raises(Exception, match="two jobs would write a__p1.png"):
        build_jobs(["x/a.png", "y/a.png"], ["p1.png"])
    assert [j.output for j in build_jobs(["a.png", "b.png"], ["p1.png", "p2.png"], paired=True)] == ["a__p1.png", "b__p2.png"]


def test_ray_backend_without_ray_says_how_to_install(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    rc, err = run_main(capsys, _batch_args(grid_inputs, tmp_path / "out", tiny_weights_file, "--backend", "ray"))
    assert rc == 2 and err.strip() == "painterly: error: --backend ray needs Ray, which is not installed: pip install 'painterly[ray]'"


# --- the same grid on a Ray cluster ---------------------------------------------------------------

SLOW_STEPS = '''
import os, sys, time, importlib.abc, importlib.util
class _SlowSteps(importlib.abc.MetaPathFinder):
    """Each optimiser step of painterly.engine.run.Run sleeps a little (results unchanged)."""
    def find_spec(self, name, path, target=None):
        if name != "painterly.engine.run":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module
        def slowed(module):
            exec_module(module)
            step, delay = module.Run.step, float(os.environ["PAINTERLY_TEST_STEP_DELAY"])
            module.Run.step = lambda self: (time.sleep(delay), step(self))[1]
        spec.loader.exec_module = slowed
        return spec
if os.environ.get("PAINTERLY_TEST_STEP_DELAY"):
    sys.meta_path.insert(0, _SlowSteps())
'''


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A real Ray head on 127.0.0.1 with 2 CPUs (two one-CPU workers), its processes slowed per
    optimiser step (so that a worker can be killed mid-job), stopped at the end of the module."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'painterly[ray]')")
    import socket
    import subprocess
    import sys
    import tempfile
    import threading

    from cli_support import child_env

    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(SLOW_STEPS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="pr-")  # short: Ray's socket paths must stay under 107 characters
    env = child_env(PYTHONPATH=str(hook), PAINTERLY_TEST_STEP_DELAY="0.25", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in head.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(180):  # a loaded 2-core CI machine can take a while
            pytest.fail("the Ray head did not start:\n" + "".join(lines))
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            import os

            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def _ray_args(grid_inputs: Path, out: Path, weights: Path, address: str) -> list[str]:
    return _batch_args(grid_inputs, out, weights, "--backend", "ray", "--ray-address", address, "--ray-workers", "2")


@pytest.mark.slow  # a real Ray cluster: ~90 s for the three on 2 cores; CI runs them (-m "")
def test_ray_backend_makes_the_same_images(ray_cluster, reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    address, env = ray_cluster
    out = tmp_path / "out"
    proc = run_painterly(_ray_args(grid_inputs, out, tiny_weights_file, address), grid_inputs, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "2 workers" in proc.stderr and "6/6 done (6 ran, 0 skipped)" in proc.stderr
    assert "Traceback" not in proc.stderr and "core_worker" not in proc.stderr, proc.stderr  # no Ray warnings either
    got = {k: v[1] for k, v in _files(out).items()}
    assert got == {k: (reference[0] / k).read_bytes() for k in EXPECTED}  # bit for bit, same seeds
    assert {r["status"] for r in _records(out).values()} == {"done"}


@pytest.mark.slow  # a real Ray cluster
def test_ray_shared_output_folder_workers_write_the_same_images(ray_cluster, reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """--ray-shared: the workers write results into the (here, trivially shared) folder themselves;
    the images, the manifest and a re-run's skipping are those of the default path."""
    address, env = ray_cluster
    out = tmp_path / "new" / "out"  # not there yet: made before the workers write into it
    args = _ray_args(grid_inputs, out, tiny_weights_file, address) + ["--ray-shared"]
    proc = run_painterly(args, grid_inputs, env=env, timeout=180)
    assert proc.returncode == 0 and "6/6 done (6 ran, 0 skipped), 0 failed" in proc.stderr, proc.stderr
    assert {k: v[1] for k, v in _files(out).items()} == {k: (reference[0] / k).read_bytes() for k in EXPECTED}
    proc = run_painterly(args, grid_inputs, env=env, timeout=180)
    assert proc.returncode == 0 and "6/6 done (0 ran, 6 skipped)" in proc.stderr, proc.stderr


@pytest.mark.slow  # a real Ray cluster: ~90 s for the three on 2 cores; CI runs them (-m "")
def test_ray_worker_killed_mid_batch_resumes_its_job_from_the_checkpoint(ray_cluster, reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """--checkpoint-every 1: the workers' checkpoints land beside the outputs; a worker killed mid-job
    is restarted and its job continues from the latest checkpoint; the images are the reference's."""
    import os
    import queue
    import re
    import threading
    import time

    address, env = ray_cluster
    out = tmp_path / "out"
    proc = start_painterly(_ray_args(grid_inputs, out, tiny_weights_file, address) + ["--checkpoint-every", "1"], grid_inputs, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen: list[str] = []

    def next_line(pattern: str) -> re.Match:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if m := re.search(pattern, line):
                return m
        proc.kill()
        pytest.fail("expected a line matching %r; stderr so far:\n%s" % (pattern, "".join(seen)))

    pids = [int(p) for p in next_line(r"2 workers \(pids (\d+), (\d+)\)").groups()]
    victim = int(next_line(r"\[1/6\] \S+: ran on worker (\d+)").group(1))
    # It has taken its next job: kill it once both jobs in flight have a checkpoint.
    wait_for(lambda: len(list(out.glob("*.ckpt"))) == 2, proc, timeout=60, what="two checkpoints beside the outputs")
    os.kill(victim, signal.SIGKILL)
    proc.wait(180)
    while True:
        try:
            seen.append(lines.get(timeout=2))
        except queue.Empty:
            break
    err = "".join(seen)
    assert proc.returncode == 0, err
    assert "6/6 done (6 ran, 0 skipped), 0 failed" in err, err
    assert re.search(r"the worker running \S+ died; running it again from its latest checkpoint", err), err
    resumed = re.findall(r"\] (\S+): resumed from iteration ([1-9]\d*) on worker (\d+)", err)
    assert len(resumed) == 1 and int(resumed[0][2]) not in pids, err  # on the restarted worker, past its start
    assert [k for k, r in _records(out).items() if r["action"] == "resumed"] == [resumed[0][0]]
    assert {r["status"] for r in _records(out).values()} == {"done"} and not list(out.glob("*.ckpt"))
    got = {k: v[1] for k, v in _files(out).items()}
    assert got == {k: (reference[0] / k).read_bytes() for k in EXPECTED}


@pytest.mark.slow  # a real Ray cluster: ~90 s for the three on 2 cores; CI runs them (-m "")
def test_ray_progress_beneath_the_bar_then_sigint_and_resume(ray_cluster, reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """On a terminal (a real pty), each running job's own bar (its name, iteration, loss) sits beneath
    the batch's; SIGINT stops the jobs in flight with their checkpoints (exit 130); the same command
    then continues them and the images are the reference's."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import subprocess
    import termios
    import threading

    from cli_support import painterly_command

    address, env = ray_cluster
    out = tmp_path / "out"
    args = _ray_args(grid_inputs, out, tiny_weights_file, address)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(painterly_command(args), cwd=grid_inputs, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    text = lambda: b"".join(chunks).decode("utf-8", "replace")  # noqa: E731
    job_bar = re.compile(r"[ab]__p\d\.png +\d+%\|.*\| \S+ it [1-3]/4 48x\d+ .*loss \S+")
    wait_for(lambda: job_bar.search(text()) is not None, proc, timeout=120, what="a job's own bar with its iteration")
    assert re.search(r"batch: +\d+%\|", text())  # the batch's bar above it
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130, text()
    reader.join(5)
    os.close(master)
    stopped = re.findall(r"SIGINT: stopped (\S+) at iteration (\d)/4; run the same command again to continue", text())
    assert 1 <= len(stopped) <= 2, text()
    assert sorted(p.name for p in out.glob("*.ckpt")) == sorted(name + ".ckpt" for name, _ in stopped)

    proc = run_painterly(args, grid_inputs, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    records = _records(out)
    assert sorted(k for k, r in records.items() if r["action"] == "resumed") == sorted(name for name, _ in stopped)
    assert {r["status"] for r in records.values()} == {"done"} and not list(out.glob("*.ckpt"))
    got = {k: v[1] for k, v in _files(out).items()}
    assert got == {k: (reference[0] / k).read_bytes() for k in EXPECTED}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def test_together_gives_the_images_of_one_job_at_a_time(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    """--together 3 (the GPU's default is 4): jobs advanced three at a time, their images evaluated in
    one encoder pass; the same six images (within a level of 8-bit rounding: a batched convolution
    may sum in another order), manifest and sheet as one job at a time."""
    out = tmp_path / "out"
    proc = run_painterly(_batch_args(grid_inputs, out, tiny_weights_file, "--together", "3"), grid_inputs)
    assert proc.returncode == 0, proc.stderr
    assert set(_files(out)) == EXPECTED and {r["status"] for r in _records(out).values()} == {"done"}
    assert proc.stderr.count("together with 2 more") == 6, proc.stderr
    for name in EXPECTED:
        assert np.abs(_pixels(out / name) - _pixels(reference[0] / name)).max() <= 1, name


def test_a_failure_inside_a_group_hands_the_group_to_one_job_at_a_time(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """A run that fails while its group runs together (here: the second job of each group, inside
    run_together's thread) stops the group; every job is checkpointed and finished one at a time,
    resuming from its checkpoint: all six images as without the failure."""
    import threading

    import torch

    from painterly.engine.run import Run
    from painterly.errors import DivergenceError

    step = Run.step

    def failing(self):  # noqa: ANN001
        if threading.current_thread().name == "painterly-run-1" and self.iteration >= 2:
            raise DivergenceError("diverged (made to fail by the test)", image=torch.zeros(1, 3, 8, 8))
        return step(self)

    monkeypatch.setattr(Run, "step", failing)
    out = tmp_path / "out"
    rc, err = run_main(capsys, _batch_args(grid_inputs, out, tiny_weights_file, "--together", "3"))
    assert rc == 0, err
    records = _records(out)
    assert set(records) == EXPECTED and {r["status"] for r in records.values()} == {"done"}
    assert {r["action"] for r in records.values()} == {"resumed"}  # every job continued from its checkpoint
    for name in EXPECTED:
        assert np.abs(_pixels(out / name) - _pixels(reference[0] / name)).max() <= 1, name
    assert not list(out.glob("*.ckpt"))


def test_together_is_refused_with_ray(grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rc, err = run_main(capsys, _batch_args(grid_inputs, tmp_path / "out", tiny_weights_file, "--backend", "ray", "--together", "2"))
    assert rc == 2 and "--together is for --backend local" in err, err
    assert not (tmp_path / "out").exists()


def test_sigint_in_a_group_then_rerun_completes(reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:
    """--together 3: a Ctrl-C while the first group runs stops all three of its jobs, each keeping a
    checkpoint; the re-run resumes them and finishes the batch with the images of an uninterrupted one."""
    out = tmp_path / "out"
    args = _batch_args(grid_inputs, out, tiny_weights_file, "--together", "3", "--checkpoint-every", "1")
    proc = start_painterly(args, grid_inputs, step_delay=0.3)
    wait_for(lambda: len(list(out.glob("*.ckpt"))) == 3, proc, timeout=120, what="the first group's three checkpoints")
    proc.send_signal(signal.SIGINT)
    rc, err = finish(proc, timeout=30)
    assert rc == 130, err
    assert "Traceback" not in err and err.count("run the same command again to continue") == 3, err
    assert len(list(out.glob("*.ckpt"))) == 3 and not _files(out)

    proc = run_painterly(args, grid_inputs)
    assert proc.returncode == 0, proc.stderr
    actions = sorted(r["action"] for r in _records(out).values())
    assert actions == ["ran"] * 3 + ["resumed"] * 3, actions
    assert not list(out.glob("*.ckpt"))
    for name in EXPECTED:
        assert np.abs(_pixels(out / name) - _pixels(reference[0] / name)).max() <= 1, name


@pytest.mark.slow  # a real Ray cluster and a tmpfs (needs root; skipped without)
def test_ray_batch_whose_folder_goes_read_only_stops_then_continues(ray_cluster, reference: tuple[Path, str], grid_inputs: Path, tiny_weights_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """As a local batch (tests/cli/test_disk_full.py): once a finished job cannot be recorded, the jobs in
    flight stop and no more start (exit 1, one line saying why) instead of running every job left
    unrecorded; the same command, once the folder is writable, finishes with the reference's images."""
    from cli_support import remount, small_disk

    address, env = ray_cluster
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**env, "TMPDIR": str(temp)}
    with small_disk(tmp_path) as disk:
        out = disk / "out"
        args = _ray_args(grid_inputs, out, tiny_weights_file, address) + ["--checkpoint-every", "1"]
        proc = start_painterly(args, grid_inputs, env=env)
        wait_for(lambda: (out / "manifest.jsonl").is_file(), proc, timeout=180, what="the first job's record")
        remount(disk, "ro")
        recorded = len(_records(out))
        rc, err = finish(proc, timeout=180)
        assert rc == 1, err
        assert "Traceback" not in err, err
        assert "stopping the batch" in err and "Read-only file system" in err, err
        assert recorded < len(EXPECTED) and len(_records(out)) == recorded
        # A job that finished after the folder went read-only is kept in the temporary folder, said so.
        kept = sorted(temp.glob("painterly-*.png"))
        assert len(kept) <= 2 and all(str(p) in err for p in kept), err
        remount(disk, "rw")
        again = run_painterly(args, grid_inputs, env=env, timeout=180)
        assert again.returncode == 0, again.stderr
        assert {r["status"] for r in _records(out).values()} == {"done"} and set(_records(out)) == EXPECTED
        assert not list(out.glob("*.ckpt")) and not list(out.glob(".*.tmp"))
        got = {k: v[1] for k, v in _files(out).items()}
        assert got == {k: (reference[0] / k).read_bytes() for k in EXPECTED}
