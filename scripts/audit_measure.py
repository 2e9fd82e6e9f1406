"""Measurements of results for the results audit (docs/quality.md): numbers beside what the eye sees.

    python scripts/audit_measure.py stats RESULT.png [STYLE.jpg]      clipped share, colour statistics, detail
    python scripts/audit_measure.py spectrum A.png B.png ...          detail per octave, in cycles per picture
    python scripts/audit_measure.py style STYLE.jpg A.png B.png ...   Gram style loss at a common 256 px
    python scripts/audit_measure.py grid A.png ...                    energy at the pools' periods (2, 4, 8, 16 px) over nearby
    python scripts/audit_measure.py edges A.png ...                   local detail of the frame's rows/columns (and the last six's profile)
    python scripts/audit_measure.py photo RESULT.png PHOTO MASK       |result − photo| by distance from a mask's border

Images are read as float RGB in [0, 1]; "local detail" is mean |x − 3×3 mean| (docs/quality.md).
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image


def load(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if size is not None and im.size != size:
        im = im.resize(size, Image.LANCZOS)
    return np.asarray(im, dtype=np.float64) / 255.0


def local_detail(x: np.ndarray) -> np.ndarray:
    """``(H, W)`` mean over channels of |x − its 3×3 mean| (edge-replicated)."""
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    box = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    return np.abs(x - box).mean(-1)


def stats(path: str, style: str | None = None) -> None:
    x = load(path)
    u8 = np.asarray(Image.open(path).convert("RGB"))
    clipped = ((u8 == 0) | (u8 == 255)).any(-1).mean()
    print(f"{path}: {x.shape[1]}x{x.shape[0]}  clipped pixels (a channel at 0 or 255) {100 * clipped:.2f} %")
    print(f"  mean RGB {np.round(x.reshape(-1, 3).mean(0), 3)}  std RGB {np.round(x.reshape(-1, 3).std(0), 3)}"
          f"  local detail {local_detail(x).mean():.4f}")
    if style:
        s = load(style)
        print(f"  style  mean RGB {np.round(s.reshape(-1, 3).mean(0), 3)}  std RGB {np.round(s.reshape(-1, 3).std(0), 3)}")


def band_energy(x: np.ndarray, n_bands: int = 6) -> list[float]:
    """RMS of the image's gray level per octave band, in cycles per picture height (1-2, 2-4, ...)."""
    g = x.mean(-1)
    g = g - g.mean()
    f = np.fft.fft2(g)
    h, w = g.shape
    fy = np.fft.fftfreq(h) * h  # cycles per picture height
    fx = np.fft.fftfreq(w) * h  # the same unit along x (cycles per picture height)
    r = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    power = np.abs(f) ** 2 / (h * w) ** 2
    return [float(np.sqrt(power[(r >= 2 ** k) & (r < 2 ** (k + 1))].sum())) for k in range(n_bands)]


def spectrum(paths: list[str]) -> None:
    print("gray-level RMS per octave, cycles per picture height:")
    heads = [f"{2 ** k}-{2 ** (k + 1)}" for k in range(8)]
    print("  " + " ".join(f"{h:>8}" for h in heads))
    for p in paths:
        print("  " + " ".join(f"{v:8.4f}" for v in band_energy(load(p), 8)) + f"  {p}")


def grid(paths: list[str]) -> None:
    """A pattern repeating every P px (P = 2, 4, 8, 16: the pools' strides) puts energy into the whole
    row ``H/P`` and column ``W/P`` of the spectrum; each figure is that row's (column's) energy over the
    mean of the rows (columns) 2 and 3 bins either side: about 1 without a grid."""
    for p in paths:
        g = load(p).mean(-1)
        h, w = g.shape
        f = np.abs(np.fft.fft2(g - g.mean())) ** 2
        out = []
        for period in (2, 4, 8, 16):
            ky, kx = round(h / period), round(w / period)  # the nearest bin when a side is no multiple
            rows = f[ky].sum() / np.mean([f[(ky + a) % h].sum() for a in (-3, -2, 2, 3)])
            cols = f[:, kx].sum() / np.mean([f[:, (kx + a) % w].sum() for a in (-3, -2, 2, 3)])
            out.append(f"P{period}: {rows:4.2f}/{cols:4.2f}")
        print(f"  rows/columns {'  '.join(out)}  {p}")


def edges(paths: list[str]) -> None:
    for p in paths:
        d = local_detail(load(p))
        inside = d[8:-8, 8:-8].mean()
        print(f"  inside {inside:.4f}; first/last rows {d[0].mean():.4f} {d[-1].mean():.4f}; "
              f"first/last columns {d[:, 0].mean():.4f} {d[:, -1].mean():.4f}  {p}")
        # The frame's profile: rows 1-6 from the bottom and the top, columns 1-6 from the right, over the inside.
        for label, lines in (("bottom rows", d[::-1]), ("top rows", d), ("right columns", d.T[::-1])):
            print(f"    {label} 1-6 / inside: " + " ".join(f"{lines[k].mean() / inside:.2f}" for k in range(6)))


def style_loss(style: str, paths: list[str], side: int = 256) -> None:
    import torch

    from painterly.encoder import VGG19Encoder
    from painterly.imageio import fit_size, resize
    from painterly.losses import gram_matrix
    from painterly.weights import load_weights

    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    w = load_weights("caffe")
    enc = VGG19Encoder(w.state, w.preprocessing, layers).eval()

    def grams(path: str) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(load(path)).permute(2, 0, 1)[None].float()
        x = resize(x, fit_size(x.shape[-2], x.shape[-1], side, 16))
        with torch.no_grad():
            f = enc(x)
        return {n: gram_matrix(f[n]) for n in layers}

    target = grams(style)
    print(f"Gram style loss per layer at {side} px against {style} (sum of squared differences):")
    print("  " + " ".join(f"{n:>9}" for n in layers))
    for p in paths:
        g = grams(p)
        print("  " + " ".join(f"{float(((g[n] - target[n]) ** 2).sum()):9.3g}" for n in layers) + f"  {p}")


def photo(result: str, photo_path: str, mask_path: str) -> None:
    """|result − photo| in the mask's white part, by distance (px) from its border."""
    from scipy.ndimage import distance_transform_edt

    import torch

    from painterly.imageio import resize

    x = load(result)
    h, w = x.shape[:2]
    # The photo as the run resizes it (bicubic, antialiased), rounded to 8 bits as the result is.
    ph = resize(torch.from_numpy(load(photo_path)).permute(2, 0, 1)[None].float(), (h, w))
    ph = (ph[0].permute(1, 2, 0).double().numpy() * 255).round() / 255
    m = load(mask_path, (w, h)).mean(-1) > 0.5
    dist = distance_transform_edt(m)
    err = np.abs(x - ph).mean(-1) * 255
    print(f"  mean |result − photo| (of 255) in the photo region by distance from its border, {result}:")
    for lo, hi in ((1, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10 ** 6)):
        sel = (dist >= lo) & (dist < hi)
        if sel.any():
            print(f"    {lo:>3}-{hi if hi < 10 ** 6 else '…':>3} px: {err[sel].mean():6.2f} (max {err[sel].max():5.1f}, {sel.sum()} px)")
    sel = dist >= 16
    print(f"    16+ px: mean colour shift RGB {np.round((x - ph)[sel].mean(0) * 255, 2)}; "
          f"local detail result {local_detail(x)[sel].mean():.4f} photo {local_detail(ph)[sel].mean():.4f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "stats":
        stats(*args)
    elif cmd == "spectrum":
        spectrum(args)
    elif cmd == "style":
        style_loss(args[0], args[1:])
    elif cmd == "grid":
        grid(args)
    elif cmd == "edges":
        edges(args)
    elif cmd == "photo":
        photo(*args)
    else:
        sys.exit(__doc__)
