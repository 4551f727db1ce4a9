"""CLIP's two towers exported to ONNX once and run on OpenVINO in f32, through the export cache
(`runtime.export`) as the image networks and the sentence model are.

`<cache>/models/<model>@<weights>/` holds `image.onnx` (pixels in, the image tower's vector out),
`text.onnx` (token ids in, the text tower's vector out) and `meta.json`, where each runtime
version's check against PyTorch is kept per tower ("image <runtime>", "text <runtime>"): seeded
colour fields for the image tower, fixed sentences for the text tower, every vector's cosine >=
`MIN_COSINE`. A tower that fails its check stays on PyTorch; `IMGSEARCH_BACKEND=torch` keeps both there.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Settings
from ..runtime.agreement import Cosine, check_batch
from ..runtime.export import Export, Graph, open_checked
from .sentence_export import CHECK_SENTENCES, RUNTIMES

TOWERS = ("image", "text")


class ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip  # a submodule: its weights export as weights

    def forward(self, images):
        return self.clip.encode_image(images)


class TextTower(ImageTower):
    def forward(self, tokens):
        return self.clip.encode_text(tokens)


class TokensRuntime:
    """The text tower's runtime: token ids (int64) in, where an image runtime takes float pixels."""

    def __init__(self, runtime):
        self.runtime, self.name = runtime, runtime.name

    def run(self, tokens) -> np.ndarray:
        return self.runtime.run_inputs([np.asarray(tokens, np.int64)])


def load_towers(network, preprocess, tokenizer, size: int, settings: Settings, key: str) -> tuple:
    """(image runtime, text runtime), each None where that tower stays on PyTorch (OpenVINO
    missing, or its check failed); exports the towers first if they are not in the cache."""
    export = Export(settings.cache_dir, key, graphs=TOWERS)
    modules = {"image": ImageTower(network).eval(), "text": TextTower(network).eval()}
    examples = {"image": check_batch(preprocess, side=size), "text": tokenizer(list(CHECK_SENTENCES)).numpy()}

    def write():
        export.write({tower: Graph(modules[tower], {tower: examples[tower][:2]}) for tower in TOWERS}, {})

    def open_tower(tower: str):
        agreement = Cosine(f"CLIP {tower} vectors", lambda: reference(modules[tower], examples[tower]),
                           run=lambda runtime, inputs: wrap(tower, runtime).run(inputs))
        runtime = open_checked(export, RUNTIMES, agreement, write, named=settings.backend != "auto", graph=tower)
        return None if runtime is None else wrap(tower, runtime)

    return tuple(open_tower(tower) for tower in TOWERS)


def wrap(tower: str, runtime):
    return TokensRuntime(runtime) if tower == "text" else runtime


def reference(module, inputs: np.ndarray) -> tuple:
    """The fixed inputs and the tower's vectors for them on PyTorch."""
    with torch.no_grad():
        return inputs, module(torch.from_numpy(inputs)).float().numpy()
