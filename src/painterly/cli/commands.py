"""The commands behind ``painterly``: each builds a config, runs the engine and saves the result."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, ImageError, PainterlyError


def run_command(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from ..web import serve

        return serve(host=args.host, port=args.port, workdir=args.workdir, keep=args.keep)
    if args.command == "resume":
        return _resume(args)
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


def _check_side_files(output: Path, outputs, inputs: Sequence[str]) -> None:  # noqa: ANN001
    """The files written beside the output (intermediates, the image kept on Ctrl-C or divergence,
    the checkpoint) must not land on an input either."""
    import re

    from ..imageio import same_file

    derived = [
        output.with_name(f"{output.stem}-interrupted{output.suffix}"),
        output.with_name(f"{output.stem}-last-good{output.suffix}"),
        _checkpoint_path(output),
    ]
    numbered = re.compile(rf"{re.escape(output.stem)}_\d{{4,}}{re.escape(output.suffix)}")
    for source in inputs:
        clash = next((d for d in derived if same_file(d, source)), None)
        if clash is None and outputs.save_every and numbered.fullmatch(Path(source).name):
            if same_file(output.with_name(Path(source).name), source):
                clash = Path(source)
        if clash is not None:
            raise ConfigError(
                f"{output}: this run may write {clash}, which is the input {source}; choose another output name"
            )


def _check_log(log: str | None, output: Path, inputs: Sequence[str]) -> None:
    """--log must be a file we may (re)write: not an input, not the output, not a directory."""
    if log is None:
        return
    if any(_same(log, p) for p in inputs):
        raise ConfigError(f"--log {log}: is one of the input images; refusing to overwrite it")
    if _same(log, output):
        raise ConfigError(f"--log {log}: is the output image; give the log its own file name")
    if Path(log).is_dir():
        raise ConfigError(f"--log {log}: is a directory; give a file name such as {Path(log) / 'losses.jsonl'}")
    _check_parent(Path(log), f"--log {log}")


def _check_combinations(mode: str, config, content: str | None, styles: Sequence[str]) -> None:  # noqa: ANN001
    """Options that contradict the images given, caught before any image or weight is loaded
    (the engine checks the same again for API callers)."""
    if config.style_blend is not None and len(config.style_blend) != len(styles):
        raise ConfigError(
            f"--style-blend has {len(config.style_blend)} values for {len(styles)} style image"
            f"{'s' if len(styles) != 1 else ''}"
        )
    if config.init == "content" and content is None:
        raise ConfigError(f"--init content: the {mode} command has no content image; use --init noise or style")
    if config.init == "style" and not styles:
        raise ConfigError(f"--init style: the {mode} command has no style image; use --init noise or content")


def _inputs_exist(paths: Sequence[str]) -> None:
    for p in paths:
        if not Path(p).exists():
            raise ImageError(f"{p}: no such file")


def _run_mode(args: argparse.Namespace) -> int:
    from ..api import prepare
    from .options import config_options, output_options

    options = config_options(args)
    outputs = output_options(args)
    mode = args.command
    if mode == "demo":
        from ..demo import demo_images

        content, styles = demo_images()
        mode = "stylize"
    elif mode == "texture":
        content, styles = None, list(args.styles)
    elif mode == "reconstruct":
        from ..layers import LAYER_NAMES, is_layer

        if not is_layer(args.layer):
            raise ConfigError(f"--layer: unknown layer {args.layer!r}; valid layers: {', '.join(LAYER_NAMES)}")
        content, styles = args.content, []
        options["content_layers"] = (args.layer,)
    else:
        content, styles = args.content, list(args.styles)

    from ..config import Config

    config = Config.for_mode(mode, **options)
    _check_combinations(args.command, config, content, styles)
    init_path = config.init if config.init not in ("noise", "content", "style") else None
    named_inputs = [str(x) for x in [content, *styles, init_path] if isinstance(x, (str, os.PathLike))]
    output = _check_output(args.output, named_inputs)
    _check_side_files(output, outputs, named_inputs)
    _check_log(outputs.log, output, named_inputs)
    if init_path is not None and not Path(init_path).exists():
        raise ImageError(f"--init {init_path}: no such file (use noise, content, style or the path of an image)")
    _inputs_exist(named_inputs)
    config, content_t, style_ts, init_t = prepare(mode, content, styles, None, config=config)
    return _execute(config, content_t, style_ts, init_t, output, outputs, args, run=None)


def _same(a: str, b: str) -> bool:
    from ..imageio import same_file

    return same_file(a, b)


# --- running and saving -----------------------------------------------------------------------------


class _Interrupted(KeyboardInterrupt):
    """A signal that ends the command at once (SIGTERM outside a run, or a second Ctrl-C during
    one); ``main`` turns it into exit status 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise _Interrupted(signum)


class _Signals:
    """SIGINT/SIGTERM ask the run to stop (it ends within one loss evaluation); a second one aborts."""

    def __init__(self, run) -> None:  # noqa: ANN001
        self.run = run
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test harness thread)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise _Interrupted(signum)
        self.received = signum
        self.run.stop()

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _metadata(config, mode: str | None = None) -> dict[str, str]:  # noqa: ANN001
    from .. import __version__

    return {"Software": f"painterly {__version__}", "painterly:config": json.dumps(config.to_dict(), sort_keys=True)}


def _checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".ckpt")


def _save_checkpoint(run, output: Path, outputs, path: Path) -> bool:  # noqa: ANN001
    """Write the run's state atomically; on failure say so and carry on (the run matters more)."""
    import dataclasses
    import warnings

    import torch

    from ..errors import PainterlyWarning

    # Absolute paths: `painterly resume` may be run from another directory.
    saved_outputs = dataclasses.asdict(outputs)
    if outputs.log:
        saved_outputs["log"] = str(Path(outputs.log).absolute())
    state = {"run": run.state_dict(), "output": str(output.absolute()), "outputs": saved_outputs}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
        return True
    except Exception as exc:  # a full disk must not cost the user the run itself
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        warnings.warn(f"could not write the checkpoint {path}: {reason}; carrying on", PainterlyWarning, stacklevel=2)
        return False
    finally:
        if tmp.exists():
            tmp.unlink()


def _open_log(outputs, resumed_at: int | None):  # noqa: ANN001
    """The --log file, opened only now that the run is under way. A resumed run appends to it,
    first dropping any lines past the checkpoint (written after it, before a crash)."""
    from .report import LossLog

    if outputs.log and resumed_at is not None:
        _trim_log(Path(outputs.log), resumed_at)
    try:
        return LossLog(outputs.log, append=resumed_at is not None)
    except OSError as exc:
        raise ConfigError(f"--log {outputs.log}: cannot write: {exc.strerror or exc}") from None


def _trim_log(path: Path, iteration: int) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return  # nothing (readable) to trim: LossLog appends or reports the problem
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["iteration"]) <= iteration:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    if len(kept) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if tmp.exists():
            tmp.unlink()


def _execute(config, content_t, style_ts, init_t, output: Path, outputs, args, run=None) -> int:  # noqa: ANN001
    from ..engine import Run, StyleTransfer
    from ..imageio import save_image
    from .report import ProgressBar, save_intermediate

    quiet = getattr(args, "quiet", False)
    download_bar = _DownloadBar(quiet)
    transfer = StyleTransfer(config, weights_progress=download_bar)
    download_bar.close()
    if run is None:
        run = transfer.start(content_t, style_ts, init=init_t)
        resumed_at = None
    else:
        try:
            run = Run.from_state_dict(transfer, run)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ConfigError(f"{args.checkpoint}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
        resumed_at = run.iteration
    meta = _metadata(config)
    bar = ProgressBar(run.total_iterations, quiet=quiet)
    if resumed_at is not None and bar.bar is not None:
        bar.bar.update(run.iteration)
    log = _open_log(outputs, resumed_at)
    ckpt = _checkpoint_path(output)
    t0 = time.perf_counter()
    try:
        with _Signals(run) as signals:
            for progress in run:
                bar.update(progress)
                log.write(progress)
                save_intermediate(progress, output, outputs.save_every, meta)
                if outputs.checkpoint_every and progress.iteration % outputs.checkpoint_every == 0 and not run.done:
                    _save_checkpoint(run, output, outputs, ckpt)
    except PainterlyError as exc:
        image = getattr(exc, "image", None)
        if image is None:
            raise
        # A run that failed (diverged) still has its last good image: keep it, and say where in
        # the one error line.
        kept = output.with_name(f"{output.stem}-last-good{output.suffix}")
        try:
            save_image(image, kept, metadata=meta)
            note = f"; kept the last good image in {kept}"
        except PainterlyError as save_exc:
            note = f"; could not keep the last good image: {save_exc}"
        failure = type(exc)(f"{exc}{note}")
        failure.image = image  # type: ignore[attr-defined]
        raise failure from None
    finally:
        bar.close()
        log.close()
    if signals.received is not None:
        partial = output.with_name(f"{output.stem}-interrupted{output.suffix}")
        save_image(run.result(), partial, metadata=meta)
        resumable = bool(outputs.checkpoint_every) and _save_checkpoint(run, output, outputs, ckpt)
        name = "SIGINT" if signals.received == signal.SIGINT else "SIGTERM"
        sys.stderr.write(
            f"painterly: {name}: stopped at iteration {run.iteration}/{run.total_iterations}; "
            f"saved the image so far to {partial}"
            + (f" (continue with: painterly resume {ckpt})" if resumable else "")
            + "\n"
        )
        return 128 + signals.received
    image = run.result()
    save_image(image, output, metadata=meta)
    # The run finished: its checkpoints (this output's, and the one it was resumed from, if another)
    # have nothing left to give.
    for done in {ckpt, Path(args.checkpoint)} if resumed_at is not None else {ckpt}:
        if done.is_file() and (outputs.checkpoint_every or done != ckpt):
            done.unlink()
    if not quiet:
        h, w = image.shape[-2:]
        sys.stderr.write(
            f"painterly: wrote {output} ({w}x{h}, {run.iteration} iterations, {time.perf_counter() - t0:.1f} s, seed {run.seed})\n"
        )
    return 0


def _resume(args: argparse.Namespace) -> int:
    import torch

    from ..config import Config, OutputOptions

    path = Path(args.checkpoint)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        run_state = state["run"]
        config = Config.from_mapping(run_state["config"])
        outputs = OutputOptions(**state["outputs"])
        output = Path(args.output or state["output"])
    except PainterlyError:
        raise
    except Exception as exc:
        raise ConfigError(f"{path}: not a painterly checkpoint, or a damaged one ({type(exc).__name__})") from None
    _check_output(str(output), [])
    _check_log(outputs.log, output, [])
    return _execute(config, None, [], None, output, outputs, args, run=run_state)


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
