"""Model registry: a name maps to an architecture, a weights source and its preprocessing.

    build_embedder("efficientnet_lite0")          # an Embedder on the fastest checked runtime
    build_embedder("efficientnet_lite0+gem")      # its instance descriptor (regional GeM)

Importing this package is cheap (the command line reads the names); torch and timm load when a
model is built. `registry` names the models and their weights, `factory` builds them, `weights`
loads weights, `embedder` runs a network, `exports` keeps each network exported and checked,
`descriptors` is the instance-search head, `detect` the YOLOv5 detector, `clip` and `sentence`
the text networks.
"""
from .factory import architecture, build_embedder
from .registry import DEFAULT_MODEL, INSTANCE_SUFFIX, LITE_MODELS, available_models

__all__ = ["DEFAULT_MODEL", "INSTANCE_SUFFIX", "LITE_MODELS", "architecture", "available_models", "build_embedder"]
