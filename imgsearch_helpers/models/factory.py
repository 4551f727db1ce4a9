"""`build_embedder`: a registered name (or any timm name) to an `Embedder` on the fastest checked runtime."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings, get_settings
from ..errors import UsageError
from .registry import DEFAULT_MODEL, INSTANCE_SUFFIX

if TYPE_CHECKING:
    from .embedder import Embedder


def build_embedder(name: str = DEFAULT_MODEL, pretrained: bool = True, settings: Settings | None = None,
                   fast: bool = True, backend: str | None = None, checked: bool = True) -> Embedder:
    """Build `name` with its pretrained weights (or seeded random weights for tests), running on
    `backend` (default settings.backend: "auto", the fastest verified runtime; see `backends`);
    `name` + INSTANCE_SUFFIX builds that model's instance-level descriptor instead.

    `fast=False` (PyTorch only) keeps plain eager PyTorch instead of the frozen trace;
    `checked=False` runs a runtime that failed its check against PyTorch (for benchmarks).
    """
    from .exports import load_embedder  # the runtimes (and torch, when needed) load here

    settings = settings or get_settings()
    if name.endswith(INSTANCE_SUFFIX):
        from .descriptors import build_instance_embedder

        if not pretrained or not fast:
            raise UsageError(f"{name}: instance descriptors use the pretrained weights on a fast runtime")
        return build_instance_embedder(name.removesuffix(INSTANCE_SUFFIX), settings=settings, backend=backend,
                                       checked=checked)
    return load_embedder(name, pretrained, settings, backend or settings.backend, fast, checked)


def architecture(name: str) -> dict:
    """`dim` and `parameters` of a timm architecture from its structure alone: built on PyTorch's
    meta device, so no weights are made, read or downloaded (under a second and no memory for
    EfficientNet-B7, which takes gigabytes built with random weights)."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return {"dim": int(model.num_features), "parameters": sum(p.numel() for p in model.parameters())}
