"""The one home of two file rules: atomic writes and painterly's cache folder.

Every file painterly writes for a user (images, checkpoints, logs rewritten on resume, the weight
cache, the studio's job records) goes through :func:`atomic_write`: the data goes to a hidden
temporary file in the target's own folder, is flushed and fsynced, then renamed over the target, and
the folder is fsynced so that the rename survives a crash. A reader sees the old file or the whole new
one, never half of one, and the temporary file is removed on every way out (an exception, Ctrl-C,
SIGTERM turned into an exception). A process killed outright (SIGKILL, the OOM killer, power loss)
cannot remove its own: the temporary name carries the writer's host and process id, and the next
successful write of the same target removes the ones whose writer is dead (:func:`remove_stale_temps`),
so that a job killed a thousand times does not leave a thousand hidden files.

New files are private to the user (0600) unless the caller says otherwise; a file replaced keeps
its permission bits. A loss log, appended to line by line, is opened by :func:`open_log`, private the same way.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import IO, BinaryIO, Callable, Iterator

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
TEMP_SUFFIX = ".tmp"


def temp_name(target: Path) -> Path:
    """The hidden temporary file used while ``target`` is written: ``.<name>.<host>p<pid>-<random>.tmp``
    (``host``: 4 hex digits of this machine's name; who wrote it, for :func:`remove_stale_temps`)."""
    # Long names are cut so that the temporary name stays under NAME_MAX (255).
    return target.with_name(f".{target.name[:200]}.{_host_tag()}p{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def remove_stale_temps(target: str | os.PathLike[str]) -> int:
    """Remove the temporary files of ``target`` (:func:`temp_name`) left by a writer on this machine
    that no longer runs (killed mid-write); returns how many. A live writer's file, another machine's
    (a shared folder), and one whose name says nothing of its writer are left alone. Never raises."""
    target = Path(target)
    if os.name != "posix":  # os.kill(pid, 0) is a probe only on POSIX
        return 0
    pattern = re.compile(rf"\.{re.escape(target.name[:200])}\.([0-9a-f]{{4}})p(\d+)-[0-9a-f]{{8}}{re.escape(TEMP_SUFFIX)}")
    removed = 0
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        found = pattern.fullmatch(name)
        if found is None or found[1] != _host_tag() or _alive(int(found[2])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / name)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # another user's process (EPERM), or a pid out of range: not ours to judge
    return True


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]


def is_temp_name(name: str) -> bool:
    """Whether ``name`` looks like one of :func:`temp_name`'s files (for clean-ups)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], *, mode: int = PRIVATE_FILE) -> Iterator[BinaryIO]:
    """Open a temporary file for writing that becomes ``target`` when the block ends normally.

    Usage::

        with atomic_write(path) as fh:
            fh.write(data)

    Missing parent folders are created (0700). ``mode`` applies to a new file; an existing target
    keeps its permission bits. On any exception (``BaseException`` included: a signal mid-write) the
    temporary file is removed and ``target`` is left as it was. ``OSError`` propagates: each caller
    names the file in its own words.
    """
    with _replacing(Path(target), mode) as (tmp, fd):
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(target: str | os.PathLike[str], data: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """:func:`atomic_write` of a whole byte string."""
    with atomic_write(target, mode=mode) as fh:
        fh.write(data)


def write_with(target: str | os.PathLike[str], writer: Callable[[Path], None], *, mode: int = PRIVATE_FILE) -> None:
    """Atomic write for libraries that insist on a file *name* (``safetensors.save_file``,
    ``torch.save`` to a path): ``writer(tmp_path)`` fills the temporary file, which then replaces
    ``target`` as in :func:`atomic_write`."""
    with _replacing(Path(target), mode) as (tmp, fd):
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())


@contextlib.contextmanager
def _replacing(target: Path, mode: int) -> Iterator[tuple[Path, int]]:
    """A new temporary file beside ``target`` (path and open descriptor) that replaces ``target``
    when the block ends normally and is removed when it does not."""
    parent = target.parent
    make_folder(parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    tmp: Path | None = None
    # One try around the creation too: a signal's exception can surface the moment os.open returns,
    # after the file exists but before anything else runs, and that file must go as well.
    try:
        for _ in range(100):
            tmp = temp_name(target)
            try:
                fd = os.open(tmp, flags, mode)
                break
            except FileExistsError:
                tmp = None  # someone else's file: never ours to remove
        else:
            raise FileExistsError(f"could not create a temporary file in {parent}")
        yield tmp, fd
        _keep_permissions(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        if tmp is not None:
            remove_quietly(tmp)
        raise
    fsync_folder(parent)
    remove_stale_temps(target)


def open_log(target: str | os.PathLike[str], *, truncate: bool = False) -> IO[str]:
    """Open a text file written line by line (a loss log: appended to, so not atomic) for appending;
    ``truncate`` empties it. A new file is private (0600) and missing folders are made 0700, as for
    :func:`atomic_write`; an existing file keeps its permission bits. ``OSError`` propagates."""
    path = Path(target)
    make_folder(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), "a", encoding="utf-8")


def make_folder(path: str | os.PathLike[str], *, mode: int = PRIVATE_FOLDER) -> Path:
    """Create ``path`` and its missing parents (new ones with ``mode``); an existing one is left as it is."""
    path = Path(path)
    if not path.is_dir():
        # makedirs applies the mode to each folder it creates (the umask permitting).
        os.makedirs(path, mode=mode, exist_ok=True)
    return path


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable. Best effort: not every platform can fsync a folder."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Delete a file if it is there; never raises (for clean-ups on the way out)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """painterly's cache folder: ``override``, else ``$PAINTERLY_CACHE_DIR``, else the user cache
    (``~/.cache/painterly`` on Linux). Not created here."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("PAINTERLY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only needed when nothing else says where the cache lives

    return Path(platformdirs.user_cache_dir("painterly"))


def _keep_permissions(target: Path, tmp: Path) -> None:
    try:
        bits = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return  # no existing file: the new file's mode stands
    with contextlib.suppress(OSError):  # permission bits are a courtesy, not worth failing over
        os.chmod(tmp, bits)
