"""The images of a run, loaded and checked once: the one way in for the API, the CLI and the studio.

:func:`load_inputs` turns paths, PIL images or tensors into an :class:`Inputs` and makes every check
that involves the images and the configuration together (a style blend for as many styles as given,
an init that has something to start from, ...). A run never checks them again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import PIL.Image
import torch
from torch import Tensor

from .. import color
from ..config import MODE_DEFAULTS, Config
from ..errors import ConfigError, PainterlyWarning
from ..masks import Region

ImageLike = Union[str, "os.PathLike[str]", PIL.Image.Image, Tensor]
"""What the loaders accept: a path, a PIL image, or a ``(1, 3, H, W)`` / ``(3, H, W)`` float tensor in [0, 1]."""


@dataclass(frozen=True)
class Inputs:
    """A run's images as given, each ``(1, 3, H, W)`` float32 in [0, 1] on the CPU, at full resolution.

    ``style_weights`` are the blend weights normalised to sum 1. The run resizes from these originals
    at each level, so they are kept whole; :attr:`content_work` and :attr:`styles_work` are what the
    losses see after ``original_colors`` was applied (the content's luminance, styles recoloured).
    """

    content: Tensor | None
    styles: tuple[Tensor, ...]
    init: Tensor | None
    style_weights: tuple[float, ...]
    content_work: Tensor | None
    styles_work: tuple[Tensor, ...]
    reference_size: tuple[int, int]
    """``(height, width)`` whose aspect the output takes: the content's (else the first style's) as
    its file declares it (a big file is decoded smaller than that, see :func:`to_tensor`)."""
    mask: Tensor | None = None
    """The mask image as given, ``(1, 3, H, W)`` in [0, 1] (``None``: no spatial control)."""
    regions: tuple[Region, ...] = ()
    """The parsed ``regions`` of the config, in order (empty without a mask)."""
    region_weights: Tensor | None = None
    """``(K, 1, H, W)`` soft weights of :attr:`regions` at the mask's resolution, summing to 1 per pixel."""
    style_masks: tuple[Tensor | None, ...] = ()
    """For each style, ``(1, 1, H, W)`` weights in [0, 1] of where to take its style from, or ``None``."""
    notes: tuple[str, ...] = ()
    """What :func:`load_inputs` found odd but usable (an upscaled photo, an option without effect, a
    stretched init), one sentence each naming fields in backticks: the faces that load with
    ``warn=False`` show them in their own words (:meth:`PainterlyWarning.render`)."""

    @property
    def main_style(self) -> Tensor:
        """The (working) style with the largest blend weight."""
        return self.styles_work[max(range(len(self.styles_work)), key=lambda i: self.style_weights[i])]

    def to_dict(self) -> dict[str, Any]:
        """The images as given (the working copies are derived again on load)."""
        data = {"content": self.content, "styles": list(self.styles), "init": self.init, "reference_size": list(self.reference_size)}
        if self.mask is not None:
            data["mask"] = self.mask
            data["style_masks"] = list(self.style_masks)
        return data

    @classmethod
    def from_dict(cls, config: Config, data: Mapping[str, Any]) -> "Inputs":
        """The inverse of :meth:`to_dict`: the images loaded and checked again by :func:`load_inputs`."""
        style_masks = data.get("style_masks")
        inputs = load_inputs(
            config, data["content"], list(data["styles"]), data["init"], warn=False,
            mask=data.get("mask"), style_masks=list(style_masks) if style_masks else None,
        )  # fmt: skip
        size = data.get("reference_size")
        if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            inputs = dataclasses.replace(inputs, reference_size=(size[0], size[1]))
        return inputs


def to_tensor(image: ImageLike, *, name: str = "image", max_pixels: int | None = None, max_side: int | None = None) -> Tensor:
    """Any accepted image form → ``(1, 3, H, W)`` float32 in [0, 1].

    A file larger than ``max_side`` is decoded at a reduced size (still at least twice ``max_side``,
    so the run's own resize does the last step): a 100-megapixel photo never becomes floats whole.
    Tensors and PIL images are taken at their size. A tensor is ``(1, 3, H, W)`` or ``(3, H, W)``, any
    float dtype, finite, with values in [0, 1] (a resize's overshoot of up to ``RANGE_SLACK`` is
    clamped away); anything else is a :class:`ConfigError` naming ``name``.
    """
    from ..imageio import image_to_tensor, load_image

    if isinstance(image, Tensor):
        return _checked(name, image)
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ConfigError(f"{name} has no pixels: {image.width}x{image.height}")
        return image_to_tensor(image)
    if isinstance(image, (str, os.PathLike)):
        kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
        return load_image(image, max_side=max_side, **kwargs)
    raise ConfigError(f"{name}: expected a path, a PIL image or a tensor, got {type(image).__name__}")


def load_inputs(
    config: Config,
    content: ImageLike | None,
    styles: Sequence[ImageLike] | ImageLike | None = (),
    init: ImageLike | None = None,
    *,
    warn: bool = True,
    mask: ImageLike | None = None,
    style_masks: Sequence[ImageLike | None] | None = None,
    content_label: str | None = None,
) -> Inputs:
    """Load and check the images of a run against ``config``.

    Args:
        content: the photo; ``None`` for texture synthesis.
        styles: the paintings, blended by ``config.style_blend`` (one image alone is taken as the one style).
        init: the image to start from, when ``config.init`` is ``"image"``.
        mask: a colour-coded or grayscale image whose colours ``config.regions`` assigns (spatial
            control, :mod:`painterly.masks`); the content's aspect, any size.
        style_masks: for each style image, a grayscale image (white: take the style from here) or
            ``None``; only with a mask.
        warn: report :attr:`Inputs.notes` (an upscaled content image, an option without effect, a
            stretched init) as :class:`PainterlyWarning` too; they are in the result either way.
        content_label: how the notes name the content (default: its path, else ``content image``;
            a video's frames: ``each frame``).

    Raises:
        ConfigError: an image or combination the run cannot use, naming the field at fault.
        ImageError: a file that cannot be read.
    """
    # One image given where a list is expected is the one style, not a sequence of characters or rows.
    styles = [styles] if isinstance(styles, (str, os.PathLike, PIL.Image.Image, Tensor)) else list(styles or ())
    _check_combination(config, content is not None, len(styles), init is not None)
    notes = ineffective_options(config)
    content_t = None
    if content is not None:
        name = content_label or (str(content) if isinstance(content, (str, os.PathLike)) else "content image")
        content_t = to_tensor(content, name="content image", max_pixels=config.max_pixels, max_side=config.size)
        if max(content_t.shape[-2:]) < config.size:
            h, w = content_t.shape[-2:]
            notes.append(f"{name} is only {w}x{h} px; upscaled to {config.size} px")
    style_side = max(1, round(config.size * config.style_scale))
    style_ts = tuple(
        to_tensor(s, name=f"style image {i + 1}", max_pixels=config.max_pixels, max_side=style_side) for i, s in enumerate(styles)
    )
    init_t = to_tensor(init, name="init image", max_pixels=config.max_pixels, max_side=config.size) if init is not None else None

    blend = config.style_blend
    weights = tuple(w / sum(blend) for w in blend) if blend is not None else (1.0 / max(1, len(style_ts)),) * len(style_ts)
    # original_colors: the colour handling happens on the inputs, once, at full resolution.
    content_work, styles_work = content_t, style_ts
    if config.original_colors == "histogram" and content_t is not None:
        styles_work = tuple(color.match_color(s, content_t, config.color_contrast) for s in style_ts)
    elif config.original_colors == "luminance" and content_t is not None:
        styles_work = tuple(color.match_luminance(s, content_t, config.color_contrast) for s in style_ts)
        content_work = color.luminance(content_t)
    reference = content if content is not None else styles[0]
    reference_t = content_t if content_t is not None else style_ts[0]
    if isinstance(reference, (str, os.PathLike)):
        from ..imageio import declared_size

        reference_size = declared_size(reference)
    else:
        reference_size = (int(reference_t.shape[-2]), int(reference_t.shape[-1]))
    notes.extend(_stretch_notes(reference if isinstance(reference, (str, os.PathLike)) else None, reference_size, config.size))
    if init_t is not None:
        notes.extend(_init_shape_notes(init, init_t, reference_size, "the content" if content is not None else "style image 1"))
    inputs = Inputs(content_t, style_ts, init_t, weights, content_work, styles_work, reference_size, notes=tuple(notes))
    if mask is not None or style_masks is not None or config.regions:
        from .regions import load_regions

        inputs = load_regions(inputs, config, mask, style_masks)
    if warn:
        for note in inputs.notes:
            warnings.warn(note, PainterlyWarning, stacklevel=2)
    return inputs


def _stretch_notes(name: str | os.PathLike | None, hw: tuple[int, int], size: int) -> list[str]:
    """A note when the result cannot keep the image's shape: a side below the network's minimum is
    raised to it (a 2000x100 panorama at 96 px becomes 96x16, not 96x5)."""
    from ..imageio import fit_size
    from .pyramid import MIN_SIDE

    h, w = hw
    scale = size / max(h, w)
    if min(round(h * scale), round(w * scale)) >= MIN_SIDE:
        return []
    out_h, out_w = fit_size(h, w, size, MIN_SIDE)
    keeps = math.ceil(MIN_SIDE * max(h, w) / min(h, w))
    return [
        f"{name if name is not None else 'the image'} is {w}x{h} px: at `size` {size} its short side would be under "
        f"the network's {MIN_SIDE} px, so the result is {out_w}x{out_h}, stretched (`size` {keeps} or more keeps its shape)"
    ]


def _init_shape_notes(init: ImageLike, init_t: Tensor, hw: tuple[int, int], what: str) -> list[str]:
    """An init image of another shape is stretched to the result's: a note, not done silently (a mask of
    another shape is refused; a start image only starts the optimisation, so it is accepted)."""
    from ..masks import ASPECT_TOLERANCE

    is_path = isinstance(init, (str, os.PathLike))
    if is_path:
        from ..imageio import declared_size

        ih, iw = declared_size(init)  # the file's own size (it may be decoded smaller)
    else:
        ih, iw = init_t.shape[-2:]
    h, w = hw
    if abs((iw / ih) / (w / h) - 1.0) <= ASPECT_TOLERANCE:
        return []
    name = str(init) if is_path else "image"
    return [f"`init` {name} is {iw}x{ih} px, another shape than {what} ({w}x{h}): it is stretched to it"]


def _check_combination(config: Config, has_content: bool, n_styles: int, has_init: bool) -> None:
    """Every check that needs both the config and which images were given (made before loading)."""
    if config.uses_content and not has_content:
        raise ConfigError("a content image is needed when `content_weight` is positive")
    if config.uses_laplacian and not has_content:
        raise ConfigError("a content image is needed when `laplacian_weight` is positive")
    if config.uses_style and n_styles == 0:
        raise ConfigError("at least one style image is needed when `style_weight` is positive")
    blend = config.style_blend
    if blend is not None and len(blend) != n_styles:
        raise ConfigError(f"`style_blend` has {len(blend)} values for {n_styles} style image{'s' if n_styles != 1 else ''}")
    if config.init == "content" and not has_content:
        raise ConfigError("`init` content: there is no content image; use noise or style")
    if config.init == "style" and n_styles == 0:
        raise ConfigError("`init` style: there is no style image; use noise or content")
    if config.init == "image" and not has_init:
        raise ConfigError("`init` image: give the image to start from (init=...)")
    if config.init != "image" and has_init:
        raise ConfigError(f"an init image was given but `init` is {config.init}; set it to image")
    if config.original_colors != "off" and not has_content:
        raise ConfigError("`original_colors` needs a content image")
    if not has_content and n_styles == 0:
        raise ConfigError("nothing to work from: give a content or a style image")


# How far a tensor's values may stray outside [0, 1] and still be taken (clamped): the overshoot of a
# bicubic resize; a 0–255 or a normalised (mean/std) tensor strays much further.
RANGE_SLACK = 1e-2


def _checked(name: str, image: Tensor) -> Tensor:
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ConfigError(f"{name} must have shape (1, 3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ConfigError(f"{name} must be a float tensor in [0, 1]; got {image.dtype}")
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ConfigError(f"{name} has no pixels: shape {tuple(image.shape)}")
    image = image.detach().to("cpu", torch.float32)
    if not bool(image.isfinite().all()):
        raise ConfigError(f"{name} has NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        hint = "; divide a 0–255 image by 255" if high > 2 else ""
        raise ConfigError(f"{name} must have values in [0, 1]; got {low:.3g} to {high:.3g}{hint}")
    return image.clamp(0, 1)


def ineffective_options(config: Config) -> list[str]:
    """Options ``config`` sets that take no effect with its other options, one sentence each (naming
    the fields): accepted, since each has a defined meaning, but never silently."""
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    notes = []
    if config.level_iterations is not None and not config.multiscale and len(config.level_iterations) > 1:
        notes.append(f"`level_iterations` has no effect without `multiscale`: one level of {sum(config.level_iterations)} iterations")
    # A mode's own default (texture: 256) above a small --size is not the user's contradiction.
    mode_min_sizes = {defaults["min_size"], *(m["min_size"] for m in MODE_DEFAULTS.values() if "min_size" in m)}
    if config.multiscale and config.min_size not in mode_min_sizes and config.min_size > config.size:
        notes.append(f"`min_size` {config.min_size} is larger than `size` {config.size}: one level")
    for name in ("lbfgs_history", "lbfgs_precondition"):
        mode_values = {defaults[name], *(m[name] for m in MODE_DEFAULTS.values() if name in m)}
        if config.optimizer != "lbfgs" and getattr(config, name) not in mode_values:
            notes.append(f"`{name}` has no effect with `optimizer` {config.optimizer}")
    if config.laplacian_weight == 0 and config.laplacian_pools != defaults["laplacian_pools"]:
        notes.append("`laplacian_pools` has no effect without `laplacian_weight` (the Laplacian loss is off)")
    if config.original_colors not in ("luminance", "histogram") and config.color_contrast != defaults["color_contrast"]:
        notes.append("`color_contrast` has no effect without `original_colors` luminance or histogram")
    if config.init == "noise" and config.init_noise > 0:
        notes.append("`init_noise` has no effect with `init` noise: the start is all noise already")
    for name in ("lr_decay", "lr_decay_steps"):
        if config.optimizer != "sgd" and getattr(config, name) != defaults[name]:
            notes.append(f"`{name}` has no effect with `optimizer` {config.optimizer} (sgd only)")
    return notes
