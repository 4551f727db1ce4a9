"""How close a runtime comes to PyTorch: what a network brings to have its export checked.

An `Agreement` measures a runtime on fixed inputs against PyTorch's outputs for them (a score
kept in the export's meta), and says whether a score clears the network's bar for a backend.
Networks that make vectors (the image networks, CLIP's towers, the sentence model) use `Cosine`;
the detector brings its own (boxes and scores, `models.detect_runtime`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

MIN_COSINE = 0.999
CHECK_BATCH = 8  # images in the fixed batch image networks are checked on


class Agreement(Protocol):
    subject: str  # what the runtime computes, for warnings: "efficientnet_lite0 vectors", "boxes"

    def measure(self, runtime) -> Any: ...  # the score kept in the meta (JSON)

    def passes(self, score, backend: str) -> bool: ...

    def explain(self, score, backend: str) -> str: ...  # why a score fails, for warnings


@dataclass
class Cosine:
    """Vectors agree when each one's cosine with PyTorch's on the fixed inputs clears the bar."""

    subject: str
    reference: Callable[[], tuple]  # (the fixed inputs, PyTorch's vectors for them): called when a check is due
    run: Callable = lambda runtime, inputs: runtime.run(inputs)  # a runtime's vectors for the inputs
    bars: dict[str, float] = field(default_factory=dict)  # a backend's own bar (INT8, mixed); else MIN_COSINE
    _reference: tuple | None = field(default=None, init=False, repr=False)

    def measure(self, runtime) -> float:
        """The smallest cosine between the runtime's vectors and PyTorch's."""
        self._reference = self._reference or self.reference()  # PyTorch runs once for every runtime checked
        inputs, reference = self._reference
        return smallest_cosine(np.asarray(self.run(runtime, inputs)), reference)

    def bar(self, backend: str) -> float:
        return self.bars.get(backend, MIN_COSINE)

    def passes(self, score: float, backend: str) -> bool:
        return score >= self.bar(backend)

    def explain(self, score: float, backend: str) -> str:
        return f"smallest cosine {score:.5f} < {self.bar(backend)}"


def smallest_cosine(vectors: np.ndarray, reference: np.ndarray) -> float:
    norms = np.maximum(np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1), 1e-12)
    return float(((vectors * reference).sum(1) / norms).min())


def check_batch(preprocess, side: int | None = None) -> np.ndarray:
    """The fixed batch image networks are checked on: seeded smooth colour fields (8 x 8 random
    pixels enlarged to `side`, by default the preprocessing's resize), preprocessed like photos. On
    real gallery photos and on these, runtimes differ from PyTorch alike (bf16: smallest cosine
    0.997 on both); white noise would flatter or punish them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    fields = [Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).resize(
        (side or preprocess.resize,) * 2, Image.Resampling.BICUBIC) for _ in range(CHECK_BATCH)]
    return np.stack([preprocess(field) for field in fields])
