"""CLIP through open_clip: images and sentences in one space, both as unit vectors.

Weights: a local checkpoint `<weights_dir>/open_clip/<model>-<pretrained>.<ext>` if there is one,
else open_clip downloads them (OpenAI's or LAION's, via the Hugging Face hub). Offline, loading
raises `ClipUnavailable` at once with what to do. `pretrained=None` builds the architecture with
seeded random weights, for tests only: its vectors mean nothing. Both towers run exported, on
OpenVINO, once they pass their check against PyTorch (`clip_export`).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import sha256_file
from ..config import Settings, display_path, get_settings
from ..embed.stream import StreamsImages
from ..errors import ClipUnavailable, UsageError, brief
from ..vectors import l2_normalize
from .clip_export import load_towers
from .registry import local_weights
from .weights import hub_unreachable

DEFAULT_MODEL, DEFAULT_PRETRAINED = "ViT-B-32", "openai"
WEIGHTS_FOLDER = "open_clip"  # local checkpoints: <weights_dir>/open_clip/<model>-<pretrained>.<ext>


@dataclass
class ClipImageEmbedder(StreamsImages):
    """CLIP's image tower as a `Network` (batched, cached by content)."""

    name: str
    key: str
    model: torch.nn.Module
    transform: object  # open_clip's preprocessing: PIL image -> CHW tensor
    min_side: int
    dim: int
    runtime: object | None = None  # the exported tower (None: PyTorch)

    def preprocess(self, image) -> np.ndarray:
        return self.transform(image).numpy()

    def embed_batch(self, batch) -> np.ndarray:
        if self.runtime is not None:
            return l2_normalize(self.runtime.run(np.asarray(batch, np.float32)))
        with torch.no_grad():
            return l2_normalize(self.model.encode_image(torch.as_tensor(np.asarray(batch))).float().numpy())


@dataclass
class Clip:
    """A loaded CLIP model: `images` embeds pictures (an image encoder), `texts` sentences."""

    images: ClipImageEmbedder
    tokenizer: object
    weights: str
    text_runtime: object | None = None  # the exported text tower (None: PyTorch)

    @property
    def name(self) -> str:
        return self.images.name

    @property
    def dim(self) -> int:
        return self.images.dim

    @property
    def random(self) -> bool:
        return self.weights.startswith("random")

    def texts(self, sentences) -> np.ndarray:
        """Unit vectors for sentences, in CLIP's joint space."""
        tokens = self.tokenizer(list(sentences))
        if self.text_runtime is not None:
            return l2_normalize(self.text_runtime.run(tokens.numpy()))
        with torch.no_grad():
            return l2_normalize(self.images.model.encode_text(tokens).float().numpy())

    def __repr__(self) -> str:
        return f"Clip({self.name}, dim={self.dim}, weights={self.weights})"


def load_clip(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
              settings: Settings | None = None) -> Clip:
    """Build an open_clip model with its weights (local file, else download); see the module doc."""
    import open_clip

    settings = settings or get_settings()
    if model not in open_clip.list_models():
        raise UsageError(f"unknown open_clip model {model!r}; e.g. {DEFAULT_MODEL}, ViT-B-16, ViT-L-14")
    local = None
    if pretrained is None:
        torch.manual_seed(0)
        weights, source = "random (seed 0): for tests, not a CLIP model", None
    else:
        local = local_weights(f"{model}-{pretrained}", Path(settings.weights_dir) / WEIGHTS_FOLDER)
        source = str(local) if local else pretrained
        weights = f"local file {display_path(local)}" if local else f"open_clip '{pretrained}' (downloaded)"
        if local is None:
            _require_download(model, pretrained, settings.weights_dir)
    try:
        logging.disable(logging.ERROR)  # open_clip logs a failed download itself; ours says what to do
        network, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=source, device="cpu")
    except RuntimeError as exc:
        if "download" in str(exc).lower():
            raise ClipUnavailable(_offline_message(model, pretrained, settings.weights_dir, exc)) from None
        raise
    finally:
        logging.disable(logging.NOTSET)
    network.eval()
    size = network.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    key = f"clip/{model}@{weights_id(network, pretrained, local)}"
    tokenizer = open_clip.get_tokenizer(model)
    runtimes = (None, None)
    if settings.backend != "torch":
        runtimes = load_towers(network, lambda image: preprocess(image).numpy(), tokenizer, int(size), settings, key)
    embedder = ClipImageEmbedder(f"{model} ({pretrained or 'random'})", key + runtime_suffix(runtimes[0]), network,
                                 preprocess, int(size), _output_dim(network, int(size)), runtimes[0])
    return Clip(embedder, tokenizer, weights, runtimes[1])


def weights_id(network, pretrained: str | None, local: Path | None) -> str:
    """What names the weights in cache keys: a local file by name and content, random weights by
    content too (a test model's shape can change under its name), a download by its tag."""
    if local is not None:
        return f"{local.name}-{sha256_file(local)[:12]}"
    if pretrained is None:
        digest = hashlib.sha256()
        for tensor in network.state_dict().values():
            digest.update(tensor.detach().numpy().tobytes())
        return f"random-seed0-{digest.hexdigest()[:12]}"
    return pretrained


def runtime_suffix(runtime) -> str:
    """The embedding cache keeps an exported tower's vectors apart from PyTorch's."""
    return f"|{runtime.name}" if runtime is not None else ""


def _output_dim(network, size: int) -> int:
    with torch.no_grad():
        return int(network.encode_image(torch.zeros(1, 3, size, size)).shape[1])


def _require_download(model: str, pretrained: str, weights_dir: Path) -> None:
    problem = hub_unreachable()
    if problem is not None:
        raise ClipUnavailable(_offline_message(model, pretrained, weights_dir, problem))


def _offline_message(model: str, pretrained: str, weights_dir: Path, exc: Exception) -> str:
    target = display_path(Path(weights_dir) / WEIGHTS_FOLDER / f"{model}-{pretrained}.bin")
    return (f"CLIP weights for {model} ({pretrained}) cannot be downloaded here ({brief(exc)}). Connect once, "
            f"or put the checkpoint at {target} (IMGSEARCH_WEIGHTS_DIR), "
            "or use the offline text path (text='offline').")
