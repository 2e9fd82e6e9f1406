"""VGG19 weights as data: the :class:`Weights` value, safetensors files with a checksum, and local
``.pth``/``.safetensors`` files read safely (never an unpickled object) and checked against VGG19's shapes."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Optional

import torch

from .. import files
from ..errors import WeightsError, shown
from ..layers import CONV_LAYERS, Layer, torchvision_key

Preprocessing = Literal["caffe", "torchvision"]
Progress = Callable[[int, Optional[int]], None]

PREPROCESSINGS: tuple[str, ...] = ("caffe", "torchvision")

# Bumped whenever the layout of the files written here changes; an older cache is then rebuilt without a warning.
CACHE_FORMAT_VERSION = "1"


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
            f"{path}: unknown preprocessing {shown(declared)} in its metadata (use caffe or torchvision)"
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
                f"{where}: unexpected key {shown(key)} "
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
            f"{where}: unexpected key {shown(unexpected[0])} "
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
