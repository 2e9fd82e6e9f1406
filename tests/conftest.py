"""Shared fixtures of the core test suite.

Everything here is small and synthetic so that the default suite stays fast on a 2-core CPU:

* ``tiny_state`` / ``tiny_encoder``: a narrow, random "VGG-shaped" network (encoder.random_state()),
  a hundred times cheaper than VGG19, for the engine, API and loss-machinery tests;
* ``tiny_weights_file``: a weights file the command line can load (``--weights PATH``), so that the
  CLI tests run real subprocesses without the real network (see the fixture for why it is VGG19-wide
  but only three convolutions deep);
* ``images``: content/style PNGs made from gradients, shapes and stripes;
* ``PAINTERLY_CACHE_DIR`` points at a session temporary directory, so no test reads or writes the
  user's cache (the real-weights tests decode the caffe weights there once).

Nothing here changes global state beyond its scope: the environment variable is restored at the end
of the session, and ``single_thread`` / ``torch_threads`` restore torch's thread count after the test
or block that asked for one thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.config import Config
from painterly.encoder import VGG19Encoder, random_state
from painterly.engine import StyleTransfer
from painterly.layers import CONV_LAYERS, layer

# Layers that the CLI tests read: the tiny weights file stops at conv3_1.
TINY_FILE_DEEPEST_CONV = "conv3_1"
TINY_FILE_LAYER_ARGS = ("--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1,relu3_1")


# --- the fast default selection ---------------------------------------------------------------------

# `pytest` alone runs what a developer needs while working (well under a minute on 2 cores); the whole
# suite (`pytest -m ""`, which scripts/test.sh and CI run) adds these: real processes run end to end,
# the real weights, a real browser, load, crash and disk-full tests.
SLOW_MODULES = frozenset(
    {
        "test_signals_resume.py",
        "test_allocator.py",
        "test_disk_full.py",
        "test_cli.py",
        "test_real_weights.py",
        "test_web_browser.py",
        "test_web_load.py",
        "test_web_trust.py",
        "test_weights_cache.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES or item.get_closest_marker("real_weights") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def painterly_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterable[Path]:
    """A session-wide, initially empty weight cache (the user's own cache is never touched)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("painterly-cache")
    mp.setenv("PAINTERLY_CACHE_DIR", str(path))
    yield path
    mp.undo()


# --- networks ------------------------------------------------------------------------------------


@pytest.fixture
def tiny_state() -> dict[str, torch.Tensor]:
    """A fresh narrow random state dict (all 16 convolutions, widths 8-32)."""
    return random_state()


@pytest.fixture
def tiny_encoder() -> Callable[..., VGG19Encoder]:
    """Factory: ``tiny_encoder(layers, pooling="max", preprocessing="caffe", seed=0)``."""

    def make(layers: Iterable[str], pooling: str = "max", preprocessing: str = "caffe", seed: int = 0) -> VGG19Encoder:
        return VGG19Encoder(random_state(seed=seed), preprocessing, layers, pooling)

    return make


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smooth_pull(target: torch.Tensor) -> Callable:
    """An L-BFGS objective ``point -> (loss, gradient, aux)`` (loss and aux on the device): the squared
    distance to ``target`` plus a smoothness term along the width. A ``target`` partly outside [0, 1]
    makes a box bind."""

    def fn(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = point.detach().requires_grad_(True)
        with torch.enable_grad():
            f = ((x - target) ** 2).sum() + (x[..., 1:] - x[..., :-1]).square().sum()
            (g,) = torch.autograd.grad(f, x)
        return f.detach(), g, f.detach().reshape(1)

    return fn


def make_tiny_config(mode: str = "stylize", **options) -> Config:
    """A config for fast engine tests: 32 px, single scale, fp32 on the CPU, seeded."""
    base = dict(size=32, iterations=4, multiscale=False, seed=0, precision="fp32", device="cpu")
    base.update(options)
    return Config.for_mode(mode, **base)


def make_tiny_transfer(config: Config, seed: int = 0) -> StyleTransfer:
    """A StyleTransfer over a tiny random encoder that outputs the layers ``config`` needs."""
    encoder = VGG19Encoder(random_state(seed=seed), "caffe", config.layers_needed or ("relu1_1",), config.pooling)
    return StyleTransfer(config, encoder=encoder)


@pytest.fixture
def tiny_config() -> Callable[..., Config]:
    """Factory: ``tiny_config(mode="stylize", **options)`` (see :func:`make_tiny_config`)."""
    return make_tiny_config


@pytest.fixture
def tiny_transfer() -> Callable[..., StyleTransfer]:
    """Factory: ``tiny_transfer(config, seed=0)`` (see :func:`make_tiny_transfer`)."""
    return make_tiny_transfer


@pytest.fixture(scope="session")
def tiny_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``.safetensors`` file for ``--weights`` in CLI subprocesses.

    The weight loader checks every tensor against VGG19's real shapes (a file is either VGG19 or an
    error), so the narrow ``random_state()`` network cannot be saved as a file. A *prefix* of VGG19 is
    allowed, though: this file holds random full-width conv1_1..conv3_1 (0.55 M parameters, 2 MB), and
    the CLI tests restrict their layers to that depth (``TINY_FILE_LAYER_ARGS``).
    """
    from painterly.weights import Weights, load_weights, save_weights

    last = layer(TINY_FILE_DEEPEST_CONV).index
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for lay in CONV_LAYERS:
        if lay.index > last:
            break
        std = (2.0 / (lay.in_channels * 9)) ** 0.5
        state[f"{lay.name}.weight"] = torch.randn(lay.channels, lay.in_channels, 3, 3, generator=gen) * std
        state[f"{lay.name}.bias"] = torch.randn(lay.channels, generator=gen) * 0.01
    path = tmp_path_factory.mktemp("weights") / "tiny-vgg19.safetensors"
    save_weights(Weights(state, "caffe", "tiny"), path)
    assert load_weights(str(path)).convs[-1] == TINY_FILE_DEEPEST_CONV
    return path


# --- images ---------------------------------------------------------------------------------------


def _content_array(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour gradient with a disc and a rectangle: edges, flat areas and colour."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 9.0)], axis=-1)
    disc = (x - 0.35 * w) ** 2 + (y - 0.5 * h) ** 2 < (0.22 * h) ** 2
    img[disc] = (0.9, 0.2, 0.15)
    rect = (x > 0.6 * w) & (x < 0.85 * w) & (y > 0.2 * h) & (y < 0.7 * h)
    img[rect] = (0.1, 0.3, 0.8)
    return img


def _stripes_array(size: int = 48, period: float = 6.0, angle: float = 0.6, colors=((0.95, 0.8, 0.1), (0.1, 0.1, 0.4))) -> np.ndarray:
    """Diagonal two-colour stripes with a little wobble: a strong, simple texture."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (x * np.cos(angle) + y * np.sin(angle) + 1.5 * np.sin(y / 5.0)) * (2 * np.pi / period)
    t = (0.5 + 0.5 * np.sin(phase))[..., None]
    a, b = np.array(colors[0], np.float32), np.array(colors[1], np.float32)
    return t * a + (1 - t) * b


def _checks_array(size: int = 48, cell: int = 8) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    on = ((x // cell + y // cell) % 2).astype(np.float32)[..., None]
    return on * np.array((0.9, 0.2, 0.6), np.float32) + (1 - on) * np.array((0.1, 0.7, 0.3), np.float32)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0).float()


def _save_png(arr: np.ndarray, path: Path) -> Path:
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@dataclass(frozen=True)
class Images:
    """Paths of small synthetic PNGs, and the same pictures as (1, 3, H, W) tensors in [0, 1]."""

    content: Path  # 64x48 (W x H): gradient, disc, rectangle
    style: Path  # 48x48 stripes
    style2: Path  # 48x48 checks
    content_t: torch.Tensor
    style_t: torch.Tensor
    style2_t: torch.Tensor


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    d = tmp_path_factory.mktemp("images")
    arrays = {"content": _content_array(), "style": _stripes_array(), "style2": _checks_array()}
    paths = {k: _save_png(a, d / f"{k}.png") for k, a in arrays.items()}
    # The tensors are what the PNGs decode to (8-bit), so file- and tensor-based runs agree.
    tensors = {k: _to_tensor(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0) for k, p in paths.items()}
    return Images(
        paths["content"], paths["style"], paths["style2"], tensors["content"], tensors["style"], tensors["style2"]
    )



@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def single_thread() -> Iterable[None]:
    """One torch thread for the duration of a test (restored afterwards; nothing leaks).

    The engine tests work on 32 px images through an 8-channel network, and the real-weights tests on
    64 px: on a busy 2-core machine OpenMP's spinning threads made such runs 10× slower than a single
    thread, and there is little to share between threads at these sizes anyway. Module-scoped
    fixtures run before this one: they use :func:`torch_threads` themselves.
    """
    with torch_threads(1):
        yield


# --- a network whose cost the test knows ------------------------------------------------------------


class PixelCostEncoder(VGG19Encoder):
    """The tiny random encoder, plus a real cost proportional to the pixels of each evaluation.

    Every forward pass that records gradients (an objective evaluation, not a target computation)
    sleeps ``seconds_per_megapixel × H·W / 10⁶`` before computing: a cost model whose truth the
    progress tests know (each level's seconds per iteration), and which the tiny network's own few
    milliseconds hardly blur.
    """

    def __init__(self, layers: Iterable[str], seconds_per_megapixel: float, seed: int = 0) -> None:
        super().__init__(random_state(seed=seed), "caffe", layers, "max")
        self.seconds_per_megapixel = seconds_per_megapixel

    def seconds(self, hw: tuple[int, int]) -> float:
        """What one evaluation at ``hw`` costs by this model."""
        return self.seconds_per_megapixel * hw[0] * hw[1] / 1e6

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if torch.is_grad_enabled():
            import time

            time.sleep(self.seconds(tuple(image.shape[-2:])))
        return super().forward(image)


def pixel_cost_run(seconds_per_megapixel: float = 5.0, level_iterations: tuple[int, ...] = (30, 15, 15)):
    """A three-level run (32, 64, 128 px squares; Adam: one evaluation per iteration) over a
    :class:`PixelCostEncoder`; returns ``(run, encoder)``."""
    config = Config(
        size=128, min_size=32, level_iterations=level_iterations, optimizer="adam", seed=0, precision="fp32",
        device="cpu", content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"),
    )
    encoder = PixelCostEncoder(config.layers_needed, seconds_per_megapixel)
    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 128, 128, generator=gen), torch.rand(1, 3, 128, 128, generator=gen)
    return StyleTransfer(config, encoder=encoder).start(content, [style]), encoder


def clip_with_audio(path: Path, frames: Iterable[torch.Tensor], fps: int, audio_seconds: float) -> Path:
    """Write an H.264 clip of ``frames`` ((1, 3, H, W) in [0, 1]) at ``fps``, with a mono AAC tone of
    ``audio_seconds`` (22.05 kHz) beside it, as a phone's clip has."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        audio = out.add_stream("aac", rate=22050)
        for i, frame in enumerate(frames):
            arr = (frame[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if i == 0:  # a new stream is 640x480 until told (the frames were scaled up to it)
                video.width, video.height, video.pix_fmt = arr.shape[1], arr.shape[0], "yuv420p"
            for p in video.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(p)
        for p in video.encode():
            out.mux(p)
        samples = (0.3 * np.sin(np.arange(round(22050 * audio_seconds)) / 8)).astype(np.float32)[None, :]
        chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        chunk.sample_rate = 22050
        for p in [*audio.encode(chunk), *audio.encode()]:
            out.mux(p)
    return path


def clip_with_times(path: Path, frames: Iterable[torch.Tensor], times: Iterable[float]) -> Path:
    """Write an H.264 clip whose ``frames`` are shown at ``times`` (seconds, to the millisecond), as a
    phone's variable-frame-rate clip is."""
    import av
    from fractions import Fraction

    clock = Fraction(1, 1000)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        for i, (t, frame) in enumerate(zip(times, frames)):
            arr = (frame[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if i == 0:  # a new stream is 640x480 until told
                stream.width, stream.height, stream.pix_fmt = arr.shape[1], arr.shape[0], "yuv420p"
                stream.codec_context.time_base = clock
            vf = av.VideoFrame.from_ndarray(arr, format="rgb24")
            vf.pts, vf.time_base = round(t / clock), clock
            for p in stream.encode(vf):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return path
