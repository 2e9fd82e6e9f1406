"""Choosing the device and the arithmetic precision of a run."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from .errors import ConfigError, shown
from .graphs import capture


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA if present, else Apple MPS, else CPU. Asking for an absent device is a
    :class:`ConfigError` (never a silent fallback: the user asked for that device on purpose)."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("`device` cuda: no CUDA GPU is available to this PyTorch build")
        return torch.device(name)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ConfigError("`device` mps: Apple's Metal backend is not available here")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"`device` must be auto, cpu, cuda or mps; got {shown(name)}")


def cpu_name() -> str:
    """The CPU's model name (for reports), e.g. ``AMD EPYC 9R45``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it oneDNN emulates bf16
    and it is slower than fp32, so ``--precision auto`` only picks bf16 when this is true."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network, or ``None`` for plain fp32.

    Only the convolutions run in bf16; Gram matrices and losses are accumulated in fp32 (see
    :mod:`painterly.losses`), and the image being optimised stays fp32.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("`precision` bf16: this GPU does not support bfloat16")
        if device.type == "mps":
            raise ConfigError("`precision` bf16 is not supported on MPS; use fp32")
        return torch.bfloat16
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        return None
    raise ConfigError(f"`precision` must be auto, fp32 or bf16; got {shown(name)}")


def fastest_precision(
    encoder: torch.nn.Module, shape: tuple[int, int, int, int], device: torch.device, repeats: int = 3
) -> torch.dtype | None:
    """What ``--precision auto`` picks on CUDA: the faster of fp32 (``None``) and bf16 autocast for
    ``encoder``'s forward + backward to an input of ``shape`` ``(N, 3, H, W)``, as a run evaluates it:
    channels_last, captured as a CUDA graph (:func:`painterly.graphs.capture`; eager where capture
    fails), timed with CUDA events over ``repeats`` replays after the capture's warm-up. Eager passes
    would time kernel launches, the same for both at launch-bound sizes. fp32 if bf16 is not
    supported. Only for CUDA devices: on other devices :func:`resolve_precision`'s rule stands."""
    if device.type != "cuda":
        raise ValueError(f"fastest_precision times CUDA kernels; got device {device.type}")
    if not torch.cuda.is_bf16_supported():
        return None
    # A generator of its own: timing must not advance the caller's CUDA random stream.
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(shape, device=device, generator=gen).contiguous(memory_format=torch.channels_last)

    def evaluation(dtype: torch.dtype | None):  # noqa: ANN202
        def evaluate(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            inp = point.detach().requires_grad_(True)
            with torch.enable_grad(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=False):
                feats = encoder(inp)
                total = sum(f.float().square().mean() for f in feats.values())
            (grad,) = torch.autograd.grad(total, inp)
            return total.detach(), grad, total.detach().reshape(1)

        return evaluate

    ms: dict[torch.dtype | None, float] = {}
    for dtype in (None, torch.bfloat16):
        run, _ = capture(evaluation(dtype), x)  # its warm-up runs cuDNN's algorithm search
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            run(x)
        end.record()
        end.synchronize()
        ms[dtype] = start.elapsed_time(end) / repeats
    return torch.bfloat16 if ms[torch.bfloat16] < ms[None] else None
