"""painterly — neural style transfer (Gatys et al.) as a library, a command-line tool and a web studio.

Quick start::

    import painterly
    painterly.stylize("photo.jpg", "starry_night.jpg", size=512).save("out.png")

Step by step, with progress::

    from painterly import Config, StyleTransfer, load_inputs
    config = Config(size=384)
    run = StyleTransfer(config).start(load_inputs(config, "photo.jpg", ["starry_night.jpg"]))
    for progress in run:
        print(progress.iteration, progress.losses["total"])
    image = run.result()          # (1, 3, H, W) float32 in [0, 1]

Importing painterly does no work: nothing is loaded or downloaded until a run needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public names and the module that defines each; resolved on first use so that `import painterly`
# (and `painterly --help`) stay fast and do not import torch.
_EXPORTS = {
    "stylize": "api",
    "texture": "api",
    "reconstruct": "api",
    "Config": "config",
    "load_inputs": "engine",
    "Inputs": "engine",
    "Objective": "engine",
    "RunState": "engine",
    "StyleTransfer": "engine",
    "Run": "engine",
    "run_together": "engine",
    "Progress": "engine",
    "VGG19Encoder": "encoder",
    "load_weights": "weights",
    "Weights": "weights",
    "load_image": "imageio",
    "save_image": "imageio",
    "gram_matrix": "losses",
    "content_loss": "losses",
    "cosine_content_loss": "losses",
    "style_loss": "losses",
    "total_variation": "losses",
    "PainterlyError": "errors",
    "ConfigError": "errors",
    "ImageError": "errors",
    "TooManyPixels": "errors",
    "WeightsError": "errors",
    "DivergenceError": "errors",
    "ResourceError": "errors",
    "PainterlyWarning": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'painterly' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
