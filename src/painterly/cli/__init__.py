"""The ``painterly`` command: parse → config → API → save.

    painterly CONTENT STYLE [STYLE ...] -o OUT [options]     stylise (also: painterly stylize ...)
    painterly texture STYLE [STYLE ...] -o OUT [options]     style reconstruction from noise
    painterly reconstruct CONTENT --layer relu3_1 -o OUT     content reconstruction from one layer
    painterly video IN STYLE [STYLE ...] -o OUT [options]    a video, frame by frame, temporally consistent
    painterly demo [-o OUT] [options]                        the built-in pair, offline
    painterly batch --content ... --style ... -o DIR          many images, resumable, a contact sheet
    painterly resume CHECKPOINT [-o OUT]                     continue a checkpointed run
    painterly serve [--host 127.0.0.1] [--port 8000]         the local web studio
    painterly info                                           versions, device, precision, allocator

Errors are one line on stderr with exit status 2 (bad usage or input) or 1 (failure at run time);
``--debug`` shows tracebacks. Ctrl-C / SIGTERM / SIGHUP stop cleanly, keep the image so far, and exit
130 / 143 / 129 (cli/signals.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from typing import Mapping, Sequence

from .. import __version__
from ..errors import PainterlyError

COMMANDS = ("stylize", "texture", "reconstruct", "video", "demo", "batch", "resume", "serve", "info")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2 (not a usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


EXAMPLES = """\
examples:
  painterly demo                                    the built-in pair, in about a minute (painterly-demo.png)
  painterly photo.jpg starry_night.jpg -o out.png   your photo in a painting's style, full quality
"""


def build_parser() -> argparse.ArgumentParser:
    from .options import IO, add_config_options, option_groups

    parser = _Parser(
        prog="painterly",
        description="Neural style transfer (Gatys et al.): paint a photo in the style of a painting.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            EXAMPLES + "\n"
            "A bare `painterly CONTENT STYLE... -o OUT` means `painterly stylize ...`.\n"
            "Run `painterly COMMAND --help` for the options of each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"painterly {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def common(
        p: argparse.ArgumentParser, mode: str, output: dict | None, skip: Sequence[str] = (), helps: Mapping[str, str | None] | None = None
    ) -> None:
        """The options every run command takes; ``output``: the ``-o`` argument (None: the command adds
        its own); ``helps``: the command's own help of a field (``None``: taken, but not in --help)."""
        groups = option_groups(p)
        if output is not None:
            groups[IO].add_argument("-o", "--output", **output)
        add_config_options(p, mode, skip=skip, groups=groups, helps=helps)
        groups[IO].add_argument("--quiet", "-q", action="store_true", help="no progress output")
        p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    image = {"required": True, "help": "output image; its extension sets the format"}
    p = sub.add_parser("stylize", help="paint CONTENT in the style of STYLE (the default command)", description="Paint CONTENT in the style of one or more STYLE images.")
    p.add_argument("content", help="content image (JPEG, PNG, WebP, BMP, TIFF)")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended (see --style-blend)")
    common(p, "stylize", image)
    _add_mask_options(p)

    p = sub.add_parser("texture", help="synthesise a texture from STYLE (style loss only, from noise)", description="Style reconstruction: white noise optimised to match the style's Gram matrices only.")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    common(p, "texture", {**image, "help": "output image"}, skip=("regions", "mask_propagation", "content_weight", "content_loss", "content_layers", "original_colors", "color_contrast", "init_colors", "laplacian_weight", "laplacian_pools"))

    p = sub.add_parser("reconstruct", help="reconstruct CONTENT from one layer's features", description="Content reconstruction from white noise using one layer's features (Gatys et al., fig. 1).")
    p.add_argument("content", help="content image")
    p.add_argument("--layer", default="relu3_1", help="the layer to reconstruct from (default: relu3_1)")
    common(p, "reconstruct", {**image, "help": "output image"}, skip=("regions", "mask_propagation", "style_weight", "style_layers", "style_layer_weights", "style_scale", "style_blend", "original_colors", "color_contrast", "init_colors", "content_layers", "style_loss"))

    from .video import add_video_parser

    add_video_parser(sub, common)

    p = sub.add_parser(
        "demo", help="stylise the built-in demo pair (offline, about a minute)",
        description="Stylise the built-in photo with the built-in painting, at the photo's own size, with a short iteration budget.",
    )
    common(p, "demo", {"default": "painterly-demo.png", "help": "output image (default: painterly-demo.png)"})
    _add_mask_options(p)

    from .batch import add_batch_parser

    add_batch_parser(sub, common)

    p = sub.add_parser("resume", help="continue a run from its checkpoint", description="Continue a run saved with --checkpoint-every.")
    p.add_argument("checkpoint", help="checkpoint file written by --checkpoint-every, or the frames folder of `painterly video`")
    p.add_argument("-o", "--output", help="output image, or video for a frames folder (default: the original run's name, next to the checkpoint)")
    p.add_argument("--log", default=None, metavar="FILE.jsonl", help="continue the loss log here (default: the original log's name, next to the checkpoint)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("serve", help="start the local web studio", description="Start the local web studio.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workdir", default=None, help="where results are kept (default: a folder in the user cache)")
    p.add_argument("--keep", type=int, default=None, metavar="N", help="finished jobs kept in the gallery; older ones are deleted (default: 200)")
    p.add_argument("--resume-interrupted", action="store_true", help="run again the jobs a previous server left interrupted (default: each waits for its Resume button)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("info", help="show versions, device, precision, allocator and weight cache", description="Show what this installation runs on: versions, device and precision chosen by `auto`, threads, memory allocator, weight cache.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return parser


def _add_mask_options(p: argparse.ArgumentParser) -> None:
    from .options import IO

    group = next(g for g in p._action_groups if g.title == IO)  # a mask is an input
    group.add_argument("--mask", metavar="MASK.png", help="colour-coded (or grayscale) image the content's shape: which part gets which style (see --region)")
    group.add_argument(
        "--style-mask", action="append", metavar="N=MASK.png", dest="style_masks",
        help="grayscale image over style image N: take its style only from the white part (repeat for each)",
    )  # fmt: skip


def say(line: str) -> None:
    """One line to stderr. A terminal or pipe that has gone (the ssh session closed, ``2>&1 | head``)
    is ignored: what the run writes to files matters more than its words."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # ValueError: the stream was closed
        pass


def close_bar(bar: object) -> None:
    """Close a tqdm bar (or ``None``) whose terminal may have gone: closing then raises, and must not."""
    if bar is not None:
        try:
            bar.close()  # type: ignore[attr-defined]
        except (OSError, ValueError):
            pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    from ..errors import PainterlyWarning, render_fields

    text = message.render(flag) if isinstance(message, PainterlyWarning) else render_fields(str(message), flag)
    say(f"painterly: note: {text}")


def main(argv: Sequence[str] | None = None) -> int:
    from .allocator import maybe_reexec

    # First, before torch is imported: run as the `painterly` command, re-exec once under tcmalloc
    # if it is installed (≈ 13 % faster CPU runs, see cli/allocator.py); never when called from Python.
    maybe_reexec(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    # `painterly --debug info`: every command takes --debug, so it may come first, as git's options do.
    leading_debug = len(argv) > 1 and argv[0] == "--debug"
    if leading_debug:
        argv.pop(0)
    # `painterly CONTENT STYLE -o OUT` is `painterly stylize ...`.
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "stylize")
    if leading_debug:
        argv.insert(1, "--debug")
    debug = "--debug" in argv
    old_showwarning = warnings.showwarning
    warnings.showwarning = _show_warning
    old_handlers: dict[int, object] = {}
    try:
        args = parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return 2
        from .commands import run_command

        if args.command != "serve":  # the server handles its own shutdown
            from .signals import STOP_SIGNALS

            # SIGTERM or SIGHUP before (or after) the run itself ends the command like Ctrl-C does:
            # temporary files are removed on the way out, and the exit status is 128 + the signal.
            # During the run, signals.Signals stops it cleanly instead.
            for sig in STOP_SIGNALS:
                if sig != signal.SIGINT:  # Ctrl-C is Python's KeyboardInterrupt already
                    old_handlers[sig] = _set_signal(sig, _raise_interrupted)
        return run_command(args)
    except PainterlyError as exc:
        if debug:
            raise
        sys.stderr.write(f"painterly: error: {_one_line(exc.render(flag))}\n")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        say(f"painterly: {'interrupted' if signum == signal.SIGINT else 'terminated'}")
        return 128 + signum
    except SystemExit:
        raise
    except MemoryError:
        if debug:
            raise
        sys.stderr.write("painterly: error: out of memory; try a smaller --size\n")
        return 1
    except Exception as exc:  # a bug, not a user error: still one line unless --debug
        if isinstance(exc, BrokenPipeError) and _output_gone():
            # The reader of our output has gone (`painterly info | head -1`): end quietly, as a Unix tool does.
            return 128 + signal.SIGPIPE
        if debug:
            raise
        sys.stderr.write(
            f"painterly: internal error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)\n"
        )
        return 1
    finally:
        warnings.showwarning = old_showwarning
        for sig, old in old_handlers.items():
            if old is not None:
                _set_signal(sig, old)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as a namespace (``command``: the command's name, or None).

    A command's arguments are parsed by its own parser, intermixed: a style image added after the
    options (``painterly photo.jpg a.jpg --size 256 b.jpg -o out.png``) is a second style, and an
    option the command does not take is reported with the command's name and its --help.
    """
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        return parser.parse_args(argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = commands.choices[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


def flag(field: str) -> str:
    """How the command line spells a config field: ``style_blend`` → ``--style-blend``."""
    if field == "regions":  # given once per colour
        return "--region"
    return "--" + field.replace("_", "-")


def _raise_interrupted(signum: int, frame: object) -> None:
    from .signals import Interrupted

    raise Interrupted(signum)


def _set_signal(signum: int, handler):  # noqa: ANN001, ANN202
    """Install a handler; returns the old one, or None where that is impossible (not the main thread)."""
    try:
        return signal.signal(signum, handler)
    except ValueError:
        return None


def _output_gone() -> bool:
    """Whether stdout or stderr is a pipe whose reader has gone; if so, it is pointed at /dev/null so
    that nothing else (the interpreter's own flush at exit) fails on it again."""
    import os
    import select

    if not hasattr(select, "poll"):  # Windows: no way to ask; a broken pipe stays an internal error
        return False
    gone = False
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poll = select.poll()
            poll.register(fd, select.POLLOUT)
            broken = any(events & select.POLLERR for _, events in poll.poll(0))  # a pipe's reader gone: POLLERR
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture): not a pipe of ours
            continue
        if broken:
            gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    return gone


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 1000 else text[:997] + "..."
