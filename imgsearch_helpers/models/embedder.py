"""A loaded image model: its preprocessing, the runtime that computes pre-logit features, and the
classifier head as numpy arrays.

Embeddings are the pooled features just before the classifier ("pre-logits"). The classifier
itself is kept: `Embedder.class_probabilities` turns cached features into ImageNet class
probabilities without running the network again.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np

from ..embed.stream import StreamsImages
from .preprocess import Preprocessing

# TorchScript's deprecation notices, filtered for the process as well as around the call: the
# `catch_warnings` block alone let them through in long runs with Milvus Lite's threads in the
# process (it swaps global state and is not thread-safe).
warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")


@dataclass
class Embedder(StreamsImages):
    """A model in inference mode: `preprocess` a PIL image, `embed_batch` preprocessed images."""

    name: str
    key: str  # model + weights (+ the runtime when it is not PyTorch): the embedding cache's key
    preprocess: Preprocessing  # PIL image -> (3, crop, crop) float32 array
    min_side: int  # short side the preprocessing resizes to (lets JPEGs decode smaller)
    weights: str  # where the weights came from, for display
    dim: int
    classes: int
    parameters: int
    runtime: object  # a backends.Runtime (or TorchRuntime)
    classifier: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # (weights, bias)
    mirror: bool = False  # embed the left-right mirrored image (test-time augmentation)

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    @property
    def backend(self) -> str:
        return self.runtime.name

    def embed_batch(self, batch) -> np.ndarray:
        """Pre-logit features for a batch of preprocessed images (N, 3, crop, crop)."""
        batch = np.asarray(batch, dtype=np.float32)
        if self.mirror:
            batch = batch[..., ::-1]
        return np.asarray(self.runtime.run(np.ascontiguousarray(batch)), dtype=np.float32)

    def mirrored(self) -> Embedder:
        """The same model (and runtime) embedding mirrored images, cached under its own key."""
        return replace(self, key=f"{self.key}/mirrored", mirror=True)

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """The classifier's softmax over its classes, computed from pre-logit features."""
        if self.classifier is None:
            raise ValueError(f"{self.name} has no classifier head")
        weights, bias = self.classifier
        logits = np.asarray(features, np.float64) @ weights.T.astype(np.float64) + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)

    def __repr__(self) -> str:
        mirrored = ", mirrored" if self.mirror else ""
        return (f"Embedder({self.name}{mirrored}, dim={self.dim}, params={self.parameters:,}, weights={self.weights}, "
                f"runs on {self.backend})")


class TorchRuntime:
    """PyTorch: a frozen TorchScript trace (batch norm folded; made on the first batch), or eager."""

    def __init__(self, module, fast: bool = True):
        self.module, self.fast, self._traced = module.eval(), fast, None
        self.name = torch_runtime_name() + ("" if fast else "-eager")

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self.fast and self._traced is None:
                self._traced = trace_for_inference(self.module, tensor)
                self.fast = self._traced is not None
            forward = self._traced if self.fast else self.module
            # measured: one image runs faster on one thread than split over two
            with one_thread() if len(batch) == 1 else nullcontext():
                return forward(tensor).float().numpy()


def torch_runtime_name() -> str:
    """PyTorch's runtime name, e.g. "torch-2.14.1": the cache and the checks are kept per runtime."""
    import torch

    return f"torch-{torch.__version__.split('+')[0]}"


@contextmanager
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pre_logits(model):
    """The part of a timm model that makes the embedding: features, then its pooling head."""
    import torch

    class PreLogits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, batch):
            return self.inner.forward_head(self.inner.forward_features(batch), pre_logits=True)

    return PreLogits(model).eval()


def trace_for_inference(module, example):
    """Trace and freeze `module` (folds batch norm into convolutions, fuses activations).

    Returns None, and the caller stays eager, if tracing fails or changes the output.
    TorchScript is deprecated upstream but is still the fastest CPU path in the pinned torch.
    """
    import torch

    module = module.eval().to(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
            same = torch.allclose(traced(example), module(example), rtol=1e-3, atol=1e-3)
    except (RuntimeError, torch.jit.Error):
        return None
    return traced if same else None
