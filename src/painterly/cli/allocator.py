"""Run the ``painterly`` command under a caching memory allocator (tcmalloc or jemalloc) when one is
installed.

Why: every loss evaluation allocates and frees the same few hundred MB of activations. glibc's
malloc hands blocks above 32 MB (and, depending on its heuristics, smaller ones) straight back to the
kernel, so the next evaluation page-faults all of it in again: at 512 px that is ~100 000 page
faults and 10–15 % of the CPU time of an iteration on a 2-core machine. A caching allocator keeps
the memory mapped and reuses it; measured on an AMD EPYC (Zen 5) with PyTorch 2.13, tcmalloc
removes essentially all of those faults (see docs/benchmarks.md).

How: an allocator has to be loaded before the process starts, so :func:`maybe_reexec` — called first
thing in :func:`painterly.cli.main` — re-executes the same command once with ``LD_PRELOAD`` set, if

* we run on Linux, as the ``painterly`` console script or ``python -m painterly`` (never when
  ``main()`` is called from other Python code, e.g. a test suite),
* ``PAINTERLY_ALLOCATOR`` is not ``system`` (values: ``auto`` — the default: tcmalloc, else
  jemalloc —, ``tcmalloc``, ``jemalloc``, ``system``, or a path to a shared library),
* the library file exists (Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4`` or
  ``libjemalloc2``), and this process is not already the re-executed one.

Anything unusual (no library, exec failing) means running on with the system allocator: this is a
speed-up, never a reason to fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

ENV = "PAINTERLY_ALLOCATOR"
# Set in the re-executed process: never re-exec twice (and tells what was preloaded).
_MARK = "PAINTERLY_ALLOCATOR_LOADED"

_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
_LIBS = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}


def find_library(choice: str = "auto") -> str | None:
    """Path of the allocator library ``choice`` names (``auto``, ``tcmalloc``, ``jemalloc`` or a
    path), or ``None`` if it is not installed or ``choice`` is ``system``."""
    choice = (choice or "auto").strip()
    if os.sep in choice:
        return choice if Path(choice).is_file() else None
    choice = choice.lower()
    if choice in ("system", "none", "off", "glibc"):
        return None
    names = _LIBS["tcmalloc"] + _LIBS["jemalloc"] if choice == "auto" else _LIBS.get(choice, ())
    for name in names:
        for d in _LIB_DIRS:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                return path
    return None


def preloaded_env(lib: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` that preloads the allocator ``lib`` in front of any ``LD_PRELOAD``."""
    env = dict(environ)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{lib}{os.pathsep}{preload}" if preload else lib
    # tcmalloc reports every allocation above 1 GB on stderr (a 2048 px fp32 run makes some).
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 62))
    return env


def active_allocator() -> tuple[str, str | None]:
    """The allocator this process runs under: ``("tcmalloc", path)``, ``("jemalloc", path)`` or
    ``("system", None)``, read from the libraries mapped into the process (Linux; ``system``
    elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system", None
    for line in maps.splitlines():
        path = line.split()[-1] if line.count("/") else ""
        name = os.path.basename(path)
        for kind in ("tcmalloc", "jemalloc"):
            if name.startswith(f"lib{kind}"):
                return kind, path
    return "system", None


def _invoked_as_command(argv: Sequence[str] | None) -> bool:
    if argv is not None:  # main(["..."]) from Python code: leave that process alone
        return False
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script in ("painterly", "painterly.exe"):
        return True
    # python -m painterly: sys.argv[0] is the full path of painterly/__main__.py
    return script == "__main__.py" and os.path.basename(os.path.dirname(sys.argv[0])) == "painterly"


def maybe_reexec(argv: Sequence[str] | None = None) -> None:
    """Re-execute this command once under tcmalloc/jemalloc (see the module docstring); returns
    without doing anything when that does not apply. Call it before anything else in ``main``."""
    if not sys.platform.startswith("linux"):
        return
    loaded = os.environ.pop(_MARK, None)
    if loaded is not None:
        # This is the re-executed process: the allocator is in. Give child processes the
        # LD_PRELOAD the user had (a `painterly` started from here decides for itself again).
        rest = [p for p in os.environ.get("LD_PRELOAD", "").split(os.pathsep) if p and p != loaded]
        if rest:
            os.environ["LD_PRELOAD"] = os.pathsep.join(rest)
        else:
            os.environ.pop("LD_PRELOAD", None)
        return
    if not _invoked_as_command(argv):
        return
    lib = find_library(os.environ.get(ENV, "auto"))
    if lib is None:
        return
    preload = os.environ.get("LD_PRELOAD", "")
    if "malloc" in preload:  # the user preloads an allocator already (ours or another): theirs wins
        return
    env = preloaded_env(lib, os.environ)
    env[_MARK] = lib
    # The interpreter's own command line (python -X ... -m painterly ...), or the console script.
    args = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *args[1:]], env)
    except OSError:
        return  # could not exec: carry on in this process with the system allocator
