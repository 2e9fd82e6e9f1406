"""The commands behind ``painterly``: each checks its files, loads its inputs through the one way in
(:func:`painterly.api.load_inputs`), and hands the run to :class:`~painterly.cli.runner.CommandRun`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, ImageError, PainterlyError, shown
from . import say
from .outputs import OutputFiles, OutputOptions


def run_command(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from ..web import serve

        return serve(host=args.host, port=args.port, workdir=args.workdir, keep=args.keep, resume_interrupted=args.resume_interrupted)
    if args.command == "resume":
        return _resume(args)
    if args.command == "batch":
        from .batch import run_batch

        return run_batch(args)
    if args.command == "video":
        from .video import run_video

        return run_video(args)
    if args.command == "info":
        from .info import environment_report

        for key, value in environment_report():
            print(f"{key}: {value}")
        return 0
    return _run_mode(args)


# --- setting a run up ------------------------------------------------------------------------------


def _check_output(output: str, inputs: Sequence[str | None]) -> Path:
    """Fail before any work if the output cannot be what the user wants (bad extension, an input,
    a directory, or a file standing where its folder would have to be created)."""
    from ..imageio import output_format, same_file

    path = Path(output)
    output_format(path)
    if path.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file name such as {Path(output) / 'out.png'}")
    if path.is_file() and not os.stat(path).st_mode & 0o222:
        # Replacing it would work (the folder is writable) but the user marked it as not to be changed.
        raise ConfigError(f"{output}: is read-only; refusing to replace it (choose another name, or make it writable)")
    for source in inputs:
        if source and same_file(path, source):
            raise ConfigError(f"{output}: output is the same file as the input {source}; refusing to overwrite it")
    _check_parent(path, output)
    return path


def _check_parent(path: Path, label: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory (the rest is created on save)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{label}: cannot create its folder: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        # Found now, not after an hour of optimisation.
        raise ConfigError(f"{label}: cannot write there: permission denied on {parent}")


def _check_side_files(files: OutputFiles, outputs: OutputOptions, inputs: Sequence[str]) -> None:
    """The files written beside the output (intermediates, the image kept on Ctrl-C or divergence,
    the checkpoint) must not land on an input either."""
    from ..imageio import same_file

    for source in inputs:
        clash = next((d for d in files.derived if same_file(d, source)), None)
        if clash is None and outputs.save_every and files.is_numbered(Path(source).name):
            if same_file(files.output.with_name(Path(source).name), source):
                clash = Path(source)
        if clash is not None:
            raise ConfigError(
                f"{files.output}: this run may write {clash}, which is the input {source}; choose another output name"
            )


def _check_unfinished(files: OutputFiles, outputs: OutputOptions, resuming: Path | None = None) -> None:
    """A checkpoint beside the output is an interrupted run's work (a finished run removes its own):
    a run with --checkpoint-every would replace it, so it is left to the user to continue or remove
    (unless it is the checkpoint this run continues, ``resuming``)."""
    from ..imageio import same_file

    if outputs.checkpoint_every and files.checkpoint.exists() and not (resuming is not None and same_file(files.checkpoint, resuming)):
        raise ConfigError(
            f"{files.checkpoint}: holds an unfinished run; continue it with: painterly resume {files.checkpoint} "
            "(or remove it, or choose another output name, to start over)"
        )


def _check_log(log: str | None, output: Path, inputs: Sequence[str], name: str = "log", example: str = "losses.jsonl") -> None:
    """--log (or --plot) must be a file we may (re)write: not an input, not the output, not a directory."""
    from ..imageio import same_file

    if log is None:
        return
    if any(same_file(log, p) for p in inputs):
        raise ConfigError(f"`{name}` {log}: is one of the input images; refusing to overwrite it")
    if same_file(log, output):
        raise ConfigError(f"`{name}` {log}: is the output image; give the {name} its own file name")
    if Path(log).is_dir():
        raise ConfigError(f"`{name}` {log}: is a directory; give a file name such as {Path(log) / example}")
    _check_parent(Path(log), f"`{name}` {log}")


def _check_plot(outputs: OutputOptions, output: Path, inputs: Sequence[str]) -> None:
    from ..imageio import same_file

    _check_log(outputs.plot, output, inputs, "plot", "losses.png")
    if outputs.plot is not None and outputs.log is not None and same_file(outputs.plot, outputs.log):
        raise ConfigError(f"`plot` {outputs.plot}: is the loss log; give the plot its own file name")
    files = OutputFiles(output)
    for name, path in (("log", outputs.log), ("plot", outputs.plot)):
        if path is None:
            continue
        # One file written twice by the same run: an image saved over the log (its lines lost), or the
        # plot over an intermediate image.
        clash = next((d for d in files.derived if same_file(d, path)), None)
        if clash is None and outputs.save_every and files.is_numbered(Path(path).name) and same_file(Path(path).parent, output.parent):
            clash = Path(path)
        if clash is not None:
            raise ConfigError(f"`{name}` {path}: this run writes {clash} itself; give the {name} its own file name")


def _inputs_exist(paths: Sequence[str]) -> None:
    for p in paths:
        if not Path(p).exists():
            raise ImageError(f"{p}: no such file")


def _run_mode(args: argparse.Namespace) -> int:
    try:
        return _set_up_and_run(args)
    except OSError as exc:
        # A check of the files by name that the system refused (a folder without execute permission):
        # one line, like every other bad input.
        where = exc.filename if exc.filename is not None else "a file"
        raise ImageError(f"{where}: {exc.strerror or exc}") from None


def _set_up_and_run(args: argparse.Namespace) -> int:
    from ..api import load_inputs
    from ..config import INITS, Config
    from .options import config_options, output_options

    options = config_options(args)
    outputs = output_options(args)
    mode = args.command
    if mode == "demo":
        from ..demo import demo_images

        content, styles = demo_images()
    elif mode == "texture":
        content, styles = None, list(args.styles)
    elif mode == "reconstruct":
        from ..layers import LAYER_NAMES, is_layer

        if not is_layer(args.layer):
            raise ConfigError(f"--layer: unknown layer {shown(args.layer)}; valid layers: {', '.join(LAYER_NAMES)}")
        content, styles = args.content, []
        options["content_layers"] = (args.layer,)
    else:
        content, styles = args.content, list(args.styles)
    # --init takes a kind or the path of an image: a path means the kind "image", started from that file.
    init_path = None
    if "init" in options and options["init"] not in INITS:
        init_path, options["init"] = options["init"], "image"

    mask = getattr(args, "mask", None)
    style_masks = None
    if options.get("regions"):
        options["regions"] = _styles_by_number(options["regions"], styles)
    if getattr(args, "style_masks", None):
        style_masks = _style_masks(args.style_masks, len(styles))
    config = Config.for_mode(mode, **options)
    extra = [mask, *(style_masks or [])]
    named_inputs = [str(x) for x in [content, *styles, init_path, *extra] if isinstance(x, (str, os.PathLike))]
    files = OutputFiles(_check_output(args.output, named_inputs))
    _check_side_files(files, outputs, named_inputs)
    _check_unfinished(files, outputs)
    _check_log(outputs.log, files.output, named_inputs)
    _check_plot(outputs, files.output, named_inputs)
    if init_path is not None and not Path(init_path).exists():
        raise ImageError(f"`init` {init_path}: no such file (use noise, content, style or the path of an image)")
    _inputs_exist(named_inputs)
    try:
        inputs = load_inputs(config, content, styles, init_path, mask=mask, style_masks=style_masks)
    except ConfigError as exc:
        if args.command not in ("texture", "reconstruct"):
            raise
        missing = "content" if args.command == "texture" else "style"
        raise ConfigError(f"{exc.template} (the {args.command} command takes no {missing} image)") from None
    status = _execute(config, inputs, files, outputs, args)
    if args.command == "demo" and status == 0 and not args.quiet:
        import shlex

        say(
            f"painterly: the demo image is {files.output.resolve()}; your own photo at full quality: "
            f"painterly YOUR_PHOTO.jpg {shlex.quote(str(styles[0]))} -o out.png"
        )
    return status


def _styles_by_number(specs: Sequence[str], styles: list) -> list[str]:
    """``--region COLOR=PATH[:WEIGHT]``: a style given by its path becomes its number (added to the
    styles when it is not one of them already)."""
    from ..imageio import same_file
    from ..masks import PHOTO_WORDS

    out = []
    for spec in specs:
        color, sep, rest = spec.partition("=")
        style, weight = rest, ""
        head, colon, tail = rest.rpartition(":")
        if colon and _is_number(tail):
            style, weight = head, colon + tail
        if not sep or style.strip().lower() in PHOTO_WORDS or all(p.strip().isdigit() for p in style.split("+")):
            out.append(spec)
            continue
        if not Path(style).exists():
            raise ConfigError(f"`regions` {spec}: {style} is neither the number of a style image nor an image file")
        index = next((i for i, s in enumerate(styles) if isinstance(s, (str, os.PathLike)) and same_file(s, style)), None)
        if index is None:
            styles.append(style)
            index = len(styles) - 1
        out.append(f"{color}={index + 1}{weight}")
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _style_masks(specs: Sequence[str], n_styles: int) -> list:
    """``--style-mask N=PATH`` (repeated) → one entry per style image (``None`` where none)."""
    masks: list = [None] * n_styles
    for spec in specs:
        number, sep, path = spec.partition("=")
        if not sep or not number.strip().isdigit() or not 1 <= int(number) <= n_styles:
            raise ConfigError(f"--style-mask {spec}: expected N=MASK.png with N the number of a style image (1..{n_styles})")
        masks[int(number) - 1] = path
    return masks


def _metadata(config) -> dict[str, str]:  # noqa: ANN001
    from .. import __version__

    return {"Software": f"painterly {__version__}", "painterly:config": json.dumps(config.to_dict(), sort_keys=True)}


def _execute(config, inputs, files: OutputFiles, outputs: OutputOptions, args, state=None, resumed_from=None) -> int:  # noqa: ANN001
    from ..engine import Run, StyleTransfer
    from .runner import CommandRun

    quiet = getattr(args, "quiet", False)
    download_bar = _DownloadBar(quiet)
    transfer = StyleTransfer(config, weights_progress=download_bar)
    download_bar.close()
    run = transfer.start(inputs) if state is None else Run(transfer, inputs, state)
    return CommandRun(run, files, outputs, _metadata(config), quiet=quiet, resumed_from=resumed_from).execute()


def _resume(args: argparse.Namespace) -> int:
    """Continue a checkpointed run. Everything it writes goes next to the checkpoint, or where ``-o``
    and ``--log`` say now: never to a path stored in the checkpoint itself."""
    import torch

    from ..config import INITS, Config
    from ..engine import Inputs, RunState

    path = Path(args.checkpoint)
    from .video import MANIFEST

    if path.is_dir() and (path / MANIFEST).is_file():
        from .video import resume_video

        return resume_video(path, args)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        data = saved["run"]
        options = dict(data["config"])
        if options.get("init") not in INITS:  # written when --init held a path: the image is in the checkpoint
            options["init"] = "image"
        config = Config.from_mapping(options)
        kept = saved.get("outputs") or {}
        log_name = kept.get("log")
        outputs = OutputOptions(
            save_every=kept.get("save_every", 0),
            checkpoint_every=kept.get("checkpoint_every", 0),
            log=args.log if args.log is not None else (str(path.parent / Path(str(log_name)).name) if log_name else None),
            plot=str(path.parent / Path(str(kept["plot"])).name) if kept.get("plot") else None,
        )
        output = Path(args.output) if args.output else path.parent / Path(str(saved["output"])).name
        inputs = Inputs.from_dict(config, data)
        state = RunState.from_dict(data)
    except PainterlyError as exc:
        raise ConfigError(f"{path}: damaged checkpoint: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not a painterly checkpoint, or a damaged one ({type(exc).__name__})") from None
    files = OutputFiles(_check_output(str(output), []))
    _check_unfinished(files, outputs, resuming=path)
    _check_log(outputs.log, output, [])
    _check_plot(outputs, output, [])
    if not args.quiet:
        writes = [str(output)] + [f"log {outputs.log}"] * bool(outputs.log) + [f"checkpoints {files.checkpoint}"] * bool(outputs.checkpoint_every)
        say(f"painterly: resuming {path} at iteration {state.iteration}; writing {', '.join(writes)}")
    return _execute(config, inputs, files, outputs, args, state=state, resumed_from=path)


class _DownloadBar:
    """A progress bar for a weight download (only ever drawn if a download happens)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="downloading VGG19 weights", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
