"""The one-call API: ``painterly.stylize("photo.jpg", "starry.jpg").save("out.png")``.

These functions accept paths, PIL images or tensors, load them with :func:`load_inputs` (the one way in,
shared with the CLI and the studio), build a :class:`~painterly.engine.StyleTransfer` and run it to the
end. For step-by-step control (progress, cancel, checkpoints) use
:class:`~painterly.engine.StyleTransfer` and :class:`~painterly.engine.Run` directly.
"""

from __future__ import annotations

from typing import Any, Sequence

import PIL.Image
import torch

from .config import Config
from .encoder import VGG19Encoder
from .engine import ImageLike, ProgressCallback, StyleTransfer, load_inputs, to_tensor
from .imageio import tensor_to_pil

__all__ = ["stylize", "texture", "reconstruct", "load_inputs", "to_tensor", "ImageLike"]


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
    mask: ImageLike | None = None,
    style_masks: Sequence[ImageLike | None] | None = None,
) -> PIL.Image.Image:
    if init is not None:
        options.setdefault("init", "image")  # an image given to start from is what the run starts from
    cfg = config.replace(**options) if config is not None and options else config
    if cfg is None:
        cfg = Config.for_mode(mode, **options)
    inputs = load_inputs(cfg, content, styles, init, mask=mask, style_masks=style_masks)
    result = StyleTransfer(cfg, encoder=encoder, device=device).run(inputs, callback=callback)
    return tensor_to_pil(result)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    init: ImageLike | None = None,
    mask: ImageLike | None = None,
    style_masks: Sequence[ImageLike | None] | None = None,
    config: Config | None = None,
    callback: ProgressCallback | None = None,
    encoder: VGG19Encoder | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (one image or several, blended by ``style_blend``).

    ``options`` are :class:`~painterly.config.Config` fields (``size=384, style_weight=1e3, …``).
    With ``mask`` (a colour-coded image) and ``regions=["red=1", "blue=2", "white=photo"]``, each
    colour of the mask gets its own style, or keeps the photo (docs/masks.md); ``style_masks`` say
    which part of each style image to take the style from.
    Returns an 8-bit RGB PIL image whose longest side is ``size``.
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    return _run(
        "stylize", content, styles, init=init, config=config, callback=callback, encoder=encoder, device=device,
        options=options, mask=mask, style_masks=style_masks,
    )  # fmt: skip


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
    """Synthesise a texture: white noise optimised to match the style's Gram matrices only.

    ``options`` are :class:`~painterly.config.Config` fields (texture mode's defaults otherwise).
    Returns an 8-bit RGB PIL image whose longest side is ``size``, in the (first) style's aspect.
    """
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
    that layer of VGG19 keeps of an image (Gatys et al., fig. 1).

    ``layer``: any VGG19 layer name (``conv1_1`` … ``pool5``). ``options`` are
    :class:`~painterly.config.Config` fields. Returns an 8-bit RGB PIL image whose longest side is ``size``.
    """
    options.setdefault("content_layers", (layer,))
    return _run("reconstruct", content, [], init=init, config=config, callback=callback, encoder=encoder, device=device, options=options)
