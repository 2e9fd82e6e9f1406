"""Video: frames in and out (PyAV), optical flow and consistency (OpenCV), and the temporal method of
Ruder et al. (each frame started from the previous stylised one, warped, and held near it by a
temporal term). Needs the optional extra: ``pip install 'painterly[video]'``.

Nothing is imported here: ``painterly.video.frames`` (in), ``.writing`` (out), ``.flow`` and ``.sequence`` import PyAV and
OpenCV only when used.
"""

TEMPORAL_WEIGHT = 1e6
"""Default weight of the temporal term (measured: benchmarks/video.py, docs/video.md)."""
