"""One loaded encoder per worker: built once for each set of layers, pooling and weights, and reused
by every job that needs the same (a sweep over weights reuses one; a job reading deeper layers needs
its own)."""

from __future__ import annotations

from typing import Any

from ..config import Config


class EncoderCache:
    """Encoders by ``(weights, pooling, layers_needed)``; weights are decoded once per name."""

    def __init__(self) -> None:
        self._weights: dict[str, Any] = {}
        self._encoders: dict[tuple[str, str, tuple[str, ...]], Any] = {}

    @staticmethod
    def key(config: Config) -> tuple[str, str, tuple[str, ...]]:
        """What decides the encoder a config gets: configs with equal keys share one."""
        return (config.weights, config.pooling, config.layers_needed)

    def get(self, config: Config, progress: Any = None) -> Any:  # noqa: ANN401 - a VGG19Encoder
        from ..engine import build_encoder
        from ..weights import load_weights

        key = self.key(config)
        if key not in self._encoders:
            if config.weights not in self._weights:
                self._weights[config.weights] = load_weights(config.weights, progress=progress)
            self._encoders[key] = build_encoder(config, weights=self._weights[config.weights])
        return self._encoders[key]

    def __len__(self) -> int:
        return len(self._encoders)
