"""Run configuration: one frozen, validated dataclass, and the only home of defaults.

The CLI builds its options from the fields below (their ``metadata`` holds the help text), the web
studio accepts the same names in its JSON ``options``, and the Python API takes them as keyword
arguments. A :class:`Config` that exists is valid: ``__post_init__`` raises :class:`ConfigError` with a
one-line message for anything wrong.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .checks import as_tuple, check_all_finite, check_float, check_int, check_pools
from .errors import ConfigError, clip, shown
from .layers import LAYER_NAMES, is_layer

OPTIMIZERS = ("lbfgs", "adam", "sgd")
CONTENT_LOSSES = ("mse", "cosine")
STYLE_LOSSES = ("gram", "w2", "sliced", "histogram")
POOLINGS = ("max", "avg")
ORIGINAL_COLORS = ("off", "luminance", "histogram", "after")
COLOR_CONTRASTS = ("painting", "photo")
"""``color_contrast``: whose light–dark spread a style matched by ``original_colors`` keeps (painterly.color)."""
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
INITS = ("noise", "content", "style", "image")
"""Where a run starts: white noise, the content, the (first) style, or an image passed in (``init=``)."""
INIT_COLORS = ("style", "own")
LOSS_WEIGHTS = ("content_weight", "style_weight", "tv_weight", "laplacian_weight")
"""The weight of each built-in loss term: all zero is nothing to optimise."""

# Learning rates when --learning-rate is not given. The image is optimised in RGB [0, 1] units.
# Adam's step is about lr per pixel per iteration, so 0.02 ≈ 5/255 (jcjohnson's Adam default of 10
# in Caffe's 0-255 units was too coarse for fine brushwork). SGD's step is lr × pixel count ×
# gradient (see engine); 5e-12 is where the Keras example's schedule (×0.96 every 100 steps) descends
# steadily at 128 and 256 px under the default loss weights (measured: 1.6e-8 diverges at once). The
# number is tiny because these losses are means over millions of Caffe-scale feature values. L-BFGS uses a strong-Wolfe line search, so lr 1 is the
# natural first trial step (plain L-BFGS with lr 1 and no line search diverges on these losses).
MAX_LEARNING_RATE = 1e30
"""The largest step size accepted: the optimisers work in float32 (max ~3e38); useful steps are ~0.02 (Adam), 1 (L-BFGS), ~1e-11 (SGD)."""

MAX_SIZE = 16384
"""The largest output side painterly accepts (a 16384 px square is 268 megapixels)."""

DEFAULT_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02, "sgd": 5e-12}


def _opt(help: str, **cli: Any) -> dict[str, Any]:
    return {"help": help, **cli}


@dataclass(frozen=True)
class Config:
    """Every knob of a run. Defaults reproduce the look of the published Gatys/jcjohnson examples."""

    # --- images -------------------------------------------------------------------------------
    size: int = field(default=512, metadata=_opt("longest side of the output, in pixels", metavar="PX"))
    style_scale: float = field(
        default=1.0,
        metadata=_opt("size of the style images relative to --size (smaller → finer brushwork)"),
    )
    style_blend: tuple[float, ...] | None = field(
        default=None,
        metadata=_opt(
            "weights of several style images, comma-separated (e.g. 3,7); default: equal",
            metavar="W,W,...",
        ),
    )
    max_pixels: int = field(
        default=100_000_000,
        metadata=_opt("refuse input images with more pixels than this (decompression-bomb guard)"),
    )
    # --- network ------------------------------------------------------------------------------
    weights: str = field(
        default="caffe",
        metadata=_opt(
            "VGG19 weights: caffe (original, offline), torchvision (downloaded once) or a .pth/.safetensors path",
            metavar="SOURCE",
        ),
    )
    pooling: str = field(default="max", metadata=_opt("pooling layers of the network", choices=POOLINGS))
    content_layers: tuple[str, ...] = field(
        default=("relu4_2",), metadata=_opt("layers for the content loss, comma-separated", metavar="LAYERS")
    )
    style_layers: tuple[str, ...] = field(
        default=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        metadata=_opt("layers for the style loss, comma-separated", metavar="LAYERS"),
    )
    style_layer_weights: tuple[float, ...] | None = field(
        default=None,
        metadata=_opt("multiplier of each style layer's loss, comma-separated; default: 1 each", metavar="W,W,..."),
    )
    # --- losses -------------------------------------------------------------------------------
    content_weight: float = field(default=5.0, metadata=_opt("weight of the content loss (alpha)"))
    style_weight: float = field(default=100.0, metadata=_opt("weight of the style loss (beta)"))
    tv_weight: float = field(default=1e6, metadata=_opt("weight of the total-variation smoothing loss"))
    laplacian_weight: float = field(default=0.0, metadata=_opt(
        "weight of the Laplacian loss (Li et al. 2017): the photo's edges and fine structure kept, compared "
        "on the image average-pooled by --laplacian-pools; 0: off; try 100 (docs/style-losses.md)"))
    laplacian_pools: tuple[int, ...] = field(default=(4, 16), metadata=_opt(
        "pool sizes of the Laplacian loss, comma-separated: 4 holds contours, 16 the layout", metavar="P,P,..."))
    content_loss: str = field(
        default="mse",
        metadata=_opt("content loss: mse (the paper) or cosine (direction of features only)", choices=CONTENT_LOSSES),
    )
    style_loss: str = field(default="gram", metadata=_opt(
        "style statistics matched: gram (Gatys), w2 (Wasserstein-2 between fitted Gaussians: means too), sliced (sliced "
        "Wasserstein: whole distributions along random directions) or histogram (gram plus per-channel histograms, "
        "Risser et al.); docs/style-losses.md", choices=STYLE_LOSSES))
    # --- optimisation -------------------------------------------------------------------------
    optimizer: str = field(default="lbfgs", metadata=_opt("optimiser of the image's pixels", choices=OPTIMIZERS))
    iterations: int = field(
        default=500, metadata=_opt("optimisation steps in all (split over the levels when multi-scale)")
    )
    learning_rate: float | None = field(
        default=None,
        metadata=_opt("step size; default lbfgs 1, adam 0.02, sgd 5e-12 (sgd steps are lr × pixel count × gradient)", metavar="LR"),
    )
    lr_decay: float = field(default=0.96, metadata=_opt("sgd: multiply the learning rate by this ..."))
    lr_decay_steps: int = field(default=100, metadata=_opt("... every this many steps"))
    lbfgs_history: int = field(default=100, metadata=_opt("lbfgs: number of past steps it remembers"))
    # 1.4: measured at 512 px (docs/benchmarks.md): 12–16 % fewer iterations to a given loss; 2 made the
    # line search spend extra evaluations.
    lbfgs_precondition: float = field(
        default=1.4,
        metadata=_opt(
            "lbfgs: move smooth components of the image this much faster per octave than fine detail "
            "(a smoothing preconditioner: fewer iterations to a given loss); 0: plain L-BFGS",
            metavar="S",
        ),
    )
    average: float = field(default=0.0, metadata=_opt(
        "show and save the moving average of the iterates with this decay (e.g. 0.9; bias-corrected, "
        "restarted at each level): less flicker from the optimiser; 0: off", metavar="DECAY"))
    init: str = field(
        default="content",
        metadata=_opt("starting image: noise, content, style, or image (an image passed in as init)", metavar="INIT"),
    )
    init_noise: float = field(
        default=0.0,
        metadata=_opt("blend this much white noise into a content/style/path init (0..1)"),
    )
    init_colors: str = field(
        default="style",
        metadata=_opt(
            "--init content: style (the content recoloured to the style's palette, where the optimisation "
            "heads anyway: it gets there sooner) or own (as it is); ignored with --original-colors luminance or histogram",
            choices=INIT_COLORS,
        ),
    )
    seed: int | None = field(default=None, metadata=_opt("random seed; fixes a CPU run bit for bit"))
    original_colors: str = field(
        default="off",
        metadata=_opt(
            "keep the content's colours: luminance (transfer brightness only), histogram (recolour the style first) "
            "or after (paint as usual, then take the content's colours: the plain run's strokes)",
            choices=ORIGINAL_COLORS,
        ),
    )
    color_contrast: str = field(
        default="painting",
        metadata=_opt(
            "with --original-colors luminance or histogram: whose light-dark spread the matched style keeps: painting "
            "(its own, which carries its strokes: about as painted as a plain run) or photo (Gatys et al. 2016 exactly: "
            "scaled to the photo's, which paints far less when the photo is flatter than the painting; docs/quality.md)",
            choices=COLOR_CONTRASTS,
        ),
    )
    # --- regions (spatial control: a mask, see painterly.masks and docs/masks.md) ----------------
    regions: tuple[str, ...] | None = field(
        default=None,
        metadata=_opt(
            "with a mask: what each of its colours gets, COLOR=STYLE[:WEIGHT]; COLOR a name (red, blue, ...), "
            "#rrggbb or a gray level 0-255; STYLE the number of a style image (1, 2, or 1+2 for a blend) "
            "or photo (no style: keep the photo); repeat for each colour",
            metavar="COLOR=STYLE[:WEIGHT]",
        ),
    )
    mask_propagation: str = field(
        default="avg",
        metadata=_opt(
            "how the mask reaches deeper layers: avg (average pooling) or inside (only positions whose "
            "receptive field lies inside the region; sharper borders)",
            choices=("avg", "inside"),
        ),
    )
    # --- speed --------------------------------------------------------------------------------
    multiscale: bool = field(
        default=True, metadata=_opt("optimise coarse to fine: a pyramid from --min-size up to --size")
    )
    min_size: int = field(default=128, metadata=_opt("multi-scale: size of the first level", metavar="PX"))
    keep_detail: bool = field(
        default=True,
        metadata=_opt(
            "multi-scale: start each level from the coarser result plus the fine detail of the starting "
            "image that the coarser level could not hold (off: the coarser result, upsampled)"
        ),
    )
    level_iterations: tuple[int, ...] | None = field(
        default=None,
        metadata=_opt("multi-scale: iterations per level, coarse to fine (sets the number of levels)", metavar="N,N,..."),
    )
    precision: str = field(
        default="auto",
        metadata=_opt("arithmetic: bf16 where the hardware has it (auto), or force fp32/bf16", choices=PRECISIONS),
    )
    device: str = field(default="auto", metadata=_opt("where to compute", choices=DEVICES))
    cuda_graphs: bool = field(
        default=True, metadata=_opt("on a GPU, replay each evaluation (or a batch's pass) and L-BFGS's own work as CUDA graphs (off: every kernel launched from Python)")
    )
    tile: int | None = field(
        default=None,
        metadata=_opt("evaluate by tiles of this many px (exact, memory bounded by the tile; 0: never); default: only when the image would not fit", metavar="PX"),
    )

    def __post_init__(self) -> None:
        # Normalise list-like inputs (the API accepts lists and comma strings) to tuples, then check.
        for name, conv in (
            ("content_layers", str),
            ("style_layers", str),
            ("style_blend", float),
            ("style_layer_weights", float),
            ("level_iterations", int),
            ("regions", str),
            ("laplacian_pools", int),
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_tuple(name, value, conv))
        check_int(self, "size", 1, maximum=MAX_SIZE)
        check_int(self, "iterations", 1)
        check_int(self, "max_pixels", 1)
        check_int(self, "lr_decay_steps", 1)
        check_int(self, "lbfgs_history", 1)
        check_int(self, "min_size", 16)
        if self.tile is not None:
            check_int(self, "tile", 0, maximum=MAX_SIZE)
        for name in ("multiscale", "keep_detail", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                # A JSON/API "false" string would otherwise count as true.
                raise ConfigError(f"`{name}` must be true or false, got {shown(getattr(self, name))}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ConfigError(f"`weights` must be caffe, torchvision or a path, got {shown(self.weights)}")
        if self.seed is not None and (
            not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63
        ):
            raise ConfigError(f"`seed` must be a non-negative integer below 2**63, got {shown(self.seed)}")
        for name in LOSS_WEIGHTS:
            check_float(self, name, minimum=0.0)
        check_pools(self, "laplacian_pools", "laplacian_weight")
        check_float(self, "style_scale", minimum=0.0, strict=True)
        check_float(self, "lr_decay", minimum=0.0, strict=True)
        if self.lr_decay > 1.0:
            raise ConfigError(f"`lr_decay` must be in (0, 1], got {self.lr_decay}")
        check_float(self, "init_noise", minimum=0.0)
        check_float(self, "lbfgs_precondition", minimum=0.0)
        check_float(self, "average", minimum=0.0)
        if self.average >= 1.0:
            raise ConfigError(f"`average` must be in [0, 1), got {self.average}")
        if self.init_noise > 1.0:
            raise ConfigError(f"`init_noise` must be in [0, 1], got {self.init_noise}")
        if self.learning_rate is not None:
            check_float(self, "learning_rate", minimum=0.0, strict=True)
            if self.learning_rate > MAX_LEARNING_RATE:
                # Beyond float32's range inside the optimisers, and far past any step that converges.
                raise ConfigError(f"`learning_rate` must be at most {MAX_LEARNING_RATE:g}, got {self.learning_rate:g}")
        for name, choices in (
            ("pooling", POOLINGS),
            ("content_loss", CONTENT_LOSSES),
            ("style_loss", STYLE_LOSSES),
            ("optimizer", OPTIMIZERS),
            ("original_colors", ORIGINAL_COLORS),
            ("color_contrast", COLOR_CONTRASTS),
            ("init_colors", INIT_COLORS),
            ("init", INITS),
            ("precision", PRECISIONS),
            ("device", DEVICES),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"`{name}` must be one of {', '.join(choices)}; got {shown(value)}")
        for name in ("content_layers", "style_layers"):
            layers = getattr(self, name)
            unknown = [n for n in layers if not is_layer(n)]
            if unknown:
                raise ConfigError(
                    f"`{name}`: unknown layer {shown(unknown[0])}; valid layers: {', '.join(LAYER_NAMES)}"
                )
            if len(set(layers)) != len(layers):
                raise ConfigError(f"`{name}` names a layer twice: {clip(','.join(layers))}")
        if self.content_weight > 0 and not self.content_layers:
            raise ConfigError("`content_weight` is positive but `content_layers` is empty")
        if self.style_weight > 0 and not self.style_layers:
            raise ConfigError("`style_weight` is positive but `style_layers` is empty")
        if self.tile and self.uses_style and self.style_loss in ("sliced", "histogram"):  # sorts need all positions
            raise ConfigError(
                f"`style_loss` {self.style_loss} cannot be evaluated by tiles (`tile` {self.tile}): it sorts all "
                f"positions of a layer at once; use `tile` 0 or `style_loss` gram or w2"
            )
        if not any(getattr(self, name) for name in LOSS_WEIGHTS):
            named = ", ".join(f"`{n}`" for n in LOSS_WEIGHTS[:-1]) + f" and `{LOSS_WEIGHTS[-1]}`"
            raise ConfigError(f"{named} are all zero: nothing to optimise")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(
                    f"`style_layer_weights` has {len(self.style_layer_weights)} values "
                    f"for {len(self.style_layers)} style layers"
                )
            check_all_finite("style_layer_weights", self.style_layer_weights, positive_sum=True)
        if self.style_blend is not None:
            check_all_finite("style_blend", self.style_blend, positive_sum=True)
        if self.regions is not None:
            from .masks import parse_regions

            if not self.regions:
                object.__setattr__(self, "regions", None)
            else:
                parse_regions(self.regions)  # a bad spec or a colour assigned twice fails here
        if self.mask_propagation not in ("avg", "inside"):
            raise ConfigError(f"`mask_propagation` must be one of avg, inside; got {shown(self.mask_propagation)}")
        if self.level_iterations is not None:
            if any(n < 0 for n in self.level_iterations) or sum(self.level_iterations) < 1:
                raise ConfigError(
                    f"`level_iterations` must be non-negative with a positive sum, got "
                    f"{clip(','.join(map(str, self.level_iterations)))}"
                )

    # --- derived values -------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate in effect (the optimiser's default when none was given)."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.optimizer]

    @property
    def uses_content(self) -> bool:
        """Whether the run has a content loss (``content_weight`` > 0 and some ``content_layers``)."""
        return self.content_weight > 0 and bool(self.content_layers)

    @property
    def uses_style(self) -> bool:
        """Whether the run has a style loss (``style_weight`` > 0 and some ``style_layers``)."""
        return self.style_weight > 0 and bool(self.style_layers)

    @property
    def uses_laplacian(self) -> bool:
        """Whether the run has the Laplacian loss (``laplacian_weight`` > 0; it needs the content)."""
        return self.laplacian_weight > 0

    @property
    def layers_needed(self) -> tuple[str, ...]:
        """Every layer whose output some loss reads."""
        names: list[str] = []
        if self.uses_content:
            names += self.content_layers
        if self.uses_style:
            names += [n for n in self.style_layers if n not in names]
        return tuple(names)

    @classmethod
    def for_mode(cls, mode: str, **options: Any) -> "Config":
        """A config for one of the modes, with that mode's defaults under ``options``.

        * ``stylize`` — content + style (the field defaults above);
        * ``texture`` — style reconstruction from white noise, style loss only (seed document 002);
        * ``reconstruct`` — content reconstruction from white noise, content loss only, from one layer
          (Gatys et al., fig. 1); no smoothing, so that what the layer keeps is what you see;
        * ``demo`` — ``stylize`` for the built-in pair (``painterly demo``): its size, a short budget.
        """
        if mode not in MODE_DEFAULTS:
            raise ConfigError(f"unknown mode {shown(mode)}; use one of {', '.join(MODE_DEFAULTS)}")
        merged = {**MODE_DEFAULTS[mode], **{k.replace("-", "_"): v for k, v in options.items()}}
        return cls.from_mapping(merged)

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (validated again); names as in :meth:`from_mapping`."""
        return dataclasses.replace(self, **_fields_of(changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Config":
        """Build from option names as the CLI spells them (``style-weight``) or as fields (``style_weight``).

        Unknown names are a :class:`ConfigError` (a typo should never be silently ignored).
        """
        try:
            return cls(**_fields_of(values))
        except TypeError as exc:  # e.g. a value of a type that cannot be compared
            raise ConfigError(str(exc)) from None


def _fields_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` keyed by field names (``style-weight`` → ``style_weight``); an unknown name is a ConfigError."""
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = [k for k in values if str(k).replace("-", "_") not in names]
    if unknown:
        raise ConfigError(f"unknown option {shown(unknown[0])}")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "stylize": {},
    # Texture: no level below 256 px. At 128 px relu5_1 has fewer positions (~40) than channels
    # (512), so matching its Gram matrix pins down the layout and the "texture" comes out as a copy
    # of the painting (seen with starry_night); from 256 px up the result is a rearranged texture.
    "texture": {"content_weight": 0.0, "content_layers": (), "init": "noise", "min_size": 256},
    # Reconstruct: plain L-BFGS. Rebuilding a photo from relu4_2 alone (no TV) from noise went worse
    # with the smoothing preconditioner (tubingen, 256 px: 1.3× the loss after 40 iterations at 1.4,
    # ~8 % better at 0.7), and this mode is for seeing the paper's algorithm as it is.
    "reconstruct": {"style_weight": 0.0, "style_layers": (), "init": "noise", "tv_weight": 0.0, "lbfgs_precondition": 0.0},
    # Demo: stylize the built-in pair at the photo's own size (assets/demo_content.jpg is 451×300: no
    # upscaling), three levels like the default run's (451 // 4 = 112 px first), and 200 iterations:
    # under a minute of optimisation on the slower of the 2-core hosts (docs/benchmarks.md, "The demo's
    # budget": the measured curve, 200 / 300 / 400 iterations).
    "demo": {"size": 451, "min_size": 112, "iterations": 200},
}
"""Each mode's departures from the field defaults (the user's options override them)."""
