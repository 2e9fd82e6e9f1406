"""Tests for painterly.imageio: every format and mode in, every bad file refused, atomic writes out.

All images are made here, tiny, in tmp_path; nothing touches the network or the real weights.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from painterly.errors import ConfigError, ImageError, PainterlyWarning, TooManyPixels
from painterly.imageio import (
    DEFAULT_MAX_PIXELS,
    INPUT_EXTENSIONS,
    OUTPUT_FORMATS,
    image_to_tensor,
    load_image,
    open_image,
    output_format,
    resize_longest,
    resize_to,
    same_file,
    save_image,
    tensor_to_pil,
)

# --------------------------------------------------------------------------------------------------
# Helpers


def noise_rgb(width: int = 24, height: int = 16, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def smooth_rgb(width: int = 32, height: int = 24) -> Image.Image:
    """A gradient: lossy codecs reproduce it closely, unlike noise."""
    y, x = np.mgrid[0:height, 0:width]
    red = x * 255 // max(width - 1, 1)
    green = y * 255 // max(height - 1, 1)
    arr = np.stack([red, green, np.full_like(x, 128)], -1)
    return Image.fromarray(arr.astype(np.uint8))


def as_array(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] → (H, W, 3) float64 in [0, 255]."""
    return t[0].permute(1, 2, 0).double().numpy() * 255.0


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG built chunk by chunk, so the header can declare anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


needs_permissions = pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, as non-root"
)


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------------
# Constants


def test_extension_tables() -> None:
    for ext in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        assert ext in OUTPUT_FORMATS and ext in INPUT_EXTENSIONS
    assert OUTPUT_FORMATS[".jpg"] == "JPEG" and OUTPUT_FORMATS[".tif"] == "TIFF"
    assert INPUT_EXTENSIONS[".gif"] == "GIF"
    assert DEFAULT_MAX_PIXELS == 100_000_000
    with pytest.raises(TypeError):
        OUTPUT_FORMATS[".gif"] = "GIF"  # type: ignore[index]


# --------------------------------------------------------------------------------------------------
# Formats


LOSSLESS = {".png", ".bmp", ".tif", ".tiff"}


@pytest.mark.parametrize("ext", sorted(OUTPUT_FORMATS))
def test_every_format_round_trips(tmp_path: Path, ext: str) -> None:
    source = smooth_rgb()
    path = save_image(source, tmp_path / f"img{ext}")
    assert path == tmp_path / f"img{ext}"
    with Image.open(path) as written:
        assert written.format == OUTPUT_FORMATS[ext]

    t = load_image(path)
    assert t.shape == (1, 3, 24, 32) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    diff = np.abs(as_array(t) - np.asarray(source, dtype=np.float64))
    if ext in LOSSLESS:
        assert diff.max() < 1e-3
    else:
        assert diff.mean() < 4.0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_reads_files_written_by_pillow(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"pillow.{fmt.lower()}"
    smooth_rgb().save(path, format=fmt)
    assert load_image(path).shape == (1, 3, 24, 32)


def test_content_not_name_decides_the_format(tmp_path: Path) -> None:
    path = tmp_path / "actually_a_png.jpg"
    noise_rgb().save(path, format="PNG")
    assert np.allclose(as_array(load_image(path)), np.asarray(noise_rgb()), atol=1e-3)


def test_sources_bytes_stream_and_pil(tmp_path: Path) -> None:
    buf = io.BytesIO()
    noise_rgb().save(buf, format="PNG")
    data = buf.getvalue()
    expected = load_image(data)
    assert torch.equal(load_image(io.BytesIO(data)), expected)

    class OneWay(io.RawIOBase):  # a pipe-like stream that cannot seek
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            chunk = self._inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    assert torch.equal(load_image(OneWay()), expected)

    # A stream is read from where the caller left it.
    prefixed = io.BytesIO(b"junk" + data)
    prefixed.seek(4)
    assert torch.equal(load_image(prefixed), expected)

    pil = Image.open(io.BytesIO(data))
    out = open_image(pil)
    assert out is not pil and out.mode == "RGB"
    assert torch.equal(image_to_tensor(out), expected)


def test_plain_image_emits_no_warnings(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    noise_rgb().save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_image(path)
    assert caught == []


# --------------------------------------------------------------------------------------------------
# Modes


def _pixel(t: torch.Tensor, y: int = 0, x: int = 0) -> np.ndarray:
    return (t[0, :, y, x].double() * 255).numpy()


def test_mode_1_and_l(tmp_path: Path) -> None:
    bits = Image.new("1", (4, 3), 0)
    bits.putpixel((1, 0), 1)
    bits.save(tmp_path / "bits.png")
    t = load_image(tmp_path / "bits.png")
    assert np.allclose(_pixel(t, 0, 0), 0) and np.allclose(_pixel(t, 0, 1), 255)

    Image.new("L", (4, 3), 100).save(tmp_path / "gray.png")
    t = load_image(tmp_path / "gray.png")
    assert t.shape == (1, 3, 3, 4)
    assert np.allclose(_pixel(t), 100, atol=1e-3)


def test_alpha_composited_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    rgba.putpixel((3, 0), (200, 10, 20, 255))
    rgba.save(tmp_path / "rgba.png")
    img = open_image(tmp_path / "rgba.png")
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)  # fully transparent → white, not black
    assert img.getpixel((1, 0)) == (0, 0, 0)
    assert all(abs(c - 127) <= 1 for c in img.getpixel((2, 0)))
    assert img.getpixel((3, 0)) == (200, 10, 20)

    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (50, 255))
    la.save(tmp_path / "la.png")
    img = open_image(tmp_path / "la.png")
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (50, 50, 50)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (3, 1), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    img = open_image(tmp_path / "p.png")
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (10, 20, 30) and img.getpixel((1, 0)) == (200, 100, 50)

    pal.save(tmp_path / "p_trns.png", transparency=0)
    img = open_image(tmp_path / "p_trns.png")
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (200, 100, 50)

    pal.save(tmp_path / "p_trns.gif", transparency=0)
    assert open_image(tmp_path / "p_trns.gif").getpixel((0, 0)) == (255, 255, 255)

    pa = Image.new("PA", (2, 1))
    pa.putpalette([10, 20, 30] + [0] * 765)
    pa.putpixel((0, 0), (0, 0))
    pa.putpixel((1, 0), (0, 255))
    img = open_image(pa)
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (10, 20, 30)


def test_rgb_with_transparent_colour(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (2, 1), (1, 2, 3))
    rgb.putpixel((1, 0), (9, 9, 9))
    rgb.save(tmp_path / "trns.png", transparency=(1, 2, 3))
    img = open_image(tmp_path / "trns.png")
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (9, 9, 9)


@pytest.mark.parametrize("ext", [".tif", ".jpg"])
def test_cmyk(tmp_path: Path, ext: str) -> None:
    cmyk = Image.new("CMYK", (16, 8), (0, 0, 0, 0))
    for x in range(8, 16):
        for y in range(8):
            cmyk.putpixel((x, y), (255, 0, 0, 0))  # pure cyan
    cmyk.save(tmp_path / f"cmyk{ext}")
    img = open_image(tmp_path / f"cmyk{ext}")
    assert img.mode == "RGB"
    tol = 0 if ext == ".tif" else 12
    assert all(abs(a - b) <= tol for a, b in zip(img.getpixel((2, 4)), (255, 255, 255)))
    assert all(abs(a - b) <= tol for a, b in zip(img.getpixel((13, 4)), (0, 255, 255)))


def test_16_bit_png_keeps_low_byte(tmp_path: Path) -> None:
    # Values that differ only in the low byte: truncating to 8 bits would make them all equal.
    values = np.array([[0x1200, 0x1201, 0x1202, 0x12FF, 0xFFFF, 0]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    img = open_image(tmp_path / "deep.png")
    assert img.mode.startswith("I;16")
    t = load_image(tmp_path / "deep.png")
    row = t[0, 0, 0].double().numpy()
    assert len(set(np.round(row * 65535).astype(int))) == 6
    assert np.allclose(row * 65535, values[0], atol=0.01)
    assert torch.equal(t[0, 0], t[0, 1]) and torch.equal(t[0, 0], t[0, 2])


def test_16_bit_big_endian_and_32_bit_modes(tmp_path: Path) -> None:
    big = Image.frombytes("I;16B", (2, 1), struct.pack(">2H", 0x0101, 0xFFFF))
    row = image_to_tensor(big)[0, 0, 0].double().numpy() * 65535
    assert np.allclose(row, [0x0101, 0xFFFF], atol=0.01)

    ints = Image.fromarray(np.array([[0, 1000, 40000, 65535]], dtype=np.int32))
    assert ints.mode == "I"
    ints.save(tmp_path / "ints.tif")
    row = load_image(tmp_path / "ints.tif")[0, 0, 0].double().numpy() * 65535
    assert np.allclose(row, [0, 1000, 40000, 65535], atol=0.05)

    floats = Image.fromarray(np.array([[0.0, 0.25, 1.0]], dtype=np.float32))
    floats.save(tmp_path / "floats.tif")
    row = load_image(tmp_path / "floats.tif")[0, 0, 0].numpy()
    assert np.allclose(row, [0.0, 0.25, 1.0])

    # Float data on a 0-255 scale, with a NaN and negatives, is still mapped into [0, 1].
    odd = Image.fromarray(np.array([[np.nan, -5.0, 51.0, 255.0]], dtype=np.float32))
    row = image_to_tensor(odd)[0, 0, 0].numpy()
    assert np.allclose(row, [0.0, 0.0, 0.2, 1.0])


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces(mode: str) -> None:
    white = Image.new("RGB", (3, 2), (255, 255, 255)).convert(mode)
    img = open_image(white)
    assert img.mode == "RGB"
    assert all(c >= 250 for c in img.getpixel((1, 1)))


def test_lab_tiff(tmp_path: Path) -> None:
    Image.new("LAB", (3, 2), (255, 128, 128)).save(tmp_path / "lab.tif")
    t = load_image(tmp_path / "lab.tif")
    assert t.shape == (1, 3, 2, 3) and t.min() > 0.97


# --------------------------------------------------------------------------------------------------
# Orientation and animation


def test_exif_orientation_applied(tmp_path: Path) -> None:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    stored.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)

    t = load_image(tmp_path / "rotated.jpg")
    assert t.shape == (1, 3, 40, 20)  # transposed
    top, bottom = _pixel(t, 5, 10), _pixel(t, 35, 10)
    assert top[0] > 200 and top[2] < 60  # the stored left edge is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize(
    "fmt,match",
    [
        ("GIF", "first frame"),
        ("WEBP", "first frame"),
        ("PNG", "first frame"),  # APNG
        ("TIFF", "first page"),
    ],
)
def test_animated_uses_first_frame_with_warning(tmp_path: Path, fmt: str, match: str) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / f"anim.{fmt.lower()}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(
        path, format=fmt, save_all=True, append_images=frames[1:], duration=100, **options
    )

    with pytest.warns(PainterlyWarning, match=match) as record:
        img = open_image(path)
    assert str(path) in str(record[0].message)
    r, g, b = img.getpixel((4, 3))
    assert r > 240 and g < 15 and b < 15


# --------------------------------------------------------------------------------------------------
# Bad inputs


def _truncated(fmt: str):
    def make(path: Path) -> Path:
        buf = io.BytesIO()
        noise_rgb(64, 64).save(buf, format=fmt)
        data = buf.getvalue()
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


def _writes(data: bytes | str):
    def make(path: Path) -> Path:
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    return make


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


_RANDOM = bytes(np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8))
_PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"

# file name → (how to make it, a fragment its error message must contain)
BAD_INPUTS = {
    "missing.png": (lambda path: path, "no such file"),
    "a_directory.png": (_directory, "directory"),
    "empty.png": (_writes(b""), "empty"),
    "cut.jpg": (_truncated("JPEG"), "truncated or corrupt"),
    "cut.png": (_truncated("PNG"), "truncated or corrupt"),
    "starry.jpg": (_writes("just some notes, not pixels\n"), "not an image file (looks like text)"),
    "paper.png": (_writes(_PDF), "PDF"),
    "noise.webp": (_writes(_RANDOM), "not an image"),
    "page.png": (_writes("<!DOCTYPE html><html></html>"), "HTML"),
    "bomb.png": (
        _writes(png_bytes(30000, 30000, 8, 2, b"\x00" * 64)),
        "30000x30000 pixels exceeds the limit of 100000000",
    ),
    "badheader.png": (_writes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "truncated or corrupt"),
}


@pytest.mark.parametrize("filename", sorted(BAD_INPUTS))
def test_bad_inputs_raise_image_error(tmp_path: Path, filename: str) -> None:
    make, fragment = BAD_INPUTS[filename]
    path = make(tmp_path / filename)
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message


def test_name_overrides_label(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^upload\.png: empty file"):
        open_image(b"", name="upload.png")
    with pytest.raises(ImageError, match=r"^upload\.png: not an image file \(looks like text\)"):
        open_image(io.BytesIO(b"hello"), name="upload.png")


def test_max_pixels_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    noise_rgb(20, 10).save(path)
    expected = r"small\.png: 20x10 pixels exceeds the limit of 199 \(raise max_pixels\)"
    with pytest.raises(TooManyPixels, match=expected):  # an ImageError refused for its size (the studio: 413)
        open_image(path, max_pixels=199)
    assert open_image(path, max_pixels=200).size == (20, 10)

    # Between Pillow's warning and error thresholds: our message, and Pillow's warning kept quiet.
    # The IDAT is far too short, so reaching the decoder would be a different error.
    mid = tmp_path / "mid.png"
    mid.write_bytes(png_bytes(12000, 10000, 8, 2, b"\x00" * 64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TooManyPixels, match=r"12000x10000 pixels exceeds the limit of 100000000"):
            open_image(mid)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]

    with pytest.raises(ConfigError):
        open_image(path, max_pixels=0)


def test_pillow_global_limit_untouched(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(30000, 30000, 8, 2, b""))
    with pytest.raises(ImageError):
        open_image(path, max_pixels=10**12)  # passes our check, then the decoder finds no data
    assert Image.MAX_IMAGE_PIXELS == before


@needs_permissions
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    noise_rgb().save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match=r"locked\.png: permission denied"):
            open_image(path)
    finally:
        path.chmod(0o644)


def test_wrong_source_type() -> None:
    with pytest.raises(TypeError):
        open_image(12345)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Resizing


@pytest.mark.parametrize(
    "shape,size,expected",
    [
        ((300, 200), 150, (150, 100)),  # portrait
        ((200, 300), 150, (100, 150)),  # landscape
        ((64, 64), 32, (32, 32)),
        ((20, 30), 90, (60, 90)),  # upscaling keeps aspect too
        ((1000, 3), 10, (10, 1)),  # the short side never reaches 0
        ((101, 150), 100, (67, 100)),  # 67.33 rounds to nearest
    ],
)
def test_resize_longest_keeps_aspect(
    shape: tuple[int, int], size: int, expected: tuple[int, int]
) -> None:
    image = torch.rand(1, 3, *shape)
    out = resize_longest(image, size)
    assert out.shape == (1, 3, *expected)
    assert out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1


def test_resize_antialiases_and_clamps() -> None:
    checker = (torch.arange(64).view(1, 1, 1, 64) + torch.arange(64).view(1, 1, 64, 1)) % 2
    checker = checker.float().expand(1, 3, 64, 64)
    small = resize_to(checker, 8, 8)
    assert small.shape == (1, 3, 8, 8)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.02)  # no aliasing moiré

    step = torch.zeros(1, 3, 4, 8)
    step[..., 4:] = 1.0
    big = resize_to(step, 16, 32)  # bicubic overshoots at a hard edge; the result must not
    assert big.min() >= 0 and big.max() <= 1

    assert resize_to(torch.rand(3, 10, 10, dtype=torch.float64), 5, 7).shape == (3, 5, 7)
    assert resize_to(torch.rand(1, 3, 10, 10, dtype=torch.float64), 5, 7).dtype == torch.float64
    assert resize_to(torch.rand(1, 3, 10, 10).half(), 5, 7).dtype == torch.float16
    with pytest.raises(ConfigError):
        resize_longest(torch.rand(1, 3, 4, 4), 0)


def test_load_image_size(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    noise_rgb(40, 10).save(path)
    t = load_image(path, size=20)
    assert t.shape == (1, 3, 5, 20)
    with pytest.raises(ConfigError):
        load_image(path, size=-1)


# --------------------------------------------------------------------------------------------------
# Tensor → PIL rounding


def test_exact_levels_round_trip() -> None:
    levels = torch.arange(256, dtype=torch.float32) / 255.0
    t = levels.view(1, 1, 1, 256).expand(1, 3, 1, 256)
    out = np.asarray(tensor_to_pil(t))
    assert out.dtype == np.uint8 and out.shape == (1, 256, 3)
    assert (out[0, :, 0] == np.arange(256)).all()


def test_rounds_to_nearest_not_truncates() -> None:
    k = torch.arange(255, dtype=torch.float64)
    below = ((k + 0.4) / 255).view(1, 1, 255).expand(3, 1, 255)
    above = ((k + 0.6) / 255).view(1, 1, 255).expand(3, 1, 255)
    assert (np.asarray(tensor_to_pil(below))[0, :, 0] == np.arange(255)).all()
    assert (np.asarray(tensor_to_pil(above))[0, :, 0] == np.arange(1, 256)).all()

    values = torch.tensor([0.998, 0.999, 0.5, 1.7, -0.3, float("nan"), float("inf"), float("-inf")])
    out = np.asarray(tensor_to_pil(values.view(1, 1, 1, -1).expand(1, 3, 1, -1)))[0, :, 0]
    assert out.tolist() == [254, 255, 128, 255, 0, 0, 255, 0]


def test_tensor_to_pil_inputs() -> None:
    original = torch.full((1, 3, 2, 2), 0.5)
    before = original.clone()
    tensor_to_pil(original)
    assert torch.equal(original, before)  # the caller's tensor is not modified
    assert tensor_to_pil(torch.rand(1, 1, 3, 4)).size == (4, 3)
    assert tensor_to_pil(torch.rand(3, 3, 4).half()).mode == "RGB"
    with pytest.raises(ValueError):
        tensor_to_pil(torch.rand(2, 3, 4, 4))


def test_pil_tensor_round_trip_is_exact() -> None:
    img = noise_rgb()
    assert np.array_equal(np.asarray(tensor_to_pil(image_to_tensor(img))), np.asarray(img))


# --------------------------------------------------------------------------------------------------
# Output format and saving


def test_output_format() -> None:
    assert output_format("a.png") == "PNG"
    assert output_format(Path("dir.x/A.JPG")) == "JPEG"
    assert output_format("b.Jpeg") == "JPEG"
    assert output_format("c.webp") == "WEBP"
    assert output_format("d.BMP") == "BMP"
    assert output_format("e.tif") == output_format("e.tiff") == "TIFF"
    expected = r"^out\.gif: unsupported output format '\.gif'; use one of \.png, \.jpg"
    with pytest.raises(ConfigError, match=expected):
        output_format("out.gif")
    with pytest.raises(ConfigError, match=r"^result: no file extension"):
        output_format("result")


def test_save_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    written = save_image(torch.rand(1, 3, 5, 6), target)
    assert written == target and target.is_file()
    with Image.open(target) as written:
        assert written.size == (6, 5)
    assert no_temp_files(target.parent)
    # Overwriting an existing file also goes through a temp file and leaves none.
    save_image(torch.rand(1, 3, 5, 6), str(target))
    assert no_temp_files(target.parent)
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


def test_save_failure_keeps_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"original content")
    seen: list[str] = []

    def failing_save(self, fp, *args, **kwargs):  # writes half an image, then the disk fills
        seen.extend(p.name for p in tmp_path.iterdir() if p.name != "keep.png")
        fp.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(ImageError, match=r"keep\.png: cannot write: no space left on device"):
        save_image(torch.rand(1, 3, 4, 4), target)
    assert target.read_bytes() == b"original content"
    assert no_temp_files(tmp_path)
    # While writing, the data went to a hidden temp file beside the target.
    assert len(seen) == 1 and seen[0].startswith(".") and seen[0].endswith(".tmp")

    def crashing_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.rand(1, 3, 4, 4), target)
    assert target.read_bytes() == b"original content"
    assert no_temp_files(tmp_path)


def test_save_unwritable_locations(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImageError, match="cannot create directory"):
        save_image(torch.rand(1, 3, 2, 2), blocker / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "dir.png")


@needs_permissions
def test_save_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ImageError, match=r"out\.png: cannot write: permission denied"):
            save_image(torch.rand(1, 3, 2, 2), locked / "out.png")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_save_options_and_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "out.gif")
    with pytest.raises(ConfigError):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "out.jpg", quality=0)
    assert list(tmp_path.iterdir()) == []

    small = save_image(smooth_rgb(), tmp_path / "low.jpg", quality=10).stat().st_size
    large = save_image(smooth_rgb(), tmp_path / "high.jpg", quality=100).stat().st_size
    assert small < large

    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    save_image(rgba, tmp_path / "flat.jpg")
    with Image.open(tmp_path / "flat.jpg") as flat:
        assert flat.mode == "RGB"
        assert min(flat.getpixel((1, 1))) > 250  # transparent → white


def test_png_metadata(tmp_path: Path) -> None:
    meta = {
        "painterly:params": '{"style_weight": 1e6}',
        "Software": "painterly 0.1",
        "note": "café ✓",  # not Latin-1: stored as iTXt
    }
    save_image(torch.rand(1, 3, 3, 3), tmp_path / "meta.png", metadata=meta)
    with Image.open(tmp_path / "meta.png") as written:
        assert written.text == meta
    with pytest.raises(ConfigError):
        save_image(torch.rand(1, 3, 3, 3), tmp_path / "bad.png", metadata={"": "x"})
    # Other formats accept (and ignore) metadata.
    save_image(torch.rand(1, 3, 3, 3), tmp_path / "meta.jpg", metadata=meta)


def test_save_keeps_existing_permissions(tmp_path: Path) -> None:
    target = tmp_path / "perm.png"
    save_image(torch.rand(1, 3, 2, 2), target)
    target.chmod(0o640)
    save_image(torch.rand(1, 3, 2, 2), target)
    assert target.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------------------------------
# same_file


def test_same_file(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    noise_rgb().save(a)
    b = tmp_path / "b.png"
    noise_rgb().save(b)
    assert same_file(a, a)
    assert same_file(a, str(tmp_path / "sub" / ".." / "a.png"))
    assert not same_file(a, b)
    assert same_file(tmp_path / "new.png", tmp_path / "." / "new.png")  # neither exists yet
    assert not same_file(a, tmp_path / "new.png")
    assert not same_file(b"bytes", a)
    if hasattr(os, "symlink"):
        link = tmp_path / "link.png"
        link.symlink_to(a)
        assert same_file(link, a)


# --------------------------------------------------------------------------------------------------
# Property tests

_VALID = io.BytesIO()
noise_rgb(12, 9).save(_VALID, format="PNG")
_VALID_JPEG = io.BytesIO()
noise_rgb(12, 9).save(_VALID_JPEG, format="JPEG")

# Random bytes almost never get past format detection; starting them with a real signature makes
# the parsers behind it do the work.
_MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x10\x00\x00\x00WEBPVP8 ",
    b"P6\n",
]


def _open_or_image_error(data: bytes) -> None:
    try:
        img = open_image(data, max_pixels=1_000_000, name="fuzz.bin")
    except ImageError as exc:
        assert "fuzz.bin" in str(exc) and "\n" not in str(exc)
    else:
        t = image_to_tensor(img)
        assert t.shape[:2] == (1, 3) and 0 <= t.min() and t.max() <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_MAGICS), st.binary(max_size=300))
def test_random_bytes_raise_only_image_error(magic: bytes, tail: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _open_or_image_error(magic + tail)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([_VALID.getvalue(), _VALID_JPEG.getvalue()]),
    st.integers(0, 10_000),
    st.integers(0, 255),
    st.integers(1, 10_000),
)
def test_damaged_images_raise_only_image_error(data: bytes, pos: int, byte: int, keep: int) -> None:
    damaged = bytearray(data)
    damaged[pos % len(damaged)] = byte
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _open_or_image_error(bytes(damaged[: keep % len(damaged) + 1]))


_SAVEABLE = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["1", "L", "P", "RGB"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I;16", "I", "F"],
    "GIF": ["L", "P"],
}
_COMBOS = [(fmt, mode) for fmt, modes in _SAVEABLE.items() for mode in modes]


def _random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 2**20, (height, width)).astype(np.int32))
    if mode == "F":
        return Image.fromarray((rng.random((height, width)) * 300 - 10).astype(np.float32))
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    img = rgb.convert(mode)
    if mode in ("RGBA", "LA"):
        img.putalpha(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)))
    return img


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_COMBOS), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_random_valid_images_load(
    combo: tuple[str, str], width: int, height: int, seed: int
) -> None:
    fmt, mode = combo
    buf = io.BytesIO()
    _random_image(mode, width, height, seed).save(buf, format=fmt)
    t = load_image(buf.getvalue())
    assert t.shape == (1, 3, height, width) and t.dtype == torch.float32
    assert torch.isfinite(t).all() and 0 <= t.min() and t.max() <= 1
