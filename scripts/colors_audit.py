"""How strongly ``--original-colors luminance`` and ``histogram`` paint, next to a plain run (docs/quality.md).

Two tables:

1. **Gram energy** of the style targets (no optimisation): ``Σ G²`` of each style layer's Gram for the
   painting as it is, its grey luminance, and the styles the colour modes make from it, as a fraction of
   the painting's. The Gram loss at the start scales with it, so it is the style term's weight as the
   run feels it against the same content loss.
2. **How painted the results are** (``--runs``): each variant run on the same photo and painting, then
   measured on its luminance Y (what ``luminance`` paints; the colour is the photo's by construction):

   * ``texture`` — how far the result's brightness texture went from the photo's towards the painting's:
     ``(L(photo) − L(result)) / (L(photo) − L(plain run))``, where ``L(x)`` is the Gram style loss
     (summed over the style layers) of the grey image ``Y(x)`` against the grey painting ``Y(painting)``
     as it is. 1: as painted as the plain run; 0: the photo's.
   * ``detail`` — local contrast: the mean square of ``Y − blur(Y)`` (Gaussian, σ = 2 px), over the plain
     run's. Strokes and swirls are detail; a flat, photo-like result has the photo's.
   * ``moved`` — RMS of ``Y(result) − Y(photo)`` over the plain run's: how much the brightness was
     repainted at all.
   * ``chroma`` — RMS of the result's (I, Q) minus the photo's, in YIQ: 0 is the photo's colours.

Run (the figures in docs/quality.md)::

    python scripts/colors_audit.py --runs --out /tmp/colors_audit

``--out`` keeps each variant's image (for scripts/colors_strip.py). The variants: ``gatys`` is Gatys et
al. 2016 exactly (``color_contrast="photo"``: the style's spread moved to the photo's), ``painting``
keeps the painting's light–dark spread (``color_contrast="painting"``, the default), ``×E`` scales each
style layer's weight by the Gram energy lost (plain / matched, table 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from painterly import Config, color
from painterly.engine import StyleTransfer, build_encoder, load_inputs, to_tensor
from painterly.imageio import fit_size, resize, tensor_to_pil
from painterly.losses import gram_matrix, style_loss

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "src/painterly/assets/demo_content.jpg"
PAINTING = Path("/work/shared/images/starry_night.jpg")


def energies(encoder, layers, image: torch.Tensor, size: int) -> dict[str, float]:
    image = resize(image, fit_size(*image.shape[-2:], size, 16))
    with torch.no_grad():
        feats = encoder(image)
    return {n: float(gram_matrix(feats[n]).pow(2).sum()) for n in layers}


def grey_loss(encoder, layers, image: torch.Tensor, target_grams: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        feats = encoder(color.luminance(image))
    return sum(float(style_loss(gram_matrix(feats[n]), target_grams[n])) for n in layers)


def blur(y: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=y.dtype) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    y = F.pad(y, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photo", default=str(PHOTO))
    p.add_argument("--painting", default=str(PAINTING))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", action="store_true", help="also run the variants and measure the results (minutes)")
    p.add_argument("--only", nargs="*", help="run only these variants (names as in the table)")
    p.add_argument("--out", type=Path, help="folder for each variant's image (8-bit PNG, what a user gets)")
    p.add_argument("--reuse", action="store_true", help="measure the images already in --out instead of running again")
    args = p.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    base = Config(size=args.size, iterations=args.iterations, seed=args.seed)
    layers = base.style_layers
    encoder = build_encoder(base)
    inputs = load_inputs(base, args.photo, [args.painting])
    photo, painting = inputs.content, inputs.styles[0]
    yp, ys = color.rgb_to_yiq(photo)[:, :1], color.rgb_to_yiq(painting)[:, :1]
    print(f"photo Y mean {yp.mean():.3f} std {yp.std():.3f}; painting Y mean {ys.mean():.3f} std {ys.std():.3f}")

    styles = {
        "painting (plain run)": painting,
        "grey painting": color.luminance(painting),
        "luminance, gatys": color.match_luminance(painting, photo, contrast="photo"),
        "luminance, painting": color.match_luminance(painting, photo, contrast="painting"),
        "histogram, gatys": color.match_color(painting, photo, contrast="photo"),
        "histogram, painting": color.match_color(painting, photo, contrast="painting"),
    }
    e = {k: energies(encoder, layers, v, args.size) for k, v in styles.items()}
    plain_e = e["painting (plain run)"]
    print("\nGram energy of the style target, fraction of the painting's (sum of G^2 per layer)")
    print(f"| style target | {' | '.join(layers)} |")
    print("|---|" + "---:|" * len(layers))
    for k, v in e.items():
        print(f"| {k} | " + " | ".join(f"{v[n] / plain_e[n]:.2f}" for n in layers) + " |")
    if not args.runs:
        return

    def boost(name: str) -> tuple[float, ...]:
        return tuple(plain_e[n] / e[name][n] for n in layers)

    variants = {
        "plain": dict(),
        "luminance, gatys": dict(original_colors="luminance", color_contrast="photo"),
        "luminance, gatys ×E": dict(original_colors="luminance", color_contrast="photo", style_layer_weights=boost("luminance, gatys")),
        "luminance, painting": dict(original_colors="luminance", color_contrast="painting"),
        "luminance, painting ×E": dict(original_colors="luminance", color_contrast="painting", style_layer_weights=boost("luminance, painting")),
        "histogram, gatys": dict(original_colors="histogram", color_contrast="photo"),
        "histogram, gatys ×E": dict(original_colors="histogram", color_contrast="photo", style_layer_weights=boost("histogram, gatys")),
        "histogram, painting": dict(original_colors="histogram", color_contrast="painting"),
    }
    if args.only:
        variants = {k: v for k, v in variants.items() if k == "plain" or k in args.only}
    with torch.no_grad():
        grey_encoder_feats = encoder(resize(color.luminance(painting), fit_size(*painting.shape[-2:], args.size, 16)))
    targets = {n: gram_matrix(grey_encoder_feats[n]) for n in layers}
    results: dict[str, torch.Tensor] = {}
    for name, options in variants.items():
        file = args.out / (name.replace(", ", "_").replace(" ×E", "_xE") + ".png") if args.out else None
        if args.reuse and file is not None and file.exists():
            results[name] = to_tensor(str(file), max_side=args.size)
            continue
        cfg = base.replace(**options)
        t = time.time()
        # Measured as saved (8 bits), what a user gets and what --reuse reads back.
        image = tensor_to_pil(StyleTransfer(cfg, encoder=encoder).run(load_inputs(cfg, args.photo, [args.painting])).cpu())
        results[name] = to_tensor(image, max_side=args.size)
        print(f"  ran {name} in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        if file is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            image.save(file)
    photo_s = resize(photo, tuple(results["plain"].shape[-2:]))
    results["after"] = color.join_luminance(results["plain"], photo_s)
    if args.out:
        tensor_to_pil(results["after"]).save(args.out / "after.png")
        tensor_to_pil(photo_s).save(args.out / "photo.png")
    l_photo = grey_loss(encoder, layers, photo_s, targets)
    y_photo = color.rgb_to_yiq(photo_s)

    def measures(x: torch.Tensor) -> tuple[float, float, float, float]:
        yiq = color.rgb_to_yiq(x)
        y = yiq[:, :1]
        detail = float((y - blur(y)).pow(2).mean())
        moved = float((y - y_photo[:, :1]).pow(2).mean().sqrt())
        chroma = float((yiq[:, 1:] - y_photo[:, 1:]).pow(2).mean().sqrt())
        return grey_loss(encoder, layers, x, targets), detail, moved, chroma

    m_plain = measures(results["plain"])
    print("\nHow painted the result is (luminance), 1 = the plain run; chroma: RMS (I, Q) distance from the photo")
    print("| run | texture | detail | moved | chroma |")
    print("|---|---:|---:|---:|---:|")
    print(f"| the photo | 0.00 | {float((y_photo[:, :1] - blur(y_photo[:, :1])).pow(2).mean()) / m_plain[1]:.2f} | 0.00 | 0.000 |")
    for name, x in results.items():
        m = measures(x)
        texture = (l_photo - m[0]) / (l_photo - m_plain[0])
        print(f"| {name} | {texture:.2f} | {m[1] / m_plain[1]:.2f} | {m[2] / m_plain[2]:.2f} | {m[3]:.3f} |")


if __name__ == "__main__":
    main()
