"""How the command stops: the signals that end a run cleanly, and what a second one does.

A first stop signal (:data:`STOP_SIGNALS`) asks the run to stop within one loss evaluation; the
command then keeps the image so far and its checkpoint, and exits 128 + the signal's number. A second
one ends the command at once (:class:`Interrupted`). Kept apart from runner.py so that ``main`` can
install its handlers without importing the engine.
"""

from __future__ import annotations

import signal
from typing import Any


class Interrupted(KeyboardInterrupt):
    """A signal that ends the command at once (SIGTERM outside a run, or a second Ctrl-C during one);
    ``main`` turns it into exit status 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""What stops a run cleanly (its image kept, its checkpoint written): Ctrl-C, a kill, and the terminal
or ssh session closing (SIGHUP, where the system has it)."""


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``, ``SIGHUP`` ... for messages."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Signals:
    """A stop signal (:data:`STOP_SIGNALS`) asks the run to stop (it ends within one loss evaluation);
    a second one aborts. ``run`` is anything with ``stop()`` (a group of runs), or ``None`` to only
    record the signal."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Signals":
        for sig in STOP_SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test harness thread)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise Interrupted(signum)
        self.received = signum
        if self.run is not None:
            self.run.stop()

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
