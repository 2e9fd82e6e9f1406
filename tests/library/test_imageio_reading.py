"""painterly.imageio.reading: a FIFO is refused without blocking, and a big image is decoded small
when the caller needs it small (``max_side``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.errors import ConfigError, ImageError
from painterly.imageio import SHRINK_MARGIN, load_image, open_image


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour with noise on top: something lossy codecs and filters both have work with."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    arr = np.stack(
        [x / width, y / height, 0.5 + 0.4 * np.sin(x / 37.0) * np.cos(y / 23.0)], axis=-1
    ) * 255.0
    arr += np.random.default_rng(seed).normal(0.0, 8.0, arr.shape).astype(np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------------
# Only regular files are read


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_at_once_in_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    # A real process: if opening the FIFO blocked (nobody ever writes to it), the timeout says so
    # instead of hanging the test run.
    code = (
        "import sys\n"
        "from painterly.errors import ImageError\n"
        "from painterly.imageio import load_image\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{fifo}: not a regular file\n"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_swapped_in_while_reading_never_hangs(tmp_path: Path) -> None:
    # A thread keeps renaming a FIFO and a PNG over each other at the name being read. Checking by
    # name and then opening by name would sooner or later open the FIFO and block for good; opening
    # first and checking the descriptor cannot. (The race is not forced: this catches a regression
    # most of the time, not every time; the new code never hangs.)
    code = """
import os, sys, threading, time
from PIL import Image
from painterly.errors import ImageError
from painterly.imageio import open_image
folder = sys.argv[1]
name, png, fifo = (os.path.join(folder, n) for n in ("input.png", "a.png", "b.fifo"))
Image.new("RGB", (4, 4)).save(png)
os.mkfifo(fifo)
os.link(png, name)
stop = False
def swap():
    while not stop:
        for src in (fifo, png):
            tmp = src + ".link"
            os.link(src, tmp)
            os.rename(tmp, name)  # atomic: the name always exists, as one or the other
swapper = threading.Thread(target=swap, daemon=True)
swapper.start()
seen = set()
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    try:
        open_image(name)
        seen.add("image")
    except ImageError as exc:
        seen.add(str(exc).split(": ", 1)[1])
assert swapper.is_alive()
stop = True
print(sorted(seen))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = ast.literal_eval(done.stdout)
    assert set(seen) <= {"image", "not a regular file"}
    assert "not a regular file" in seen


def test_devices_are_refused(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(ImageError, match=r"^/dev/zero: not a regular file$"):
        open_image("/dev/zero")


def test_a_symlink_to_an_image_is_read(tmp_path: Path) -> None:
    real = tmp_path / "real.png"
    photo_like(12, 8).save(real)
    link = tmp_path / "link.png"
    link.symlink_to(real)
    assert torch.equal(load_image(link), load_image(real))


# --------------------------------------------------------------------------------------------------
# max_side: decode and reduce before the floats


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    small = photo_like(600, 400)
    small.resize((6000, 4000), Image.Resampling.BILINEAR).save(path, quality=85)
    return path


def test_big_jpeg_is_decoded_small(big_jpeg: Path) -> None:
    image = load_image(big_jpeg, max_side=64)
    height, width = image.shape[-2:]
    keep = SHRINK_MARGIN * 64
    assert keep <= width <= 2 * keep  # never below what the caller needs, far below 6000
    assert abs(width / height - 1.5) < 0.02
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    with Image.open(big_jpeg) as img:
        assert img.size == (6000, 4000)  # the file really is that big
    # A JPEG is shrunk by the decoder: at 1/8 scale it is 750 px, then reduced by 5 in 8 bits.
    # For 400 px the image must keep 800: the decoder's 1/4 scale (1500 px) and no reduction after.
    assert open_image(big_jpeg, max_side=400).size == (1500, 1000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_max_side_changes_the_result_only_a_little(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"photo.{fmt.lower()}"
    photo_like(1200, 800).save(path, format=fmt)
    full = load_image(path, size=64)
    reduced = load_image(path, size=64, max_side=64)
    assert reduced.shape == full.shape == (1, 3, 43, 64)
    diff = (full - reduced).abs()
    assert diff.max() < 0.02 and diff.mean() < 0.003  # measured: 0.005/0.001 (JPEG), 0.010/0.0013 (PNG)
    assert torch.equal(load_image(path, size=64, max_side=600), full)  # nothing to gain: untouched


def test_max_side_keeps_what_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    photo_like(1000, 300).save(path)
    for max_side in (1, 7, 50, 249, 250, 251, 499, 500, 2000):
        width = open_image(path, max_side=max_side).size[0]
        assert min(1000, SHRINK_MARGIN * max_side) <= width <= max(1000 // 2, 2 * SHRINK_MARGIN * max_side)
    pil = photo_like(1000, 300)
    assert open_image(pil, max_side=50).size == (100, 30)  # a PIL image passed in: factor 10
    assert pil.size == (1000, 300)  # and the caller's image is left alone
    with pytest.raises(ConfigError):
        load_image(path, max_side=0)


def test_max_side_keeps_16_bit_values(tmp_path: Path) -> None:
    path = tmp_path / "gray16.png"
    arr = np.full((300, 400), 1000, dtype=np.uint16)
    arr[:, 200:] = 60000
    Image.fromarray(arr).save(path)
    image = load_image(path, max_side=20)
    assert image.shape == (1, 3, 30, 40)  # keep 40: factor 10
    # Box averages of equal 16-bit samples are those samples: no 8-bit rounding on the way.
    assert image[..., :20].unique().tolist() == [pytest.approx(1000 / 65535)]
    assert image[..., 20:].unique().tolist() == [pytest.approx(60000 / 65535)]


def test_max_side_leaves_the_bomb_guard_alone(tmp_path: Path, big_jpeg: Path) -> None:
    with pytest.raises(ImageError, match=r"6000x4000 pixels exceeds the limit of 1000000"):
        load_image(big_jpeg, max_side=64, max_pixels=1_000_000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_max_side_keeps_the_exif_orientation(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"rotated.{fmt.lower()}"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90° clockwise)
    photo_like(900, 300).save(path, format=fmt, exif=exif.tobytes())
    assert load_image(path).shape == (1, 3, 900, 300)
    small = load_image(path, max_side=40)
    assert small.shape[-2] > 3 * small.shape[-1] - 2 and 80 <= small.shape[-2] <= 160
    full = load_image(path, size=40)
    assert (load_image(path, size=40, max_side=40) - full).abs().mean() < 0.01


def test_max_side_with_alpha_and_palette(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (800, 400), (255, 0, 0, 0))  # fully transparent: white once composited
    rgba.paste((0, 0, 255, 255), (0, 0, 400, 400))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    image = load_image(path, max_side=50)
    assert image.shape == (1, 3, 50, 100)  # factor 8, after compositing
    assert image[0, :, :, :48].mean(dim=(1, 2)).tolist() == [0.0, 0.0, 1.0]
    assert image[0, :, :, 52:].mean(dim=(1, 2)).tolist() == [1.0, 1.0, 1.0]
    palette = tmp_path / "palette.gif"
    rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE).save(palette)
    assert load_image(palette, max_side=50).shape == (1, 3, 50, 100)
