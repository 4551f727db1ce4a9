"""A loaded image model in inference mode: pre-logit features, a frozen trace, the classifier head.

Embeddings are the pooled features just before the classifier ("pre-logits"). The classifier
itself is kept: `Embedder.class_probabilities` turns cached features into ImageNet class
probabilities without running the network again.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from timm.data import create_transform, resolve_data_config

from ..embed import StreamsImages

# TorchScript's deprecation notices, filtered for the process as well as around the call: the
# `catch_warnings` block alone let them through in long runs with Milvus Lite's threads in the
# process (it swaps global state and is not thread-safe).
warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")


@dataclass
class Embedder(StreamsImages):
    """A loaded model in inference mode with its preprocessing."""

    name: str
    key: str  # identifies model + weights in the embedding cache
    model: torch.nn.Module
    preprocess: object  # PIL image -> CHW float tensor
    min_side: int  # short side the preprocessing resizes to (lets JPEGs decode smaller)
    weights: str  # where the weights came from, for display
    fast: bool = True  # run a frozen, BN-folded trace (about 2x faster on CPU than eager)
    mirror: bool = False  # embed the left-right mirrored image (test-time augmentation)
    _traced: object = field(default=None, repr=False)

    @classmethod
    def wrap(cls, name: str, key: str, model: torch.nn.Module, weights: str, fast: bool = True) -> Embedder:
        """A timm model with the preprocessing its pretrained config asks for."""
        config = resolve_data_config({}, model=model.eval())
        min_side = int(config["input_size"][-1] / config["crop_pct"])
        return cls(name, key, model, create_transform(**config), min_side, weights, fast=fast)

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    @property
    def dim(self) -> int:
        return self.model.num_features

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Pre-logit features for a batch of preprocessed images."""
        if self.mirror:
            batch = torch.flip(batch, dims=[3])
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self.fast and self._traced is None:
                self._traced = trace_for_inference(PreLogits(self.model), batch)
                self.fast = self._traced is not None
            forward = self._traced if self.fast else PreLogits(self.model)
            # measured: one image runs faster on one thread than split over two
            with one_thread() if len(batch) == 1 else nullcontext():
                return forward(batch).float().numpy()

    def mirrored(self) -> Embedder:
        """The same model (and trace) embedding mirrored images, cached under its own key."""
        return replace(self, key=f"{self.key}/mirrored", mirror=True)

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """The classifier's softmax over its classes, computed from pre-logit features."""
        with torch.no_grad():
            logits = self.model.get_classifier()(torch.from_numpy(np.ascontiguousarray(features, np.float32)))
            return torch.softmax(logits, dim=1).numpy()

    @property
    def classes(self) -> int:
        return self.model.num_classes

    def __repr__(self) -> str:
        mirrored = ", mirrored" if self.mirror else ""
        return f"Embedder({self.name}{mirrored}, dim={self.dim}, params={self.parameters:,}, weights={self.weights})"


@contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class PreLogits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)


def trace_for_inference(module: torch.nn.Module, example: torch.Tensor):
    """Trace and freeze `module` (folds batch norm into convolutions, fuses activations).

    Returns None, and the caller stays eager, if tracing fails or changes the output.
    TorchScript is deprecated upstream but is still the fastest CPU path in the pinned torch.
    """
    module = module.eval().to(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
            same = torch.allclose(traced(example), module(example), rtol=1e-3, atol=1e-3)
    except (RuntimeError, torch.jit.Error):
        return None
    return traced if same else None
