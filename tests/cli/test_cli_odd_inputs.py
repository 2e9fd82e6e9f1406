"""Issue 5, odd but valid input: it just works. Grayscale, bilevel, palette, alpha, CMYK, 16-bit,
EXIF-rotated, animated (first frame, with a ``painterly: note:`` line), tiny (upscaled, with a note),
and an output folder that does not exist yet (created).

Each test makes its image, runs ``painterly`` in this process with the tiny weights, and checks the
image written: whole, 8-bit RGB, of the requested size, with no error on stderr.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import fast_args, run_main

SIZE = 48


def _rgb(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    """A smooth picture with some noise (so that every mode has something to show)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / (w - 1), y * 255 / (h - 1), np.full_like(x, 128.0)], -1)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
    return Image.fromarray(noisy.astype(np.uint8))


def _png16_rgb(path: Path, w: int = 64, h: int = 48) -> Path:
    """A 16-bit-per-channel colour PNG (Pillow cannot write one, so it is built by hand)."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + pixels[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def _save(img: Image.Image, path: Path, **kwargs) -> Path:  # noqa: ANN003
    img.save(path, **kwargs)
    return path


def _exif_rotated(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the stored 64x48 shows as 48x64
    return _save(_rgb(), path, exif=exif, quality=95)


def _animated(path: Path, fmt: str) -> Path:
    frames = [_rgb(seed=i) for i in range(3)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


def _rgba(path: Path) -> Path:
    img = _rgb().convert("RGBA")
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255  # half transparent: composited over white
    img.putalpha(Image.fromarray(alpha))
    return _save(img, path)


def _palette_transparent(path: Path) -> Path:
    img = _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(img, path, transparency=0)


# name → (make the file in a folder, what the note on stderr must say (or None for no note))
ODD: dict[str, tuple] = {
    "grayscale": (lambda d: _save(_rgb().convert("L"), d / "gray.png"), None),
    "bilevel": (lambda d: _save(_rgb().convert("1"), d / "bw.png"), None),
    "gray-alpha": (lambda d: _save(_rgb().convert("LA"), d / "la.png"), None),
    "palette": (lambda d: _save(_rgb().convert("P", palette=Image.Palette.ADAPTIVE), d / "pal.png"), None),
    "palette-transparent": (lambda d: _palette_transparent(d / "pal-t.png"), None),
    "palette-gif": (lambda d: _save(_rgb().convert("P"), d / "pal.gif"), None),
    "rgba": (lambda d: _rgba(d / "rgba.png"), None),
    "rgba-webp": (lambda d: _save(_rgb().convert("RGBA"), d / "rgba.webp", lossless=True), None),
    "cmyk-jpeg": (lambda d: _save(_rgb().convert("CMYK"), d / "cmyk.jpg"), None),
    "cmyk-tiff": (lambda d: _save(_rgb().convert("CMYK"), d / "cmyk.tif"), None),
    "16-bit-gray-png": (
        lambda d: _save(Image.fromarray(np.random.default_rng(2).integers(0, 65536, (48, 64), dtype=np.uint16)), d / "g16.png"),
        None,
    ),
    "16-bit-rgb-png": (lambda d: _png16_rgb(d / "rgb16.png"), None),
    "16-bit-gray-tiff": (
        lambda d: _save(Image.fromarray(np.random.default_rng(3).integers(0, 65536, (48, 64), dtype=np.uint16)), d / "g16.tif"),
        None,
    ),
    "float-tiff": (
        lambda d: _save(Image.fromarray(np.random.default_rng(4).random((48, 64), dtype=np.float32)), d / "f32.tif"),
        None,
    ),
    "bmp": (lambda d: _save(_rgb(), d / "pic.bmp"), None),
    "png-named-jpg": (lambda d: _save(_rgb(), d / "really-a-png.jpg", format="PNG"), None),
    "animated-gif": (lambda d: _animated(d / "anim.gif", "GIF"), "animated image; using the first frame"),
    "animated-webp": (lambda d: _animated(d / "anim.webp", "WEBP"), "animated image; using the first frame"),
    "tiny-8x8": (lambda d: _save(_rgb(8, 8), d / "tiny.png"), "upscaled"),
}


def _check_output(path: Path, size: int, portrait: bool = False) -> Image.Image:
    img = Image.open(path)
    img.load()  # whole, decodable
    assert img.mode == "RGB"
    w, h = img.size
    assert max(w, h) == size
    assert (h > w) if portrait else (w >= h)
    return img


@pytest.mark.parametrize("kind", list(ODD))
def test_odd_content_image(kind: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    make, note = ODD[kind]
    odd = make(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(odd), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file, size=SIZE), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert "error" not in err and "Traceback" not in err
    if note is None:
        assert err == ""
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("painterly: note: ") and note in lines[0], err
        assert odd.name in lines[0]
    _check_output(tmp_path / "out.png", SIZE)


@pytest.mark.parametrize("kind", ["grayscale", "palette-transparent", "rgba", "cmyk-jpeg", "16-bit-rgb-png", "animated-webp", "tiny-8x8"])
def test_odd_style_image(kind: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    make, note = ODD[kind]
    odd = make(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(images.content), str(odd), "-o", "out.png", *fast_args(tiny_weights_file, size=SIZE), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert "error" not in err and "Traceback" not in err
    if note == "animated image; using the first frame":
        assert f"painterly: note: {odd}: {note}" in err
    _check_output(tmp_path / "out.png", SIZE)


def test_exif_rotated_content_is_upright(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """Stored 64x48 with "rotate 90°" in its EXIF: the output is portrait, as the photo is shown."""
    odd = _exif_rotated(tmp_path / "phone.jpg")
    assert Image.open(odd).size == (64, 48)
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(odd), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file, size=SIZE), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0 and err == "", err
    assert _check_output(tmp_path / "out.png", SIZE, portrait=True).size == (36, 48)


def test_tiny_content_is_upscaled_with_a_note(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """An 8x8 image is smaller than the network's 16 px minimum and than --size: upscaled, with a note."""
    odd = _save(_rgb(8, 8), tmp_path / "icon.png")
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(odd), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file, size=32), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert err.strip() == f"painterly: note: {odd} is only 8x8 px; upscaled to 32 px"
    _check_output(tmp_path / "out.png", 32)


def test_notes_name_flags_and_a_stretched_init(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """A note speaks the command line's words (--flags), as its errors do; an init image of another
    shape than the content's is stretched, and said to be."""
    init = _save(_rgb(90, 20), tmp_path / "wide.png")
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--init", str(init),
        "--optimizer", "adam", "--lbfgs-history", "5", *fast_args(tiny_weights_file, size=SIZE), "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert "painterly: note: --lbfgs-history has no effect with --optimizer adam" in err.splitlines()
    assert f"painterly: note: --init {init} is 90x20 px, another shape than the content (64x48): it is stretched to it" in err
    _check_output(tmp_path / "out.png", SIZE)


def test_a_panorama_too_thin_for_the_size_is_stretched_with_a_note(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """400x20 at 48 px would be 48x2.4: the short side is raised to the network's 16 px, which stretches
    the picture; the note says so and which --size keeps its shape (16 x 20 = 320)."""
    odd = _save(_rgb(400, 20), tmp_path / "pano.png")
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(odd), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file, size=SIZE), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert err.strip() == (
        f"painterly: note: {odd} is 400x20 px: at --size 48 its short side would be under the network's 16 px, "
        "so the result is 48x16, stretched (--size 320 or more keeps its shape)"
    )
    assert Image.open(tmp_path / "out.png").size == (48, 16)
    # At the size the note names, the shape is kept and there is no note.
    keep = ["stylize", str(odd), str(images.style), "-o", "kept.png", *fast_args(tiny_weights_file, size=320, iterations=1), "-q"]
    rc, err = run_main(capsys, keep)
    assert rc == 0 and err == "", err
    assert Image.open(tmp_path / "kept.png").size == (320, 16)


def test_texture_from_odd_style(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_weights_file: Path) -> None:  # noqa: ANN001
    odd = _animated(tmp_path / "anim.gif", "GIF")
    monkeypatch.chdir(tmp_path)
    argv = ["texture", str(odd), "-o", "tex.png", *fast_args(tiny_weights_file, "texture", size=32), "-q"]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert "first frame" in err and "error" not in err
    Image.open(tmp_path / "tex.png").load()


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
def test_missing_output_folder_is_created(ext: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    out = Path("results") / "2024" / "cat" / f"painted{ext}"
    log = Path("logs") / "deep" / "run.jsonl"
    argv = [
        "stylize", str(images.content), str(images.style), "-o", str(out), "--log", str(log),
        *fast_args(tiny_weights_file, size=SIZE), "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    assert rc == 0 and err == "", err
    _check_output(tmp_path / out, SIZE)
    assert len((tmp_path / log).read_text().splitlines()) == 3
    # Nothing but the image in its new folder: no temporary file left behind.
    assert [p.name for p in (tmp_path / out).parent.iterdir()] == [out.name]
