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

        return serve(host=args.host, port=args.port, workdir=args.workdir)
    if args.command == "resume":
        return _resume(args)
    return _run_mode(args)


# --- setting a run up ------------------------------------------------------------------------------


def _check_output(output: str, inputs: Sequence[str | None]) -> Path:
    """Fail before any work if the output cannot be what the user wants (bad extension, an input)."""
    from ..imageio import output_format, same_file

    path = Path(output)
    output_format(path)
    if path.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file name such as {Path(output) / 'out.png'}")
    for source in inputs:
        if source and same_file(path, source):
            raise ConfigError(f"{output}: output is the same file as the input {source}; refusing to overwrite it")
    return path


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
        content, styles = args.content, []
        options["content_layers"] = (args.layer,)
    else:
        content, styles = args.content, list(args.styles)

    from ..config import Config

    config = Config.for_mode(mode, **options)
    init_path = config.init if config.init not in ("noise", "content", "style") else None
    named_inputs = [str(x) for x in [content, *styles, init_path] if x is not None]
    output = _check_output(args.output, named_inputs)
    if outputs.log and any(_same(outputs.log, p) for p in named_inputs):
        raise ConfigError(f"--log {outputs.log}: is one of the input images; refusing to overwrite it")
    _inputs_exist(named_inputs)
    config, content_t, style_ts, init_t = prepare(mode, content, styles, None, config=config)
    return _execute(config, content_t, style_ts, init_t, output, outputs, args, run=None)


def _same(a: str, b: str) -> bool:
    from ..imageio import same_file

    return same_file(a, b)


# --- running and saving -----------------------------------------------------------------------------


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
            raise KeyboardInterrupt
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


def _save_checkpoint(run, output: Path, outputs, path: Path) -> None:  # noqa: ANN001
    import dataclasses

    import torch

    state = {"run": run.state_dict(), "output": str(output), "outputs": dataclasses.asdict(outputs)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _execute(config, content_t, style_ts, init_t, output: Path, outputs, args, run=None) -> int:  # noqa: ANN001
    from ..engine import Run, StyleTransfer
    from ..imageio import save_image
    from .report import LossLog, ProgressBar, save_intermediate

    quiet = getattr(args, "quiet", False)
    download_bar = _DownloadBar(quiet)
    transfer = StyleTransfer(config, weights_progress=download_bar)
    download_bar.close()
    if run is None:
        run = transfer.start(content_t, style_ts, init=init_t)
        resumed = False
    else:
        run = Run.from_state_dict(transfer, run)
        resumed = True
    meta = _metadata(config)
    bar = ProgressBar(run.total_iterations, quiet=quiet)
    if resumed and bar.bar is not None:
        bar.bar.update(run.iteration)
    log = LossLog(outputs.log, append=resumed)
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
        if image is not None:
            kept = output.with_name(f"{output.stem}-last-good{output.suffix}")
            save_image(image, kept, metadata=meta)
            sys.stderr.write(f"painterly: kept the last good image in {kept}\n")
        raise
    finally:
        bar.close()
        log.close()
    if signals.received is not None:
        partial = output.with_name(f"{output.stem}-interrupted{output.suffix}")
        save_image(run.result(), partial, metadata=meta)
        if outputs.checkpoint_every:
            _save_checkpoint(run, output, outputs, ckpt)
        name = "SIGINT" if signals.received == signal.SIGINT else "SIGTERM"
        sys.stderr.write(
            f"painterly: {name}: stopped at iteration {run.iteration}/{run.total_iterations}; "
            f"saved the image so far to {partial}"
            + (f" (continue with: painterly resume {ckpt})" if outputs.checkpoint_every else "")
            + "\n"
        )
        return 128 + signals.received
    image = run.result()
    save_image(image, output, metadata=meta)
    if ckpt.exists() and outputs.checkpoint_every:
        ckpt.unlink()  # the run finished: its checkpoint has nothing left to give
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
        raise ConfigError(f"{path}: not a painterly checkpoint or damaged ({type(exc).__name__})") from None
    _check_output(str(output), [])
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
