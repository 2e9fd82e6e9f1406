"""``painterly video IN STYLE [STYLE ...] -o OUT``: a clip stylised frame by frame with the temporal
method (painterly.video.sequence), resumable frame by frame.

Every finished frame is written at once (atomically) to a frames folder beside the output
(``out.mp4.frames/frame_000001.png`` ...; when OUT is a folder, the frames go there), with a small
manifest of the settings (the names: video.clip.FrameFolder). Running the same command again, or
``painterly resume out.mp4.frames``, continues at the first unfinished frame; the video is assembled
from the frames at the end, and then the frames folder is removed (``--keep-frames`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, ImageError, PainterlyError
from . import close_bar, say
from ..video.clip import FrameFolder
from .outputs import OutputFiles
from .video_manifest import MANIFEST_VERSION, agree_with_manifest, same_version

MANIFEST = FrameFolder.MANIFEST

def add_video_parser(sub: Any, common: Callable[..., None]) -> None:
    from ..video import TEMPORAL_WEIGHT  # torch-free: the parser is built for every command

    p = sub.add_parser(
        "video",
        help="stylise a video (or a folder of frames) with temporal consistency",
        description=(
            "Stylise every frame of IN in the style of STYLE, each frame started from the previous "
            "result warped by the optical flow and held near it by a temporal loss (Ruder et al. 2016). "
            "Finished frames are kept in OUT.frames/ until the video is written; run the same command again to continue."
        ),
    )
    p.add_argument("input", help="video file (mp4, mov, mkv, webm, gif, avi ...), folder of frames, or a pattern such as 'frames/*.png'")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    group = p.add_argument_group("video")
    group.add_argument("--temporal-weight", type=float, default=None, metavar="W", help=f"weight of the temporal loss (0: off; default: {TEMPORAL_WEIGHT:g})")
    group.add_argument("--frame-iterations", type=int, default=None, metavar="N", help="iterations of each frame after the first (default: a fifth of --iterations)")
    group.add_argument("--long-term", action="store_true", default=None, help="also hold each frame near frames i-2 and i-4 (long-term consistency)")
    group.add_argument(
        "--flow-ahead", type=int, default=None, metavar="N",
        help="compute the optical flow of up to N next frames in a background thread while a frame is stylised (0: inline; default: 4 on a GPU, 0 on the CPU)",
    )
    group.add_argument("--start", type=_seconds("--start"), default=None, metavar="TIME", help="begin this far into the clip: seconds, or M:SS (default: 0)")
    group.add_argument(
        "--duration", type=_seconds("--duration"), default=None, metavar="TIME",
        help="stylise only this long a piece from --start (default: to the end): try a few seconds before the whole clip",
    )
    group.add_argument("--keep-frames", action="store_true", help="keep the folder of stylised frames (OUT.frames/) after the video is written")
    output = {"required": True, "help": "output video (.mp4 .m4v .mov .mkv .webm .gif .avi) or a folder for the frames"}
    # Two output options mean something else here: --save-every counts frames (the video so far is
    # written to OUT every N frames), and --checkpoint-every is refused in one line (the frames are
    # the checkpoints), so it is kept out of the help.
    helps = {"save_every": "also write the video so far to OUT every N frames (0: never)", "checkpoint_every": None}
    common(p, "stylize", output, skip=("plot", "regions", "mask_propagation"), helps=helps)


def run_video(args: argparse.Namespace) -> int:
    from ..config import INITS, Config
    from ..video.frames import is_folder_output, probe
    from ..video.sequence import VideoSettings
    from .options import config_options, output_options

    options = config_options(args)
    outputs = output_options(args)
    if outputs.checkpoint_every:
        raise ConfigError("`checkpoint_every` is not used by video: every finished frame is kept in the frames folder")
    init_path = None
    if "init" in options and options["init"] not in INITS:
        init_path, options["init"] = options["init"], "image"
        if not Path(init_path).is_file():
            raise ImageError(f"`init` {init_path}: no such file (use noise, content, style or the path of an image)")
    config = Config.for_mode("stylize", **options)
    settings = VideoSettings(
        **{k: v for k, v in (("temporal_weight", args.temporal_weight), ("frame_iterations", args.frame_iterations), ("long_term", args.long_term)) if v is not None}
    )
    if args.flow_ahead is not None:
        from ..video.ahead import check_flow_ahead

        check_flow_ahead(args.flow_ahead)
    for style in args.styles:
        if not Path(style).is_file():
            raise ImageError(f"{style}: no such file")
    info = probe(args.input, max_pixels=config.max_pixels)  # not a video, no frames: one line, before anything is written
    info.frame_range(args.start or 0.0, args.duration)  # a start past the end: refused before anything is written
    output = Path(args.output)
    as_folder = is_folder_output(output) and not output.is_file()
    folder = output if as_folder else OutputFiles(output).frames
    inputs = [args.input, *args.styles, *([init_path] if init_path else [])]
    _check_target(output, folder, inputs, as_folder)
    _check_log_file(outputs.log, output, inputs)
    plan = {
        "version": MANIFEST_VERSION,
        "input": str(Path(args.input).absolute()),
        "styles": [str(Path(s).absolute()) for s in args.styles],
        "init": str(Path(init_path).absolute()) if init_path else None,
        "output": str(output.absolute()),
        "config": config.to_dict(),
        "video": {"temporal_weight": settings.temporal_weight, "frame_iterations": settings.frame_iterations, "long_term": settings.long_term},
        "range": {k: v for k, v in (("start", args.start), ("duration", args.duration)) if v is not None},
        "save_every": outputs.save_every,
        "keep_frames": bool(args.keep_frames),
        # Only a folder painterly made is removed at the end (one holding nothing but a first manifest
        # write cut short was made by the run that was killed writing it).
        "made_folder": not folder.exists() or (folder.is_dir() and any(folder.iterdir()) and FrameFolder(folder).is_empty()),
    }
    fresh = not FrameFolder(folder).manifest.is_file()
    plan = agree_with_manifest(folder, plan)
    try:
        return _execute(plan, folder, as_folder, info, outputs.log, args)
    except BaseException:
        # Refused before its first frame (a bad style image, device or --log): the manifest just
        # written would only block the corrected command with "other settings", so it goes again.
        if fresh and FrameFolder(folder).finished() == 0:
            FrameFolder(folder).remove(0, folder_too=bool(plan.get("made_folder")))
        raise


def resume_video(folder: Path, args: argparse.Namespace) -> int:
    """``painterly resume OUT.frames``: continue the clip its manifest describes."""
    from ..imageio import DEFAULT_MAX_PIXELS
    from ..video.frames import is_folder_output, probe

    try:
        plan = json.loads(FrameFolder(folder).manifest.read_text(encoding="utf-8"))
        assert isinstance(plan, dict) and isinstance(plan.get("version"), int)
    except Exception:  # noqa: BLE001
        raise ConfigError(f"{folder}: damaged video manifest {MANIFEST}") from None
    same_version(folder, plan)
    output = Path(plan["output"]) if args.output is None else Path(args.output)
    plan["output"] = str(output.absolute())
    info = probe(plan["input"], max_pixels=int(plan["config"].get("max_pixels") or DEFAULT_MAX_PIXELS))
    as_folder = output.absolute() == folder.absolute()
    inputs = [plan["input"], *plan["styles"], *([plan["init"]] if plan.get("init") else [])]
    if args.output is not None and not as_folder:
        if is_folder_output(output) and not output.is_file():
            raise ConfigError(f"{output}: resume writes the video file (give a name such as clip.mp4); the frames stay in {folder}")
        _check_target(output, folder, inputs, False)
    _check_log_file(args.log, output, inputs)
    return _execute(plan, folder, as_folder, info, args.log, args)


def _check_target(output: Path, folder: Path, inputs: list[str], as_folder: bool) -> None:
    """Fail before any work if OUT (or its frames folder) cannot be written, or would replace what the
    user has: ``inputs`` are the clip (first), the styles and the init image."""
    from ..imageio import same_file
    from ..video.writing import check_video_output
    from .commands import _check_parent

    source = inputs[0]
    if any(c in str(output) for c in "*?"):
        # A pattern reads frames; written, it became a folder named '*.png'.
        raise ConfigError(f"{output}: a pattern names frames to read; for the frames out give a folder such as {_folder_hint(output)}")
    if not as_folder:
        check_video_output(output)
        if output.is_dir():
            raise ConfigError(f"{output}: is a directory; give a video file name or a folder ending in /")
        if same_file(output, source):
            raise ConfigError(f"{output}: output is the same file as the input; refusing to overwrite it")
        clash = next((p for p in inputs[1:] if same_file(output, p)), None)
        if clash is not None:
            raise ConfigError(f"{output}: output is the same file as the input {clash}; refusing to overwrite it")
        if output.is_file() and not os.stat(output).st_mode & 0o222:
            # Replacing it would work (the folder is writable) but the user marked it as not to be changed.
            raise ConfigError(f"{output}: is read-only; refusing to replace it (choose another name, or make it writable)")
        _check_parent(output, str(output))
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file, not a folder for the frames")
    if folder.is_dir():
        if Path(source).absolute() == folder.absolute():
            raise ConfigError(f"{folder}: the output folder is the input folder; refusing to write into it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{folder}: cannot write there: permission denied")
        if not FrameFolder(folder).manifest.is_file() and not FrameFolder(folder).is_empty():
            raise ConfigError(f"{folder}: is a folder with other files in it; give an empty or new folder")
    else:
        _check_parent(folder / "x", str(folder))


def _folder_hint(output: Path) -> str:
    parent = Path(str(output)).parent
    return "styled/" if str(parent) == "." else f"{parent}/"


def _check_log_file(log: str | None, output: Path, inputs: list[str]) -> None:
    """--log must not replace the clip, a style or the init (it is opened, truncated, before the first frame)."""
    from ..video.frames import frame_files, is_frame_folder
    from .commands import _check_log

    if log is None:
        return
    clip = inputs[0]
    frames = [str(p) for p in frame_files(clip)] if is_frame_folder(clip) and not Path(clip).is_file() else []
    _check_log(log, output, [*inputs, *frames])


class _NoRun:
    def stop(self) -> None:
        pass


def _execute(plan: dict[str, Any], folder: Path, as_folder: bool, info: Any, log: str | None, args: argparse.Namespace) -> int:
    from ..config import Config
    from ..engine import StyleTransfer
    from ..imageio import load_image, save_image
    from ..video.frames import read_frames
    from ..video.ahead import check_flow_ahead
    from ..video.clip import piece_frames, unfinished
    from ..video.sequence import ClipStyler, VideoSettings
    from .commands import _DownloadBar
    from .signals import Signals, signal_name

    quiet = getattr(args, "quiet", False)
    config = Config.from_mapping(plan["config"])
    settings = VideoSettings(**plan["video"])
    output = Path(plan["output"])
    save_every = int(plan.get("save_every") or 0)
    flow_ahead = getattr(args, "flow_ahead", None)  # not a setting of the result: not in the manifest
    if flow_ahead is not None:
        check_flow_ahead(flow_ahead)
    frames = FrameFolder(folder)
    if not as_folder and frames.finish_assembled(plan, output):  # killed while removing a written clip's frames
        if not quiet:
            say(f"painterly: wrote {output} (assembled before the command was stopped; its frames removed now)")
        return 0
    download_bar = _DownloadBar(quiet)
    transfer = StyleTransfer(config, weights_progress=download_bar)
    download_bar.close()
    styler = ClipStyler(transfer, plan["styles"], settings, init=plan.get("init"))
    done = frames.finished()
    first, count = info.frame_range(**plan.get("range", {}))
    report = _Report(piece_frames(info.frames, first, count), done, quiet, log, estimate=piece_frames(info.expected_frames, first, count))
    t0 = time.perf_counter()
    index = -1
    signals = Signals(_NoRun())  # the frame's run is put in as each frame starts
    # The input frames with their flows, computed up to flow_ahead frames ahead (closed on the way out).
    clip = read_frames(plan["input"], max_pixels=config.max_pixels, first=first, count=count)
    stream = styler.frames(clip, start=done, flow_ahead=flow_ahead)
    try:
        with signals, closing(stream):
            for item in unfinished(styler, stream, done, lambda i: load_image(frames.frame(i))):
                index, frame = item.index, item.frame
                if signals.received is not None:
                    break
                run = styler.start(frame, item.flows)
                signals.run = run
                started = time.perf_counter()
                last = None
                for progress in run:
                    last = progress
                    report.iteration(index, progress)
                if signals.received is not None:
                    break
                # Its log line first: a command killed before the frame is saved drops that line when
                # continued (the log is cut back to the frames done), one killed after it has the line.
                report.frame(index, run, last, time.perf_counter() - started)
                path = save_image(run.result(), frames.frame(index))
                # What the next frame starts from is the frame as saved (a resumed clip sees the same).
                styler.push(frame, load_image(path))
                if save_every and not as_folder and (index + 1) % save_every == 0:
                    _side_assemble(folder, index + 1, output, plan, info)
    finally:
        report.close()
    if signals.received is not None:
        name = signal_name(signals.received)
        say(
            f"painterly: {name}: stopped at frame {frames.finished() + 1}; the finished frames are kept in {folder} "
            f"(continue with the same command, or: painterly resume {folder})"
        )
        return 128 + signals.received
    count = frames.finished()
    note, where = "", f"; frames in {folder}"
    if not as_folder:
        carried = _assemble(folder, count, output, plan, info)
        note = ", audio carried over" if carried else (", without the audio (the container refused it)" if info.has_audio else "")
        if not plan.get("keep_frames"):
            # The video is written: the frames were only kept for resuming. Nothing else of the folder goes.
            frames.mark_assembled(plan, count, output)
            gone = frames.remove(count, folder_too=bool(plan.get("made_folder", True)))
            where = "" if gone else f"; {folder} kept (it holds other files)" if any(folder.iterdir()) else ""
    if not quiet:
        say(f"painterly: wrote {output} ({count} frame{'' if count == 1 else 's'} at {float(info.fps):g} fps{note}, {time.perf_counter() - t0:.1f} s){where}")
    return 0


def _assemble(folder: Path, count: int, output: Path, plan: dict[str, Any], info: Any) -> bool:
    from ..imageio import load_image
    from ..video.clip import write_clip

    frames = (load_image(FrameFolder(folder).frame(i)) for i in range(count))
    first, _ = info.frame_range(**plan.get("range", {}))
    try:
        return write_clip(output, frames, count, info, plan["input"], first)
    except OSError as exc:
        raise ImageError(f"{output}: cannot write the video: {exc.strerror or exc}; the frames are kept in {folder}") from None


def _side_assemble(folder: Path, count: int, output: Path, plan: dict[str, Any], info: Any) -> None:
    import warnings

    from ..errors import PainterlyWarning

    try:
        _assemble(folder, count, output, plan, info)
    except (PainterlyError, OSError) as exc:
        warnings.warn(f"could not write the video so far to {output}: {exc}; carrying on", PainterlyWarning, stacklevel=2)


def _seconds(option: str) -> Callable[[str], float]:
    """argparse's type for a time (:func:`painterly.video.clip.parse_time`), refused as ``option``."""

    def parse(text: str) -> float:
        from ..video.clip import parse_time

        try:
            return parse_time(text, option.lstrip("-").replace("-", "_"))
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.render(lambda _: option)) from None

    return parse


class _Report:
    """A bar over frames (the current frame's iterations in its text, an ETA from tqdm) on a terminal;
    a line per frame always (stderr), and ``--log`` as one JSON line per frame."""

    def __init__(self, total: int | None, done: int, quiet: bool, log: str | None, estimate: int | None = None) -> None:
        self.quiet, self.total, self.bar, self.log = quiet, total, None, None
        # A container that declares no frame count (mkv, ts) declares a duration: about this many.
        self.estimate = None if total else estimate
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total or estimate, initial=done, unit="frame", file=sys.stderr, dynamic_ncols=True)
        if log is not None:
            try:
                from ..files import open_log
                from .runner import trim_log

                if done:
                    trim_log(Path(log), done, key="frame")
                self.log = open_log(log, truncate=not done)
            except OSError as exc:
                raise ConfigError(f"`log` {log}: cannot write: {exc.strerror or exc}") from None

    def iteration(self, index: int, p: Any) -> None:
        if self.bar is not None:
            try:
                self.bar.set_postfix_str(f"frame {index + 1}: iteration {p.iteration}/{p.total_iterations} loss {p.loss:.3g}")
            except (OSError, ValueError):  # the terminal has gone: as in frame()
                self.bar, self.quiet = None, True

    def frame(self, index: int, run: Any, p: Any, seconds: float) -> None:
        losses = {k: v for k, v in (p.losses if p is not None else {}).items() if k != "total"}
        if self.log is not None:
            record = {"frame": index + 1, "iterations": run.iteration, "seconds": round(seconds, 3), **losses}
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
        if self.quiet:
            return
        of = f"/{self.total}" if self.total else f"/~{self.estimate}" if self.estimate else ""
        line = f"painterly: frame {index + 1}{of}: {run.iteration} iterations, {seconds:.1f} s, " + " ".join(f"{k}={v:.3g}" for k, v in losses.items())
        if self.bar is not None:
            try:
                self.bar.write(line, file=sys.stderr)
                self.bar.update(1)
            except (OSError, ValueError):  # the terminal has gone (ssh closed): the clip goes on, silently
                self.bar, self.quiet = None, True
        else:
            say(line)

    def close(self) -> None:
        close_bar(self.bar)
        if self.log is not None:
            self.log.close()
