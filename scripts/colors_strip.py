"""The docs' strip of ``--original-colors`` (docs/quality.md): the images scripts/colors_audit.py kept.

    python scripts/colors_audit.py --runs --out /tmp/colors_audit
    python scripts/colors_strip.py /tmp/colors_audit docs/original_colors_demo_starry.jpg

Left to right: the photo, the plain run, ``after``, ``luminance`` as Gatys et al. define it
(``--color-contrast photo``) and as it is now (the default, the painting's contrast), the same two for
``histogram``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strips import strip  # noqa: E402

ORDER = ("photo", "plain", "after", "luminance_gatys", "luminance_painting", "histogram_gatys", "histogram_painting")


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    images = [Image.open(folder / f"{name}.png") for name in ORDER]
    strip(*images, height=images[0].height).save(out, quality=85)
    print(out, out.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
