"""The ``torchvision`` weights: one verified download into torch.hub's checkpoint folder."""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import torch

from .. import files
from ..errors import WeightsError
from .state import Progress, Weights, _convert, _frozen, _one_line, _read_state_file

_DOWNLOAD_TIMEOUT_S = 30.0

_CHUNK_BYTES = 1 << 20

def _load_torchvision(url: str, progress: Progress | None) -> Weights:
    filename = Path(urllib.parse.urlparse(url).path).name
    expected = _hash_prefix(filename)
    if expected is None:
        raise WeightsError(
            f"cannot verify torchvision weights from {url}: the file name must look like "
            "NAME-<sha256 prefix>.pth"
        )
    dest = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not dest.is_file():
        _download(url, dest, expected, progress)
    try:
        raw, _ = _read_state_file(dest)
        if not any(key.startswith("features.") for key in raw):
            raise WeightsError(f"{dest} holds no torchvision VGG19 features")
        state = _convert(raw, str(dest))
    except WeightsError as exc:
        raise WeightsError(f"{exc}; delete it to download again") from None
    return Weights(_frozen(state), "torchvision", f"torchvision ({url}, cached at {dest})")

def _hash_prefix(filename: str) -> str | None:
    """torch.hub's convention: ``name-<first hex digits of the SHA-256>.pth``."""
    match = re.fullmatch(r".+-([0-9a-f]{8,64})\.pth?", filename)
    return match.group(1) if match else None

def _download(url: str, dest: Path, expected: str, progress: Progress | None) -> None:
    """Stream ``url`` through :func:`painterly.files.atomic_write` to ``dest``, hashing as it goes:
    the file appears only if it is complete and verifies, and no temporary file is ever left."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "painterly"})
    except ValueError as exc:  # a malformed URL or an unknown scheme
        raise WeightsError(f"cannot download torchvision VGG19 weights from {url}: {exc}") from None
    digest = hashlib.sha256()
    try:
        with files.atomic_write(dest) as out:
            with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done != total:
                raise _DownloadFailed(f"connection closed after {done} of {total} bytes")
            actual = digest.hexdigest()
            if not actual.startswith(expected):
                raise _HashMismatch(actual)  # raised inside the block: the file is not kept
    except _HashMismatch as exc:
        raise WeightsError(
            f"downloaded file's SHA-256 {exc.actual[:16]}... does not match the {expected} in its "
            f"name ({url}); refusing it"
        ) from None
    except BaseException as exc:
        if isinstance(exc, _NETWORK_ERRORS):
            raise WeightsError(
                f"cannot download torchvision VGG19 weights from {url}: {_download_reason(exc)}; "
                "connect to the internet, or use --weights caffe (offline, the default) "
                "or --weights PATH"
            ) from None
        if isinstance(exc, OSError):
            raise WeightsError(f"cannot write {dest}: {_one_line(exc)}") from None
        raise  # KeyboardInterrupt, or an exception raised by the progress callback

class _DownloadFailed(Exception):
    pass

class _HashMismatch(Exception):
    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual

# What a failed download looks like (as opposed to a full disk, or an error in ``progress``).
_NETWORK_ERRORS = (
    _DownloadFailed,
    urllib.error.URLError,
    http.client.HTTPException,
    TimeoutError,
    ConnectionError,
)

def _download_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"timed out after {_DOWNLOAD_TIMEOUT_S:g} s"
        return _one_line(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, TimeoutError):
        return f"timed out after {_DOWNLOAD_TIMEOUT_S:g} s"
    return _one_line(exc)


# --- local files ------------------------------------------------------------------------------
