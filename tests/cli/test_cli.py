"""The ``painterly`` command, run as real subprocesses (``python -m painterly``).

The runs use the conftest's tiny weights file (random VGG19 convolutions up to conv3_1), 48-64 px and
a few iterations, so each takes about as long as Python needs to import torch. The runs that the tests
inspect are made once per module, two at a time, by the ``runs`` fixture.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painterly import color
from painterly.cli import COMMANDS, build_parser
from painterly.cli.outputs import OutputOptions
from painterly.config import Config

from conftest import TINY_FILE_LAYER_ARGS

TIMEOUT = 180  # seconds per subprocess: a hang fails the test instead of stalling the suite


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # One thread each: two runs share the two cores, and tiny convolutions gain nothing from more.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200", PYTHONIOENCODING="utf-8")
    return env


def painterly(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "painterly", *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _flag(name: str) -> str:
    from painterly.cli import flag

    return flag(name)  # `regions` is given once per colour: --region


# --- help -------------------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command():
    result = painterly("--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout
    assert "painterly CONTENT STYLE" in result.stdout


def test_version():
    result = painterly("--version")
    assert result.returncode == 0 and result.stdout.startswith("painterly ")


def test_no_command_prints_help_and_exits_2():
    result = painterly()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


# Options each command leaves out on purpose: they mean nothing there (texture has no content image,
# reconstruct has no style and takes its one layer from --layer).
HIDDEN = {
    "stylize": set(),
    "demo": set(),
    "texture": {"content_weight", "content_loss", "content_layers", "original_colors", "color_contrast", "init_colors", "regions", "mask_propagation", "laplacian_weight", "laplacian_pools"},
    "reconstruct": {"regions", "mask_propagation", "style_loss", "style_weight", "style_layers", "style_layer_weights", "style_scale", "style_blend", "original_colors", "color_contrast", "init_colors", "content_layers"},
}


@pytest.mark.parametrize("command", sorted(HIDDEN))
def test_every_run_command_documents_every_option(command):
    result = painterly(command, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for f in dataclasses.fields(Config):
        flag = _flag(f.name)
        if f.name in HIDDEN[command]:
            assert f"{flag} " not in text, f"{command} --help shows {flag}, which it should hide"
            continue
        assert flag in text, f"{command} --help does not mention {flag}"
        if f.type in (bool, "bool"):
            assert "--no-" + flag[2:] in text
    for f in dataclasses.fields(OutputOptions):
        assert _flag(f.name) in text
    assert "(default:" in text


def test_hidden_options_are_only_those_that_cannot_apply():
    # Keep HIDDEN honest: everything it hides is a real field, and stylize hides nothing.
    names = {f.name for f in dataclasses.fields(Config)}
    for hidden in HIDDEN.values():
        assert hidden <= names


@pytest.mark.parametrize("command", ["resume", "serve"])
def test_other_commands_have_help(command):
    result = painterly(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "painterly"
    if not script.exists():
        script = shutil.which("painterly")
        if script is None:
            pytest.skip("the painterly console script is not installed in this environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert result.returncode == 0 and "COMMAND" in result.stdout


def test_original_colors_alone_means_luminance():
    parser = build_parser()
    args = parser.parse_args(["stylize", "c.png", "s.png", "--original-colors", "-o", "out.png"])
    assert args.original_colors == "luminance"
    args = parser.parse_args(["stylize", "c.png", "s.png", "--original-colors", "histogram", "-o", "out.png"])
    assert args.original_colors == "histogram"
    assert not hasattr(parser.parse_args(["stylize", "c.png", "s.png", "-o", "out.png"]), "original_colors")


# --- runs ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Runs:
    root: Path
    results: dict[str, subprocess.CompletedProcess[str]]

    def dir(self, name: str) -> Path:
        return self.root / name

    def ok(self, name: str) -> subprocess.CompletedProcess[str]:
        result = self.results[name]
        assert result.returncode == 0, f"{name}: exit {result.returncode}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_weights_file, images) -> Runs:
    root = tmp_path_factory.mktemp("cli-runs")
    common = ["--weights", tiny_weights_file, "--precision", "fp32", "--device", "cpu", "--seed", "0"]
    content, style, style2 = images.content, images.style, images.style2
    fast = [*common, "--size", "48", "--iterations", "4", *TINY_FILE_LAYER_ARGS]
    texture_layers = ["--style-layers", "relu1_1,relu2_1,relu3_1"]
    commands = {
        # The bare form, with the side outputs.
        "bare": [content, style, "-o", "out.png", *fast, "--save-every", "2", "--log", "log.jsonl", "--plot", "plot.png"],
        "tiled": [content, style, "-o", "out.png", *fast, "--tile", "16", "--log", "log.jsonl"],
        "blend": ["stylize", content, style, style2, "--style-blend", "1,3", "--original-colors", "-o", "out.tif", *fast],
        "texture": ["texture", style, "-o", "out.jpg", "-q", *common, "--size", "48", "--iterations", "4", *texture_layers],
        "reconstruct": ["reconstruct", content, "--layer", "relu2_1", "-o", "out.webp", *common, "--size", "48", "--iterations", "4"],
        "demo": ["demo", "-o", "out.bmp", *common, "--size", "64", "--iterations", "4", *TINY_FILE_LAYER_ARGS],
        "histogram": [content, style, "-o", "out.png", *fast, "--style-loss", "histogram", "--average", "0.8", "--log", "log.jsonl"],
        "sliced": ["texture", style, "-o", "out.png", "-q", *common, "--size", "48", "--iterations", "3", *texture_layers, "--style-loss", "sliced"],
    }

    def go(item):
        name, args = item
        cwd = root / name
        cwd.mkdir()
        return name, painterly(*args, cwd=cwd)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(go, commands.items()))
    return Runs(root, results)


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_bare_form_writes_the_image(runs):
    result = runs.ok("bare")
    out = runs.dir("bare") / "out.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (48, 36)
        meta = json.loads(im.info["painterly:config"])
    assert meta["size"] == 48 and meta["seed"] == 0 and meta["iterations"] == 4
    assert "wrote" in result.stderr and "seed 0" in result.stderr


def test_plot_draws_the_loss_terms(runs):
    runs.ok("bare")
    from painterly.cli.plot import COLORS, PLOT_SIZE

    with Image.open(runs.dir("bare") / "plot.png") as im:
        assert im.format == "PNG" and im.size == PLOT_SIZE
        pixels = np.asarray(im.convert("RGB"))
    # Not a blank canvas: each term's line is drawn in its colour, in both panels (top and bottom half).
    for term in ("total", "content", "style", "tv"):
        hits = np.all(pixels == COLORS[term], axis=-1)
        top, bottom = hits[: PLOT_SIZE[1] // 2].sum(), hits[PLOT_SIZE[1] // 2 :].sum()
        assert top > 20 and bottom > 20, (term, top, bottom)


def test_plain_progress_lines_count_work_and_show_an_eta(runs):
    # stderr is a pipe: plain lines, not a tqdm bar (the rate itself: tests/cli/test_progress_lines.py).
    lines = [line for line in runs.ok("bare").stderr.splitlines() if line.startswith("[")]
    assert lines and all("it/s ETA " in line and "%" in line for line in lines)
    assert lines[-1].startswith("[4/4] 100%")


def test_tile_gives_the_untiled_run(runs):
    """`--tile 16`: the same losses and image as the untiled run (float32 round-off apart)."""
    runs.ok("tiled")
    logs = [[json.loads(line)["total"] for line in (runs.dir(n) / "log.jsonl").read_text().splitlines()] for n in ("bare", "tiled")]
    assert len(logs[1]) == 4 and logs[1] == pytest.approx(logs[0], rel=1e-3)
    diff = np.abs(_load(runs.dir("tiled") / "out.png").astype(int) - _load(runs.dir("bare") / "out.png").astype(int))
    assert diff.max() <= 2


def test_bare_form_is_the_stylize_command(monkeypatch):
    # In-process (the subprocess runs above show both spellings work): `painterly C S -o OUT`
    # parses exactly as `painterly stylize C S -o OUT`.
    import painterly.cli.commands as commands
    from painterly.cli import main

    seen = []
    monkeypatch.setattr(commands, "run_command", lambda args: seen.append(vars(args)) or 0)
    argv = ["c.png", "s1.png", "s2.png", "-o", "out.png", "--size", "64", "--original-colors"]
    assert main(argv) == 0
    assert main(["stylize", *argv]) == 0
    assert seen[0] == seen[1]
    assert seen[0]["command"] == "stylize" and seen[0]["styles"] == ["s1.png", "s2.png"]


def test_save_every_writes_numbered_images(runs):
    runs.ok("bare")
    names = sorted(p.name for p in runs.dir("bare").iterdir())
    assert names == ["log.jsonl", "out.png", "out_0002.png", "plot.png"]
    with Image.open(runs.dir("bare") / "out_0002.png") as im:
        assert im.size == (48, 36)
    # The intermediate differs from the final image: the run went on.
    assert not np.array_equal(_load(runs.dir("bare") / "out_0002.png"), _load(runs.dir("bare") / "out.png"))
    assert sorted(p.name for p in runs.dir("blend").iterdir()) == ["out.tif"]  # nothing unasked for


def test_log_is_jsonl_with_every_loss_and_the_total_falls(runs):
    runs.ok("bare")
    records = [json.loads(line) for line in (runs.dir("bare") / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert {"iteration", "seconds", "total", "content", "style", "tv"} <= set(r)
        assert r["total"] == pytest.approx(r["content"] + r["style"] + r["tv"], rel=1e-5)
        assert (r["width"], r["height"]) == (48, 36)
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds)
    assert records[-1]["total"] < records[0]["total"]


def test_two_styles_blend_and_original_colors_luminance(runs, images):
    runs.ok("blend")
    out = runs.dir("blend") / "out.tif"
    with Image.open(out) as im:
        assert im.format == "TIFF" and im.size == (48, 36)
    result = torch.from_numpy(_load(out).astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
    content = torch.nn.functional.interpolate(images.content_t, size=(36, 48), mode="bilinear", align_corners=False)
    iq_result, iq_content = color.rgb_to_yiq(result)[:, 1:], color.rgb_to_yiq(content)[:, 1:]
    # Luminance-only transfer (what a bare --original-colors means): the content's chroma is kept.
    assert (iq_result - iq_content).abs().mean().item() < 0.03


def test_texture_command(runs):
    runs.ok("texture")
    with Image.open(runs.dir("texture") / "out.jpg") as im:
        assert im.format == "JPEG" and im.size == (48, 48)


def test_reconstruct_command(runs):
    runs.ok("reconstruct")
    with Image.open(runs.dir("reconstruct") / "out.webp") as im:
        assert im.format == "WEBP" and im.size == (48, 36)


def test_demo_command(runs):
    runs.ok("demo")
    with Image.open(runs.dir("demo") / "out.bmp") as im:
        # The built-in cat photo is 451x300.
        assert im.format == "BMP" and im.size == (64, 43)


def test_demo_runs_at_the_photos_own_size_and_ends_with_what_next(tmp_path, tiny_weights_file):
    # Its defaults (config.MODE_DEFAULTS["demo"]): the built-in photo's own size, a short budget; no
    # note about upscaling our own image. Two iterations here (the budget is benchmarks/demo_budget.py's).
    demo = Config.for_mode("demo")
    assert demo.size == 451 and demo.iterations < Config().iterations
    result = painterly(
        "demo", "-o", "shown.png", "--weights", tiny_weights_file, "--precision", "fp32", "--device", "cpu",
        "--iterations", "2", *TINY_FILE_LAYER_ARGS, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "shown.png") as im:
        assert im.size == (451, 300)
    assert "upscaled" not in result.stderr and "note:" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"the demo image is {(tmp_path / 'shown.png').resolve()}" in last
    assert "painterly YOUR_PHOTO.jpg " in last and "demo_style.jpg -o out.png" in last


def test_top_level_help_shows_two_examples():
    text = build_parser().format_help()
    examples = text.split("examples:", 1)[1].split("\n\n", 1)[0].strip().splitlines()
    assert len(examples) == 2 and examples[0].split()[:2] == ["painterly", "demo"]
    assert examples[1].split()[:5] == ["painterly", "photo.jpg", "starry_night.jpg", "-o", "out.png"]


def test_stylize_help_groups_its_options():
    result = painterly("stylize", "--help")
    titles = [line[:-1] for line in result.stdout.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert titles[-7:] == ["inputs and outputs", "strength", "layers and losses", "optimiser", "multi-scale", "performance", "safety"]
    # A help that says its default in words is not followed by "(default: none)".
    text = " ".join(result.stdout.split())
    assert "default: equal --region" in text and "default: 1 each --weights" in text
    assert "(default: none)" in text and "default: equal (default" not in text


def test_every_output_format_by_extension(runs):
    formats = {}
    for name in runs.results:
        runs.ok(name)
        for path in runs.dir(name).glob("out.*"):
            with Image.open(path) as im:
                formats[path.suffix] = im.format
    assert formats == {".png": "PNG", ".tif": "TIFF", ".jpg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def test_quiet_run_prints_nothing(runs):
    result = runs.ok("texture")  # run with -q
    assert result.stderr == "" and result.stdout == ""


def test_style_loss_and_average_options(runs):
    runs.ok("histogram")
    records = [json.loads(line) for line in (runs.dir("histogram") / "log.jsonl").read_text().splitlines()]
    for r in records:
        # The histogram term is reported beside the Gram term and counted in the total.
        assert r["histogram"] > 0 and r["style"] > 0
        assert r["total"] == pytest.approx(r["content"] + r["style"] + r["tv"] + r["histogram"], rel=1e-5)
    with Image.open(runs.dir("histogram") / "out.png") as im:
        meta = json.loads(im.info["painterly:config"])
    assert meta["style_loss"] == "histogram" and meta["average"] == 0.8
    runs.ok("sliced")
    with Image.open(runs.dir("sliced") / "out.png") as im:
        assert im.size == (48, 48) and json.loads(im.info["painterly:config"])["style_loss"] == "sliced"


def test_style_loss_help_and_bad_value():
    result = painterly("stylize", "--help")
    assert "--style-loss {gram,w2,sliced,histogram}" in result.stdout and "--average DECAY" in result.stdout
    bad = painterly("c.png", "s.png", "--style-loss", "l2")
    assert bad.returncode == 2 and "--style-loss" in bad.stderr and "Traceback" not in bad.stderr
