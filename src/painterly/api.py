"""The one-call API: ``painterly.stylize("photo.jpg", "starry.jpg").save("out.png")``.

These functions accept paths, PIL images or tensors, build a :class:`~painterly.engine.StyleTransfer`
and run it to the end. For step-by-step control (progress, cancel, checkpoints) use
:class:`~painterly.engine.StyleTransfer` and :class:`~painterly.engine.Run` directly.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence, Union

import PIL.Image
import torch
from torch import Tensor

from .config import Config
from .encoder import VGG19Encoder
from .engine import ProgressCallback, StyleTransfer
from .errors import ConfigError, PainterlyWarning
from .imageio import image_to_tensor, load_image, tensor_to_pil

ImageLike = Union[str, "os.PathLike[str]", PIL.Image.Image, Tensor]


def to_tensor(image: ImageLike, *, name: str = "image", max_pixels: int | None = None) -> Tensor:
    """Any accepted image form → ``(1, 3, H, W)`` float32 in [0, 1] (full resolution)."""
    if isinstance(image, Tensor):
        return image if image.ndim == 4 else image.unsqueeze(0)
    if isinstance(image, PIL.Image.Image):
        return image_to_tensor(image)
    if isinstance(image, (str, os.PathLike)):
        kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
        return load_image(image, **kwargs)
    raise ConfigError(f"{name}: expected a path, a PIL image or a tensor, got {type(image).__name__}")


def _warn_if_small(image: Tensor, size: int, name: str) -> None:
    longest = max(image.shape[-2:])
    if longest < size:
        warnings.warn(
            f"{name} is only {image.shape[-1]}x{image.shape[-2]} px; upscaled to {size} px", PainterlyWarning, stacklevel=3
        )


def prepare(
    mode: str,
    content: ImageLike | None,
    styles: Sequence[ImageLike],
    init: ImageLike | None = None,
    *,
    config: Config | None = None,
    **options: Any,
) -> tuple[Config, Tensor | None, list[Tensor], Tensor | None]:
    """Resolve the config and load the images of a run (shared by the API, the CLI and the studio)."""
    cfg = config if config is not None else Config.for_mode(mode, **options)
    if config is not None and options:
        cfg = config.replace(**options)
    content_t = None
    if content is not None:
        name = str(content) if isinstance(content, (str, os.PathLike)) else "content image"
        content_t = to_tensor(content, name=name, max_pixels=cfg.max_pixels)
        _warn_if_small(content_t, cfg.size, name)
    style_ts = [to_tensor(s, name="style image", max_pixels=cfg.max_pixels) for s in styles]
    init_t = None
    if init is None and cfg.init not in ("noise", "content", "style"):
        init = cfg.init
    if init is not None:
        init_t = to_tensor(init, name="init image", max_pixels=cfg.max_pixels)
    return cfg, content_t, style_ts, init_t


def _run(
    mode: str,
    content: ImageLike | None,
    styles: Sequence[ImageLike],
    *,
    init: ImageLike | None,
    config: Config | None,
    callback: ProgressCallback | None,
    encoder: VGG19Encoder | None,
    device: str | torch.device | None,
    options: dict[str, Any],
) -> PIL.Image.Image:
    cfg, content_t, style_ts, init_t = prepare(mode, content, styles, init, config=config, **options)
    transfer = StyleTransfer(cfg, encoder=encoder, device=device)
    result = transfer.run(content_t, style_ts, init=init_t, callback=callback)
    return tensor_to_pil(result)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    init: ImageLike | None = None,
    config: Config | None = None,
    callback: ProgressCallback | None = None,
    encoder: VGG19Encoder | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (one image or several, blended by ``style_blend``).

    ``options`` are :class:`~painterly.config.Config` fields (``size=384, style_weight=1e3, …``).
    Returns an 8-bit RGB PIL image whose longest side is ``size``.
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    return _run("stylize", content, styles, init=init, config=config, callback=callback, encoder=encoder, device=device, options=options)


def texture(
    style: ImageLike | Sequence[ImageLike],
    *,
    init: ImageLike | None = None,
    config: Config | None = None,
    callback: ProgressCallback | None = None,
    encoder: VGG19Encoder | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> PIL.Image.Image:
    """Synthesise a texture: white noise optimised to match the style's Gram matrices only."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    return _run("texture", None, styles, init=init, config=config, callback=callback, encoder=encoder, device=device, options=options)


def reconstruct(
    content: ImageLike,
    layer: str = "relu3_1",
    *,
    init: ImageLike | None = None,
    config: Config | None = None,
    callback: ProgressCallback | None = None,
    encoder: VGG19Encoder | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> PIL.Image.Image:
    """Reconstruct ``content`` from white noise using only the features of one ``layer``: shows what
    that layer of VGG19 keeps of an image (Gatys et al., fig. 1)."""
    options.setdefault("content_layers", (layer,))
    return _run("reconstruct", content, [], init=init, config=config, callback=callback, encoder=encoder, device=device, options=options)
